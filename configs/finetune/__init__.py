"""Fine-tuning configs; ``bert_jax.run_config.finetune_defaults(task)`` holds every field with its default."""
