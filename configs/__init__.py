"""Run configurations: Python files whose ``get_config()`` returns an
``ml_collections.ConfigDict`` (loaded by path, e.g. ``--config configs/pretrain/tiny.py``)."""
