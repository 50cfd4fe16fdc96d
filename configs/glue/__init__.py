"""GLUE fine-tuning recipes: one file per task; the recipe itself (lr 2e-5, batch 32,
3 epochs, seq 128, 10% warmup) is the GLUE task's defaults in ``bert_jax.tasks.glue``."""
