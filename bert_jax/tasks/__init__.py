"""Tasks plug a model head, a batch layout, a loss and metrics into the one
training loop in ``bert_jax.train``.

A task provides:
  * ``init_params(rng)`` -> parameters boxed with logical axis names;
  * ``batch_spec`` -> ``{name: (dtype, trailing shape)}`` of one example;
  * ``denominators(batch)`` -> loss normalisers computed from the *global*
    batch, so gradients accumulated over microbatches equal one big step;
  * ``loss(params, batch, rng, denominators, deterministic)`` -> ``(loss, sums)``;
  * ``metrics_from_sums(sums)`` -> named scalar metrics.
"""

from bert_jax.tasks.pretraining import PretrainingTask

__all__ = ["PretrainingTask"]
