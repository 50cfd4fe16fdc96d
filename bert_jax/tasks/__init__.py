"""Tasks plug a model head, a batch layout, a loss and metrics into the one
training loop in ``bert_jax.train``; a ``TrainingJob`` adds the data, the
evaluation and the starting parameters, which is all that differs between
pretraining and fine-tuning (``bert_jax.trainer.run_training`` does the rest).

A loop-facing task object (``PretrainingTask``, ``bert_jax.tasks.heads.HeadTask``) provides:
  * ``init_params(rng)`` -> parameters boxed with logical axis names;
  * ``batch_spec`` -> ``{name: (dtype, trailing shape)}`` of one example;
  * ``denominators(batch)`` -> loss normalisers computed from the *global*
    batch, so gradients accumulated over microbatches equal one big step;
  * ``loss(params, batch, rng, denominators, deterministic)`` -> ``(loss, sums)``;
  * ``metrics_from_sums(sums)`` -> named scalar metrics;
  * ``flops_per_example(model_config, seq_length=None)`` -> training FLOPs of one example (for MFU;
    ``seq_length`` below ``max_seq_length`` for a length-bucketed batch);
  * ``max_seq_length``; optionally ``predict(params, batch)`` and ``predict_spec``.

Fine-tuning tasks (GLUE, docs_section, ...) are registered plug-ins: see
``bert_jax.tasks.registry`` and docs/tasks.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class TrainingJob:
    """What one training mode hands to ``bert_jax.trainer.run_training``.

    Attributes:
      task: the loop-facing task object (see above).
      model_config: the resolved ``BertConfig`` (recorded in checkpoints).
      loader: this process's training batches (``PretrainingLoader`` interface:
        ``__iter__`` of numpy dicts, ``state()``, ``restore()``).
      evaluate: ``(context, params, step) -> {metric: float}`` or None; ``context`` is the
        ``bert_jax.trainer.RunContext`` (jitted steps, mesh, workdir). It may write files
        (process 0 only).
      init_params: ``() -> plain parameter tree or None``, called only when the workdir
        holds no checkpoint of its own (``init_from``); None = fresh initialisation.
      eval_at_end: evaluate once more when training completes.
      total_steps: replaces ``optim.total_steps`` (fine-tuning derives it from epochs).
      info: data facts recorded in ``config.json`` and results files.
      close: called when the run ends (loaders with threads).
    """

    task: Any
    model_config: Any
    loader: Any
    evaluate: Callable | None = None
    init_params: Callable[[], Any] | None = None
    eval_at_end: bool = False
    total_steps: int | None = None
    info: dict = field(default_factory=dict)
    close: Callable[[], None] | None = None


def __getattr__(name):
    if name == "PretrainingTask":  # lazy: importing the package must not import JAX
        from bert_jax.tasks.pretraining import PretrainingTask
        return PretrainingTask
    raise AttributeError(f"module 'bert_jax.tasks' has no attribute {name!r}")


__all__ = ["PretrainingTask", "TrainingJob"]
