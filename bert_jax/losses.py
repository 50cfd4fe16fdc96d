"""Pure loss and accuracy functions, each returning a ``(sum, weight)`` pair.

Returning sums instead of means lets callers add them across microbatches,
devices and hosts and divide once, so every example counts the same whatever
the batch split. ``mean(pair)`` gives Hugging Face's averaged value. Losses are
computed in float32 whatever the logits' dtype.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Pair = tuple[jax.Array, jax.Array]


def mean(pair: Pair) -> jax.Array:
    """``sum / weight``; 0 when nothing counted (as an empty batch should)."""
    total, weight = pair
    return jnp.where(weight > 0, total / jnp.maximum(weight, 1e-12), 0.0)


def _token_nll(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Negative log-likelihood of ``labels`` [...] under ``logits`` [..., classes]."""
    log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    safe = jnp.clip(labels, 0, logits.shape[-1] - 1)
    return -jnp.take_along_axis(log_probs, safe[..., None].astype(jnp.int32), axis=-1)[..., 0]


def cross_entropy_with_ignore(logits: jax.Array, labels: jax.Array, ignore_index: int = -100) -> Pair:
    """Softmax cross-entropy skipping ``labels == ignore_index`` (torch semantics).

    Args:
      logits: [..., classes].
      labels: int [...]; entries equal to ``ignore_index`` do not count.
    Returns:
      (sum of per-label losses, number of counted labels).
    """
    valid = labels != ignore_index
    nll = _token_nll(logits, jnp.where(valid, labels, 0))
    return jnp.sum(jnp.where(valid, nll, 0.0)), jnp.sum(valid).astype(jnp.float32)


def masked_lm_loss(logits: jax.Array, labels: jax.Array, weights: jax.Array) -> Pair:
    """Original BERT's MLM loss over gathered predictions.

    Args:
      logits: [batch, num_predictions, vocab].
      labels: int [batch, num_predictions].
      weights: [batch, num_predictions]; 0 marks padding predictions.
    Returns:
      (weighted loss sum, weight sum).
    """
    weights = weights.astype(jnp.float32)
    nll = _token_nll(logits, labels)
    return jnp.sum(nll * weights), jnp.sum(weights)


def is_argmax(logits: jax.Array, labels: jax.Array, max_logits: jax.Array | None = None) -> jax.Array:
    """``argmax(logits, -1) == labels`` (first index on ties), without a variadic reduce.

    XLA on CPU runs ``argmax`` (a reduce over (value, index) pairs) as a scalar loop: 30 ms
    over ``[640, 30522]`` MLM logits, 3% of a small model's step. Here: the label's logit equals
    the row maximum and no earlier class reaches it -- a max (``max_logits``, when the caller
    already has it for a log-softmax) and a boolean or-reduce, both vectorised.

    Args:
      logits: [..., classes] (not NaN).
      labels: int [...].
      max_logits: optional ``max(logits, -1)`` [...], to share the caller's reduce.
    Returns:
      bool [...].
    """
    m = jnp.max(logits, axis=-1) if max_logits is None else max_logits.astype(logits.dtype)
    labels = labels.astype(jnp.int32)
    picked = jnp.take_along_axis(logits, labels[..., None], axis=-1)[..., 0]
    classes = jax.lax.broadcasted_iota(jnp.int32, logits.shape, logits.ndim - 1)
    earlier_max = jnp.any((classes < labels[..., None]) & (logits == m[..., None]), axis=-1)
    return (picked == m) & ~earlier_max


def accuracy_with_ignore(logits: jax.Array, labels: jax.Array, ignore_index: int = -100) -> Pair:
    """(number of correct argmax predictions, number counted), skipping ``ignore_index``."""
    valid = labels != ignore_index
    correct = (jnp.argmax(logits, axis=-1) == labels) & valid
    return jnp.sum(correct).astype(jnp.float32), jnp.sum(valid).astype(jnp.float32)


def masked_lm_accuracy(logits: jax.Array, labels: jax.Array, weights: jax.Array) -> Pair:
    """(weighted correct count, weight sum) for gathered MLM predictions."""
    weights = weights.astype(jnp.float32)
    correct = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
    return jnp.sum(correct * weights), jnp.sum(weights)


def sigmoid_binary_cross_entropy(logits: jax.Array, labels: jax.Array) -> Pair:
    """Multi-label loss (torch ``BCEWithLogitsLoss``): (sum over all entries, number of entries)."""
    x = logits.astype(jnp.float32)
    y = labels.astype(jnp.float32)
    # log(1 + exp(-|x|)) form is stable for large |x|.
    loss = jnp.maximum(x, 0) - x * y + jnp.log1p(jnp.exp(-jnp.abs(x)))
    return jnp.sum(loss), jnp.asarray(loss.size, jnp.float32)


def mean_squared_error(predictions: jax.Array, targets: jax.Array) -> Pair:
    """Regression loss (torch ``MSELoss``): (sum of squared errors, number of entries)."""
    diff = predictions.astype(jnp.float32) - targets.astype(jnp.float32)
    return jnp.sum(diff * diff), jnp.asarray(diff.size, jnp.float32)
