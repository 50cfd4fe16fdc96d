"""Fixtures for the modeling tests: the error bound for bf16 compute against float32."""

import math

import numpy as np
import pytest

BF16_UNIT_ROUNDOFF = 2.0 ** -8  # 8 significant bits, round to nearest: relative error <= 2^-8 per rounding


def bf16_roundings_to_logits(num_layers: int) -> int:
    """bf16 roundings of the full-magnitude signal between the token ids and the MLM logits.

    Embeddings: words + types, + positions, LayerNorm (3). Each layer: two
    residual sums and two LayerNorms (4); the attention / feed-forward branches
    join the stream through those sums, and at initialisation they are much
    smaller than it, so their own roundings add little. MLM head: transform
    dense, GELU, LayerNorm, the tied decoder product, the bias (5).
    """
    return 3 + 4 * num_layers + 5


def bf16_logit_bound(num_layers: int, reference: np.ndarray) -> float:
    """Largest |bf16 logit - float32 logit| a correct bf16 forward pass can reach.

    Every rounding multiplies a value by (1 + d) with |d| <= u = 2^-8. Over
    K = ``bf16_roundings_to_logits`` roundings of independent sign, a logit's
    error has standard deviation at most sqrt(K) * u * rms(logits) (taking |d|'s
    worst case, u, as its spread; a logit is a dot product, so a relative error
    of the hidden vector becomes that fraction of the logits' rms, not of one
    logit). The largest of ``reference.size`` (a few thousand) such errors lies
    within 4 standard deviations. For 2 layers: K = 16, bound 4 * 4 * u * rms
    = 0.0625 rms; the measured max errors of the tiny models are 0.024-0.029 rms
    (2.2-2.6x below). A 10% error in a bf16 product moves logits by 0.1 of their
    own size (up to ~0.4 rms) and fails.
    """
    rms = float(np.sqrt(np.mean(np.square(np.asarray(reference, np.float64)))))
    return 4.0 * math.sqrt(bf16_roundings_to_logits(num_layers)) * BF16_UNIT_ROUNDOFF * rms


@pytest.fixture(scope="session")
def bf16_bound():
    return bf16_logit_bound
