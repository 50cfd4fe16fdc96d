"""Fine-tuning configs; ``bert_jax.launch.finetune_defaults()`` holds every field with its default."""
