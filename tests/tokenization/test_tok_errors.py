"""Bad input raises an error that says what is wrong and where."""

from __future__ import annotations

import pytest

from bert_jax.tokenization import BertTokenizer, BertTokenizerFast
from bert_jax.vocab import train_wordpiece

CLASSES = [BertTokenizer, BertTokenizerFast]


@pytest.mark.parametrize("cls", CLASSES)
def test_missing_vocab_file(cls, tmp_path):
    missing = tmp_path / "nope" / "vocab.txt"
    with pytest.raises(FileNotFoundError, match="vocabulary file not found: .*nope/vocab.txt"):
        cls(str(missing))
    with pytest.raises(FileNotFoundError, match="no tokenizer at .*nope"):
        cls.from_pretrained(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="neither vocab.txt nor tokenizer.json"):
        cls.from_pretrained(tmp_path)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("missing", ["[CLS]", "[SEP]", "[MASK]", "[UNK]"])
def test_vocab_without_a_special_token(cls, missing, tmp_path):
    tokens = [t for t in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"] if t != missing]
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    with pytest.raises(ValueError) as info:
        cls(str(path))
    message = str(info.value)
    assert missing in message and "vocab.txt" in message and "add them" in message
    for other in {"[CLS]", "[SEP]", "[MASK]", "[UNK]"} - {missing}:
        assert f"token(s) {other}" not in message


@pytest.mark.parametrize("cls", CLASSES)
def test_vocab_with_invalid_utf8(cls, tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_bytes(b"[PAD]\n[UNK]\ncaf\xe9\n[CLS]\n[SEP]\n[MASK]\n")
    with pytest.raises(ValueError, match=r"vocab.txt:3: invalid UTF-8 \(byte 0xe9 at column 4\)"):
        cls(str(path))


@pytest.mark.parametrize("cls", CLASSES)
def test_non_string_inputs_name_type_and_position(cls, tiny_vocab_file):
    tok = cls(str(tiny_vocab_file))
    with pytest.raises(TypeError, match=r"text\[2\] is int \(7\), expected str"):
        tok(["the", "cat", 7])
    with pytest.raises(TypeError, match=r"text_pair\[1\] is NoneType"):
        tok(["the", "cat"], ["sat", None])
    with pytest.raises(TypeError, match=r"text\[0\]\[1\] is bytes"):
        tok([("the", b"cat")])
    with pytest.raises(TypeError, match="text must be a string or a list of strings, got float"):
        tok(3.5)
    with pytest.raises(TypeError, match="text_pair must be a string"):
        tok("the", 4)
    with pytest.raises(ValueError, match="text_pair must be a list of as many strings"):
        tok(["the", "cat"], ["sat"])
    with pytest.raises(TypeError, match="is bytes"):
        tok.tokenize(b"the")


@pytest.mark.parametrize("cls", CLASSES)
def test_bad_options(cls, tiny_vocab_file):
    tok = cls(str(tiny_vocab_file))
    with pytest.raises(ValueError, match="padding='sideways'"):
        tok("the", padding="sideways")
    with pytest.raises(ValueError, match="truncation='middle'"):
        tok("the", truncation="middle")
    with pytest.raises(ValueError, match="not a multiple of pad_to_multiple_of"):
        tok("the", truncation=True, padding=True, max_length=10, pad_to_multiple_of=8)
    with pytest.raises(IndexError, match="outside the vocabulary"):
        tok.decode([5, 999])


def test_corpus_with_invalid_utf8_names_file_and_line(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("one line\nanother line\n", encoding="utf-8")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\nstill fine\nbroken \xff here\n")
    with pytest.raises(ValueError, match=r"bad.txt:3: invalid UTF-8"):
        train_wordpiece([good, bad], 100, output_dir=tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "tokenizer_config.json").exists()


def test_training_input_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="corpus file not found"):
        train_wordpiece([tmp_path / "missing.txt"], 100, output_dir=tmp_path / "out", progress=False)
    with pytest.raises(ValueError, match="no input files"):
        train_wordpiece([], 100, output_dir=tmp_path / "out", progress=False)
    (tmp_path / "c.txt").write_text("text\n", encoding="utf-8")
    with pytest.raises(ValueError, match="leaves no room"):
        train_wordpiece([tmp_path / "c.txt"], 5, output_dir=tmp_path / "out", progress=False)
