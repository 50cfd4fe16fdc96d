"""Fixtures shared across test areas: tiny model configs and a padded batch (modeling, convert)."""

import numpy as np
import pytest

TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=64)


@pytest.fixture(scope="session")
def tiny_kwargs():
    return dict(TINY)


def padded_batch(batch=3, length=12, vocab=99, seed=0):
    """Token ids [batch, length], attention mask with varied lengths, both token types."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, vocab, size=(batch, length))
    lengths = np.linspace(length, max(3, length // 3), batch).astype(int)
    mask = (np.arange(length)[None, :] < lengths[:, None]).astype(np.int64)
    ids = np.where(mask == 1, ids, 0)
    token_types = ((np.arange(length)[None, :] >= lengths[:, None] // 2) & (mask == 1)).astype(np.int64)
    return ids, mask, token_types


@pytest.fixture(scope="session")
def make_batch():
    return padded_batch
