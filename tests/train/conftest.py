"""Fixtures of the training tests: a vocabulary and shards built once per session
from the bundled corpus (pretraining and fine-tuning tests both start from them)."""

import os

import pytest

import train_helpers as helpers


@pytest.fixture(scope="session")
def corpus_shards(tmp_path_factory):
    """``{"vocab", "shards"}``: a 1,000-token WordPiece vocabulary and 64-token shards
    (10 predictions) built from the whole corpus."""
    pytest.importorskip("tokenizers")
    root = tmp_path_factory.mktemp("corpus")
    vocab = helpers.train_vocab(helpers.CORPUS, str(root))
    return {"vocab": vocab, "shards": helpers.build_shards(helpers.CORPUS, vocab, str(root / "shards"))}
