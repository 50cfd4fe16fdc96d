"""Tasks plug a model head, a batch layout, a loss and metrics into the one
training loop in ``bert_jax.train``; a ``TrainingJob`` adds the data and the
starting parameters, which is all that differs between pretraining and
fine-tuning (``bert_jax.launch.run_training`` does the rest).

A task provides:
  * ``init_params(rng)`` -> parameters boxed with logical axis names;
  * ``batch_spec`` -> ``{name: (dtype, trailing shape)}`` of one example;
  * ``denominators(batch)`` -> loss normalisers computed from the *global*
    batch, so gradients accumulated over microbatches equal one big step;
  * ``loss(params, batch, rng, denominators, deterministic)`` -> ``(loss, sums)``;
  * ``metrics_from_sums(sums)`` -> named scalar metrics;
  * ``flops_per_example(model_config)`` -> training FLOPs of one example (for MFU);
  * ``max_seq_length``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from bert_jax.tasks.pretraining import PretrainingTask


@dataclass
class TrainingJob:
    """What one training mode hands to ``bert_jax.launch.run_training``.

    Attributes:
      task: the task object (see above).
      model_config: the resolved ``BertConfig`` (recorded in checkpoints).
      loader: this process's training batches (``PretrainingLoader`` interface:
        ``__iter__`` of numpy dicts, ``state()``, ``restore()``).
      eval_batches: ``() -> iterable`` of this process's batches for one evaluation, or None.
      init_params: ``() -> plain parameter tree or None``, called only when the workdir
        holds no checkpoint of its own (``init_from``); None = fresh initialisation.
      eval_at_end: evaluate once more when training completes.
      results_name: write each evaluation to ``<workdir>/eval/<results_name>_results.json``.
      info: data facts recorded in ``config.json`` and the results file.
    """

    task: Any
    model_config: Any
    loader: Any
    eval_batches: Callable[[], Iterable[dict]] | None = None
    init_params: Callable[[], Any] | None = None
    eval_at_end: bool = False
    results_name: str | None = None
    info: dict = field(default_factory=dict)


__all__ = ["PretrainingTask", "TrainingJob"]
