"""Optimizers for BERT: AdamW and LAMB with decay exclusions, LR schedules, clipping.

Owns:
  * ``decay_mask(params)``: True for parameters that get weight decay (and, for
    LAMB, the layer-wise trust ratio); biases and LayerNorm parameters are
    excluded, as in the original BERT recipe.
  * ``make_schedule(cfg)``: linear warmup then linear or polynomial decay to
    ``end_learning_rate`` at ``total_steps``.
  * ``make_optimizer(cfg)``: ``optax`` chain = global-norm clipping -> AdamW or
    LAMB -> learning rate. Gradient accumulation is not an optimizer concern
    here: ``bert_jax.train`` scans over microbatches and calls ``update`` once.

``cfg`` is any mapping / attribute object with the fields of the ``optim``
block of a pretraining config (see ``configs/pretrain/tiny.py``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax


# Leaf names (the last path element) that are never decayed. Flax names a
# LayerNorm's parameters ``scale``/``bias`` under a module called ``LayerNorm``
# (Hugging Face paths), so the module name is checked too.
_NO_DECAY_LEAVES = ("bias",)
_NO_DECAY_MODULES = ("LayerNorm", "layer_norm", "layernorm")


def _get(cfg: Any, name: str, default: Any = None) -> Any:
    if isinstance(cfg, dict):
        return cfg.get(name, default)
    return getattr(cfg, name, default)


def _path_names(path) -> list[str]:
    names = []
    for entry in path:
        if hasattr(entry, "key"):
            names.append(str(entry.key))
        elif hasattr(entry, "name"):
            names.append(str(entry.name))
        elif hasattr(entry, "idx"):
            names.append(str(entry.idx))
        else:
            names.append(str(entry))
    return names


def is_decayed(path_names: list[str]) -> bool:
    """Whether a parameter at this path (list of names) gets weight decay."""
    if path_names and path_names[-1] in _NO_DECAY_LEAVES:
        return False
    return not any(n in _NO_DECAY_MODULES for n in path_names)


def decay_mask(params) -> Any:
    """Pytree of bools like ``params``: True where weight decay applies."""
    return jax.tree_util.tree_map_with_path(lambda p, _: is_decayed(_path_names(p)), params)


def make_schedule(cfg: Any) -> optax.Schedule:
    """Warmup then decay.

    Fields: ``learning_rate``, ``total_steps``, ``warmup_steps`` (or
    ``warmup_fraction`` when ``warmup_steps`` is negative/None), ``schedule``
    (``"linear"``, ``"polynomial"`` or ``"constant"``), ``decay_power`` (1.0 is
    linear; the original BERT LAMB recipe uses 0.5), ``end_learning_rate``.
    """
    peak = float(_get(cfg, "learning_rate"))
    total = int(_get(cfg, "total_steps"))
    warmup = _get(cfg, "warmup_steps", None)
    if warmup is None or int(warmup) < 0:
        warmup = int(round(float(_get(cfg, "warmup_fraction", 0.0)) * total))
    warmup = int(warmup)
    kind = _get(cfg, "schedule", "linear")
    power = 1.0 if kind == "linear" else float(_get(cfg, "decay_power", 1.0))
    end = float(_get(cfg, "end_learning_rate", 0.0))
    if kind not in ("linear", "polynomial", "constant"):
        raise ValueError(
            f"optim.schedule={kind!r} is not known; use 'linear', 'polynomial' or 'constant'."
        )
    if total <= 0:
        raise ValueError(f"optim.total_steps must be positive, got {total}.")
    if warmup > total:
        raise ValueError(f"optim.warmup_steps ({warmup}) exceeds total_steps ({total}).")

    def schedule(step):
        step = jnp.asarray(step, jnp.float32)
        warm = peak * step / max(warmup, 1)
        if kind == "constant":
            after = jnp.asarray(peak, jnp.float32)
        else:
            frac = jnp.clip((step - warmup) / max(total - warmup, 1), 0.0, 1.0)
            after = (peak - end) * (1.0 - frac) ** power + end
        return jnp.where(step < warmup, warm, after)

    return schedule


def lamb(
    learning_rate: optax.ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-6,
    weight_decay: float = 0.01,
    mask: Any = None,
) -> optax.GradientTransformation:
    """LAMB (You et al. 2019) where ``mask`` excludes parameters from *both* the
    weight decay and the trust ratio (optax's ``lamb`` masks only the decay).

    update = -lr * r * (adam_update + wd * p), with r = ||p|| / ||adam_update + wd * p||
    for decayed parameters and r = 1 for excluded ones.
    """
    return optax.chain(
        optax.scale_by_adam(b1=b1, b2=b2, eps=eps),
        optax.add_decayed_weights(weight_decay, mask),
        optax.masked(optax.scale_by_trust_ratio(), mask) if mask is not None
        else optax.scale_by_trust_ratio(),
        optax.scale_by_learning_rate(learning_rate),
    )


def make_optimizer(cfg: Any, params_for_mask=None) -> optax.GradientTransformation:
    """The optimizer named by ``cfg.name`` (``"adamw"`` or ``"lamb"``).

    Args:
      cfg: the ``optim`` config block (``name``, ``learning_rate``, schedule
        fields, ``b1``, ``b2``, ``eps``, ``weight_decay``, ``clip_grad_norm``
        (<= 0 disables clipping)).
      params_for_mask: unused; the mask is computed from the parameter tree
        passed to ``init``/``update`` (a callable mask), so abstract trees work.
    Returns:
      An ``optax.GradientTransformation`` over plain (unboxed) parameter trees.
    """
    del params_for_mask
    schedule = make_schedule(cfg)
    name = _get(cfg, "name", "adamw")
    b1, b2 = float(_get(cfg, "b1", 0.9)), float(_get(cfg, "b2", 0.999))
    eps, wd = float(_get(cfg, "eps", 1e-6)), float(_get(cfg, "weight_decay", 0.01))
    if name == "adamw":
        opt = optax.adamw(schedule, b1=b1, b2=b2, eps=eps, weight_decay=wd, mask=decay_mask)
    elif name == "lamb":
        opt = lamb(schedule, b1=b1, b2=b2, eps=eps, weight_decay=wd, mask=decay_mask)
    else:
        raise ValueError(f"optim.name={name!r} is not known; use 'adamw' or 'lamb'.")
    clip = float(_get(cfg, "clip_grad_norm", 1.0) or 0.0)
    if clip > 0:
        opt = optax.chain(optax.clip_by_global_norm(clip), opt)
    return opt
