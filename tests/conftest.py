"""Fixtures shared across test areas: tiny model configs and a padded batch (modeling, convert);
one XLA compilation cache for the whole session."""

import atexit
import os
import shutil
import tempfile

import numpy as np
import pytest

# Many tests build the same tiny programs (a train step, an eval step of one shape): with one
# compilation cache for the session they compile once (measured: the GLUE-evaluation and
# fine-tuning tests in 138 s instead of 209 s). Set through the environment before anything
# imports jax, so the subprocesses tests start (the CLI, several hosts) share it too. A new folder
# per session: a run never loads code compiled by another checkout. Tests of the cache itself
# turn it off (tests/train/test_compile_cache.py).
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _CACHE = tempfile.mkdtemp(prefix="bert-jax-tests-xla-")
    # removed by this process only (a forked child inherits the registration)
    atexit.register(lambda pid=os.getpid(): os.getpid() == pid and shutil.rmtree(_CACHE, True))
    os.environ["JAX_COMPILATION_CACHE_DIR"] = os.environ["BERT_JAX_TESTS_XLA_CACHE"] = _CACHE
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")  # tiny programs compile in < 1 s
if os.environ.get("PYTEST_XDIST_WORKER") and \
        os.environ.get("JAX_COMPILATION_CACHE_DIR") == os.environ.get("BERT_JAX_TESTS_XLA_CACHE"):
    # pytest-xdist workers inherit the session's folder: JAX writes entries without a lock, so
    # each worker keeps its own (a half-written entry read by another would print a warning)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = os.path.join(os.environ["BERT_JAX_TESTS_XLA_CACHE"],
                                                           os.environ["PYTEST_XDIST_WORKER"])

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
