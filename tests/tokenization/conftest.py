"""Fixtures for the tokenizer tests: the bundled corpus, vocabularies trained on
it (8k, lower-cased and cased) in a temporary directory, and hard inputs."""

from __future__ import annotations

import pathlib

import pytest

CORPUS_DIR = pathlib.Path(__file__).resolve().parents[2] / "data" / "corpus"

# Inputs that stress text cleaning and splitting. Every entry names what it tests.
HARD_CASES = [
    "",  # empty
    " ",  # one space
    " \t\n\r \u3000 ",  # whitespace only, incl. ideographic space
    "Crème brûlée, naïve café, Ångström, São Paulo, Zürich",  # accents (composed)
    "cafe\u0301 re\u0301sume\u0301",  # accents as combining marks (decomposed)
    "中文分词测试：北京欢迎你。",  # CJK ideographs + full-width punctuation
    "日本語のテキストと한국어 텍스트",  # kana and Hangul (not split per char)
    "emoji 😀🎉👍🏽 family 👨‍👩‍👧 flag 🇫🇷",  # astral plane, ZWJ sequences
    "zero\u200bwidth\u200cnon\u200djoiner\ufeffbom\u2060wj",  # zero-width (Cf) characters
    "ctrl\x00nul\x07bel\x1besc\x7fdel\x85nel end",  # control characters
    "line\u2028sep\u2029para\u00a0nbsp\u2009thin",  # unusual separators
    "replacement \ufffd char and private \ue000 use",  # U+FFFD, private use
    "a" * 150,  # longer than max_input_chars_per_word (100)
    "Pneumonoultramicroscopicsilicovolcanoconiosis " * 3,  # long, rare word
    "x" * 100 + " " + "y" * 101,  # exactly at and just over the word-length limit
    "[MASK] is a [CLS]glued[SEP] token, [mask] is not",  # special tokens in text
    "İstanbul ǅungla ß ﬁnance Ωmega ΣΑΣ",  # case mappings that change length
    "$3.50 + 4^2 = 19.5 `code` ~tilde~ a_b|c",  # ASCII symbols counted as punctuation
    "don't stop-believing... (really?!) \"quoted\" 'single'",  # punctuation runs
    "tab\tseparated\tvalues\rcarriage",  # tabs, CR
    "MiXeD CaSe WoRdS and UPPER",  # case
    "numbers 1234567890 3.14159 1e-10 0x1F",  # digits
]


def read_corpus_lines() -> list[str]:
    """Non-blank lines of the bundled corpus, in file order."""
    lines: list[str] = []
    for path in sorted(CORPUS_DIR.glob("*.txt")):
        with open(path, encoding="utf-8") as handle:
            lines.extend(line.rstrip("\n") for line in handle if line.strip())
    return lines


@pytest.fixture(scope="session")
def corpus_lines() -> list[str]:
    lines = read_corpus_lines()
    assert len(lines) >= 20_000, f"corpus has only {len(lines)} lines"
    return lines


@pytest.fixture(scope="session")
def hard_cases() -> list[str]:
    return list(HARD_CASES)


@pytest.fixture(scope="session")
def corpus_files() -> list[str]:
    return [str(p) for p in sorted(CORPUS_DIR.glob("*.txt"))]


@pytest.fixture(scope="session")
def trained_vocabs(tmp_path_factory, corpus_files) -> dict[str, pathlib.Path]:
    """{"uncased": dir, "cased": dir}: 8k vocabularies trained on the corpus."""
    from bert_jax.vocab import train_wordpiece

    root = tmp_path_factory.mktemp("vocabs")
    out = {}
    for name, lowercase in (("uncased", True), ("cased", False)):
        train_wordpiece(corpus_files, 8000, lowercase=lowercase, output_dir=root / name, progress=False)
        out[name] = root / name
    return out


@pytest.fixture
def tiny_vocab_file(tmp_path) -> pathlib.Path:
    """A 20-token vocabulary for hand-checked examples."""
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "want", "##want", "##ed", "wa", "un",
              "runn", "##ing", ",", "low", "lowest", "the", "cat", "sat", "!", "##s"]
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return path
