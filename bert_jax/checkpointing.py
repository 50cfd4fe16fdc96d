"""Checkpoints with Orbax: asynchronous saves, retention, exact resume, re-sharding.

A checkpoint step directory holds three items:
  * ``state``  -- the ``TrainState`` arrays (params, optimizer state, step, key);
  * ``loader`` -- the data loader position (JSON), so resumed runs see exactly
    the batches an uninterrupted run would;
  * ``meta``   -- JSON: the parameter shapes, mesh, and the resolved config, used
    to refuse a mismatched model *before* reading any array.

Retention: the last ``keep`` steps plus every step divisible by ``keep_period``.
Orbax writes each step under a temporary name and renames it when complete, so
a step interrupted mid-write is never listed as the latest.

Restoring onto another mesh (or onto CPU for export) only needs the target
shardings: arrays are read shard by shard into whatever layout is asked for.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.sharding import SingleDeviceSharding

log = logging.getLogger(__name__)


def _names(path) -> str:
    parts = []
    for e in path:
        for attr in ("key", "name", "idx"):
            if hasattr(e, attr):
                parts.append(str(getattr(e, attr)))
                break
    return "/".join(parts)


def param_shapes(params) -> dict[str, list[int]]:
    """``{"bert/encoder/...": [shape]}`` for a (possibly abstract) parameter tree."""
    return {_names(p): list(x.shape) for p, x in jax.tree_util.tree_flatten_with_path(params)[0]}


def make_manager(directory: str, *, save_interval_steps: int = 1, keep: int = 3,
                 keep_period: int | None = None, async_save: bool = True) -> ocp.CheckpointManager:
    """A ``CheckpointManager`` under ``directory`` (created if missing)."""
    options = ocp.CheckpointManagerOptions(
        save_interval_steps=max(int(save_interval_steps), 1),
        max_to_keep=int(keep) if keep and keep > 0 else None,
        keep_period=int(keep_period) if keep_period else None,
        enable_async_checkpointing=async_save,
        create=True,
    )
    return ocp.CheckpointManager(os.path.abspath(directory), options=options,
                                 item_names=("state", "loader", "meta"))


def save(manager: ocp.CheckpointManager, step: int, state, loader_state: dict | None,
         meta: dict, *, force: bool = False) -> bool:
    """Start an (asynchronous) save of ``step``; returns whether a save started.

    ``force`` saves even off the save interval (used on SIGTERM and at the end).
    """
    args = ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        loader=ocp.args.JsonSave(loader_state or {}),
        meta=ocp.args.JsonSave(meta),
    )
    return bool(manager.save(int(step), args=args, force=force))


def read_meta(manager: ocp.CheckpointManager, step: int | None = None) -> dict | None:
    step = manager.latest_step() if step is None else step
    if step is None:
        return None
    return manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]


def check_compatible(meta: dict, params_abstract, directory: str, step: int) -> None:
    """Refuse a checkpoint whose parameter shapes differ from the configured model."""
    saved = meta.get("param_shapes", {})
    want = param_shapes(params_abstract)
    diffs = [f"{k}: checkpoint {saved.get(k)} vs model {v}" for k, v in want.items()
             if saved.get(k) != v]
    diffs += [f"{k}: only in checkpoint" for k in saved if k not in want]
    if diffs:
        shown = "; ".join(diffs[:6]) + (f"; ... ({len(diffs)} in all)" if len(diffs) > 6 else "")
        raise ValueError(
            f"{directory} holds a checkpoint (step {step}) of a different model shape: {shown}. "
            "Use a new --workdir, or set the model config to the one in the checkpoint "
            "(see its config.json).")


def restore(manager: ocp.CheckpointManager, abstract_state, shardings, step: int | None = None):
    """Restore ``(state, loader_state, meta)`` onto ``shardings``.

    Args:
      abstract_state: ``TrainState`` of ``jax.ShapeDtypeStruct`` (from ``jax.eval_shape``).
      shardings: matching tree of target shardings (any mesh or device count).
      step: the step to restore; default the latest complete one.
    """
    step = manager.latest_step() if step is None else step
    if step is None:
        raise FileNotFoundError(f"no checkpoint in {manager.directory}")
    meta = read_meta(manager, step)
    check_compatible(meta, abstract_state.params, str(manager.directory), step)
    target = jax.tree_util.tree_map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), abstract_state, shardings)
    out = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target), loader=ocp.args.JsonRestore(),
        meta=ocp.args.JsonRestore()))
    return out["state"], out["loader"], out["meta"]


def restore_params_to_cpu(directory: str, step: int | None = None) -> tuple[Any, dict]:
    """Parameters of a checkpoint as host numpy arrays (for export / conversion).

    Returns ``(params, meta)``; works without knowing the model config, since
    shapes come from the checkpoint itself.
    """
    manager = ocp.CheckpointManager(os.path.abspath(directory),
                                    options=ocp.CheckpointManagerOptions(read_only=True),
                                    item_names=("state", "loader", "meta"))
    step = manager.latest_step() if step is None else step
    if step is None:
        raise FileNotFoundError(f"no checkpoint found in {directory}; pass a workdir's "
                                "'checkpoints' directory that holds step folders.")
    meta = read_meta(manager, step)
    cpu = SingleDeviceSharding(jax.devices("cpu")[0])
    tree = manager.item_metadata(step)["state"]
    target = jax.tree_util.tree_map(
        lambda m: jax.ShapeDtypeStruct(tuple(m.shape), m.dtype, sharding=cpu), tree)
    state = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target)))["state"]
    params = state["params"] if isinstance(state, dict) else state.params
    manager.close()
    return jax.tree_util.tree_map(np.asarray, params), meta
