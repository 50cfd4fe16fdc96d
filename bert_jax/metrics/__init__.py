"""Metrics: what the training loop logs, and the official scores of each benchmark.

  * ``writer``: ``MetricWriter`` (TensorBoard, ``metrics.jsonl``, console),
    ``Accumulator``, ``Throughput`` -- used by the training loop;
  * the benchmark scores (GLUE, SQuAD, entity-level NER) live in their own
    modules and are re-exported here, so ``from bert_jax.metrics import
    glue_metrics`` works.

Attributes resolve lazily, so importing a scorer never imports JAX.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "MetricWriter": "writer", "Accumulator": "writer", "Throughput": "writer", "to_host": "writer",
    "glue_metrics": "glue", "canonical_task": "glue",
    "squad_evaluate": "squad", "normalize_answer": "squad",
    "ner_metrics": "ner",
}


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"bert_jax.metrics.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'bert_jax.metrics' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
