"""Pretraining configs; ``common.base_config()`` holds every field with its default."""
