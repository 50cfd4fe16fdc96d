"""Fixtures for the data-pipeline tests: a WordPiece vocabulary trained on the bundled corpus
and a small real-text corpus cut from it."""

from __future__ import annotations

import pytest

from dp_helpers import CORPUS_DIR, CORPUS_FILES, SPECIALS, read_documents, write_corpus


@pytest.fixture(scope="session")
def vocab_file(tmp_path_factory) -> str:
    """A 3,000-token uncased WordPiece vocabulary trained on the bundled corpus."""
    tokenizers = pytest.importorskip("tokenizers")
    out = tmp_path_factory.mktemp("vocab")
    tok = tokenizers.BertWordPieceTokenizer(lowercase=True)
    tok.train(CORPUS_FILES, vocab_size=3000, special_tokens=SPECIALS, show_progress=False)
    tok.save_model(str(out))
    return str(out / "vocab.txt")


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory) -> str:
    """About 300 real documents from the tutorial and FAQ (a few seconds to build)."""
    out = tmp_path_factory.mktemp("small_corpus")
    docs = read_documents(str(CORPUS_DIR / "tutorial.txt"), 150) + read_documents(str(CORPUS_DIR / "faq.txt"), 150)
    return write_corpus(out / "small.txt", docs)


