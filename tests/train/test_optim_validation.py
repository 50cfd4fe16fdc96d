"""``validate_optim_config``: every numeric optimizer/schedule field range-checked, errors name the field."""

from __future__ import annotations

import glob
import math
import os

import jax.numpy as jnp
import optax
import pytest

from bert_jax import launch, optim

CONFIGS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "..", "configs", "*", "*.py")))


def _valid(**changes) -> dict:
    cfg = dict(launch.pretrain_defaults().optim)
    cfg.update(changes)
    return cfg


@pytest.mark.parametrize("path", [p for p in CONFIGS if not p.endswith("__init__.py")],
                         ids=lambda p: os.path.relpath(p, os.path.dirname(CONFIGS[0]) + "/.."))
def test_shipped_configs_are_valid(path):
    config = launch.load_config(path)
    if config.get("mode") == "finetune" and config.optim.total_steps == -1:
        config.optim.total_steps = 1000  # a fine-tuning run derives it from num_epochs and the data
    optim.validate_optim_config(config.optim)


def test_negative_learning_rate_is_refused_and_would_ascend():
    with pytest.raises(ValueError, match=r"optim\.learning_rate=-0\.001 is out of range; it must be >= 0 and finite"):
        optim.validate_optim_config(_valid(learning_rate=-1e-3))
    # Why it matters: the optimizer it would build walks uphill on f(x) = x^2.
    tx = optim.make_optimizer(_valid(learning_rate=-1e-1, warmup_steps=0, total_steps=10, weight_decay=0.0))
    x = {"w": jnp.asarray([1.0])}
    updates, _ = tx.update({"w": 2 * x["w"]}, tx.init(x), x)
    assert float(optax.apply_updates(x, updates)["w"][0]) ** 2 > 1.0
    optim.validate_optim_config(_valid(learning_rate=1e-3))  # the fix passes


BAD = [
    ("learning_rate", math.nan, "is not a finite number"),
    ("learning_rate", math.inf, "is not a finite number"),
    ("learning_rate", "1e-3", "is not a finite number"),
    ("total_steps", 0, "must be > 0"),
    ("total_steps", 10.5, "is not an integer"),
    ("total_steps", True, "is not an integer"),
    ("warmup_steps", -2, "must be >= 0, or -1 (or None) to use warmup_fraction"),
    ("warmup_steps", 2_000_000, "exceeds optim.total_steps=1000000"),
    ("warmup_fraction", 1.0, "must be in [0, 1)"),
    ("warmup_fraction", -0.1, "must be in [0, 1)"),
    ("b1", 1.0, "must be in [0, 1)"),
    ("b2", -0.5, "must be in [0, 1)"),
    ("eps", 0.0, "must be > 0"),
    ("weight_decay", -0.01, "must be >= 0"),
    ("clip_grad_norm", -1.0, "must be >= 0"),
    ("end_learning_rate", -1e-5, "must be >= 0"),
    ("end_learning_rate", 1.0, "exceeds optim.learning_rate=0.0001"),
    ("decay_power", 0.0, "must be > 0"),
    ("name", "sgd", "is not one of 'adamw', 'lamb'"),
    ("schedule", "cosine", "is not one of 'linear', 'polynomial', 'constant'"),
    ("learning_rte", 1e-3, "is not an optimizer field"),
]


@pytest.mark.parametrize("field,value,message", BAD, ids=[f"{f}={v!r}" for f, v, _ in BAD])
def test_bad_field_is_named_with_its_range(field, value, message):
    with pytest.raises(ValueError) as info:
        optim.validate_optim_config(_valid(**{field: value}))
    text = str(info.value)
    assert f"optim.{field}" in text and message in text and "--config.optim." in text


GOOD = [dict(learning_rate=0.0), dict(warmup_steps=-1), dict(warmup_steps=None), dict(warmup_steps=0),
        dict(warmup_fraction=0.0), dict(b1=0.0), dict(clip_grad_norm=0.0), dict(clip_grad_norm=None),
        dict(weight_decay=0.0), dict(total_steps=1, warmup_steps=1), dict(decay_power=0.5),
        dict(total_steps=1000.0, warmup_steps=10)]


@pytest.mark.parametrize("changes", GOOD, ids=[",".join(f"{k}={v!r}" for k, v in c.items()) for c in GOOD])
def test_boundary_values_are_accepted(changes):
    optim.validate_optim_config(_valid(**changes))


def test_warmup_minus_one_means_fraction_as_the_schedule_reads_it():
    cfg = _valid(learning_rate=1.0, total_steps=100, warmup_steps=-1, warmup_fraction=0.2)
    optim.validate_optim_config(cfg)
    schedule = optim.make_schedule(cfg)
    assert float(schedule(10)) == pytest.approx(0.5) and float(schedule(20)) == pytest.approx(1.0)


def test_constant_schedule_ignores_end_learning_rate_and_all_problems_are_listed():
    optim.validate_optim_config(_valid(schedule="constant", end_learning_rate=1.0))
    with pytest.raises(ValueError) as info:
        optim.validate_optim_config(_valid(learning_rate=-1.0, b2=1.0, eps=-1e-8))
    text = str(info.value)
    assert "optim.learning_rate" in text and "optim.b2" in text and "optim.eps" in text


def test_partial_mapping_uses_defaults_and_requires_rate_and_steps():
    optim.validate_optim_config({"learning_rate": 1e-3, "total_steps": 10})
    with pytest.raises(ValueError, match=r"optim\.learning_rate is required.*optim\.total_steps is required"):
        optim.validate_optim_config({})
