"""Evaluation over a whole split: metric sums (pretraining) and predictions (fine-tuning).

``predict_rows`` runs the jitted, sharded ``predict`` step over every row of a
split exactly once on any device or process count: the split is cut into
global batches in order, the last one padded with rows whose ``row_id`` is -1;
each process feeds its own rows, the outputs of all processes are gathered,
padding is dropped, and the row ids are checked to be exactly ``0..n-1``
before the outputs are returned in row order to the task's host-side
post-processing (which computes metrics over the whole split).
"""

from __future__ import annotations

import itertools
import logging

import jax
import jax.numpy as jnp
import numpy as np

from bert_jax import partitioning
from bert_jax.tasks.arrays import ArrayLoader

log = logging.getLogger("bert_jax")


def _to_host(tree) -> dict[str, np.ndarray]:
    """Whole global arrays on every process (gathered across hosts when there are several)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        return {k: np.asarray(v) for k, v in multihost_utils.process_allgather(tree, tiled=True).items()}
    return {k: np.asarray(v) for k, v in jax.device_get(tree).items()}


def predict_rows(predict_fn, params, arrays: dict[str, np.ndarray], spec: dict, mesh,
                 global_batch_size: int) -> dict[str, np.ndarray]:
    """Outputs for every row of ``arrays`` (``{name: [num_rows, ...]}``), in row order.

    Args:
      predict_fn: jitted ``(params, batch) -> {name: [batch, ...]}`` that passes ``row_id`` through.
      spec: the inputs ``predict_fn`` reads (``task.predict_spec``; ``row_id`` is added here).
    Raises:
      RuntimeError: a row was predicted twice or not at all (a bug, never silently averaged).
    """
    inputs = {k: arrays[k] for k in spec if k != "row_id"}
    loader = ArrayLoader(inputs, global_batch_size, process_index=jax.process_index(),
                         process_count=jax.process_count(), shuffle=False, drop_remainder=False, num_epochs=1)
    chunks = []
    for local in loader:
        batch = partitioning.make_global_batch({k: local[k] for k in spec}, mesh)
        chunks.append(_to_host(predict_fn(params, batch)))
    out = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
    ids = out.pop("row_id")
    real = ids >= 0
    ids = ids[real]
    n = loader.num_examples
    if len(ids) != n or not np.array_equal(np.sort(ids), np.arange(n)):
        raise RuntimeError(f"prediction covered {len(np.unique(ids))} distinct of {n} rows "
                           f"({len(ids)} predictions); every row must be predicted exactly once.")
    order = np.argsort(ids, kind="stable")
    return {k: v[real][order] for k, v in out.items()}


def metric_sums(eval_fn, params, batches, mesh, max_batches: int = 0):
    """Add the eval step's metric sums over ``batches`` (this process's rows of each global batch)."""
    sums = None
    for local in (itertools.islice(batches, max_batches) if max_batches else batches):
        out = eval_fn(params, partitioning.make_global_batch(local, mesh))
        sums = out if sums is None else jax.tree_util.tree_map(jnp.add, sums, out)
    return sums
