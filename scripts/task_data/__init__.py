"""The set makers of ``scripts/derive_task_data.py``, one module per benchmark layout."""
