"""SQuAD v1.1 / v2.0 recipes (``bert_jax.tasks.squad``)."""
