"""Model FLOPs per training example and MFU.

Counts matrix-multiply FLOPs only (2 per multiply-add), forward x 3 for
forward + backward, following the convention used for MFU in large-model
training (recomputation from remat is *not* counted: MFU measures useful work).

Per example with sequence ``S``, hidden ``H``, intermediate ``I``, ``L``
layers, vocab ``V`` and ``P`` masked positions (the head only projects those):
  encoder layer: 8 S H^2 (Q, K, V, output) + 4 S H I (MLP) + 4 S^2 H (scores, context)
  MLM head:      2 P H^2 (transform) + 2 P H V (decoder)
  pooler + NSP:  2 H^2 + 4 H
"""

from __future__ import annotations

from typing import Any

# Peak dense FLOP/s per device kind (substring of ``jax.devices()[0].device_kind``,
# lower-cased) for bf16 compute. Overridable via config ``metrics.peak_flops``.
DEFAULT_PEAK_FLOPS: dict[str, float] = {
    "tpu v4": 275e12,
    "tpu v5 lite": 197e12,
    "tpu v5e": 197e12,
    "tpu v5p": 459e12,
    "tpu v5": 459e12,
    "tpu v6 lite": 918e12,
    "tpu v6e": 918e12,
    "h100": 989e12,
    "h200": 989e12,
    "a100": 312e12,
    # A 2-core CPU host: measured large fp32 matmul (benchmarks/train_step.py measures it live).
    "cpu": 450e9,
}


def _get(cfg: Any, name: str):
    return cfg[name] if isinstance(cfg, dict) else getattr(cfg, name)


def bert_pretraining_flops(config: Any, seq_length: int, num_predictions: int) -> float:
    """Training FLOPs (forward + backward) for one pretraining example."""
    h = _get(config, "hidden_size")
    i = _get(config, "intermediate_size")
    n_layers = _get(config, "num_hidden_layers")
    v = _get(config, "vocab_size")
    s, p = seq_length, num_predictions
    layer = 8 * s * h * h + 4 * s * h * i + 4 * s * s * h
    head = 2 * p * h * h + 2 * p * h * v
    pooler = 2 * h * h + 4 * h
    return 3.0 * (n_layers * layer + head + pooler)


def peak_flops_per_device(device_kind: str, table: dict[str, float] | None = None) -> float | None:
    """Peak FLOP/s for a device kind (longest matching key wins), or None if unknown."""
    table = dict(DEFAULT_PEAK_FLOPS, **(table or {}))
    kind = device_kind.lower()
    matches = [k for k in table if k in kind]
    if not matches:
        return None
    return float(table[max(matches, key=len)])


def mfu(flops_per_step: float, step_time_s: float, num_devices: int, peak_per_device: float | None):
    """Model FLOPs utilisation in [0, 1], or None when the peak is unknown."""
    if not peak_per_device or step_time_s <= 0:
        return None
    return flops_per_step / step_time_s / (num_devices * peak_per_device)
