"""Tokenizer training that must not fail silently: an existing vocabulary, empty and binary input."""

from __future__ import annotations

import gzip
import os
import sys

import pytest

from bert_jax.tokenization import BertTokenizerFast
from bert_jax.vocab import main, train_wordpiece

from conftest import CORPUS_DIR

TUTORIAL = str(CORPUS_DIR / "tutorial.txt")
FAQ = str(CORPUS_DIR / "faq.txt")


def _snapshot(directory) -> dict[str, bytes]:
    return {n: open(os.path.join(directory, n), "rb").read() for n in sorted(os.listdir(directory))
            if os.path.isfile(os.path.join(directory, n))}


def test_existing_vocabulary_is_not_overwritten_without_flag(tmp_path, capsys):
    out = tmp_path / "vocab"
    assert main(["train", "--input", TUTORIAL, "--vocab-size", "300", "--output", str(out), "--quiet"]) == 0
    (out / "README.md").write_text("notes about this vocabulary\n")
    before = _snapshot(out)
    capsys.readouterr()
    assert main(["train", "--input", FAQ, "--vocab-size", "400", "--output", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"output directory {out} is not empty" in err and "vocab.txt" in err and "--overwrite" in err
    assert _snapshot(out) == before  # the first vocabulary is intact
    # The advice: --overwrite replaces the tokenizer files and keeps the user's.
    assert main(["train", "--input", FAQ, "--vocab-size", "400", "--output", str(out), "--quiet", "--overwrite"]) == 0
    after = _snapshot(out)
    assert after["README.md"] == before["README.md"]
    assert after["vocab.txt"] != before["vocab.txt"]
    assert BertTokenizerFast.from_pretrained(out).vocab_size == 400


def test_empty_output_directory_and_interrupted_staging_are_accepted(tmp_path):
    out = tmp_path / "vocab"
    out.mkdir()
    (out / ".vocab-leftover").mkdir()  # what an interrupted run leaves behind
    train_wordpiece([TUTORIAL], 300, output_dir=out, progress=False)
    assert (out / "vocab.txt").exists()


def test_empty_file_is_refused_naming_it(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    blank = tmp_path / "blank.txt"
    blank.write_bytes(b"\n\n   \n\t\n")
    for files in ([empty], [empty, blank]):
        with pytest.raises(ValueError, match=rf"no usable text in {empty}.*empty or hold only blank lines"):
            train_wordpiece(files, 100, output_dir=tmp_path / "out", progress=False)
        assert not (tmp_path / "out" / "vocab.txt").exists()


def test_empty_file_among_text_files_warns(tmp_path, caplog):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with caplog.at_level("WARNING"):
        tok = train_wordpiece([TUTORIAL, empty], 300, output_dir=tmp_path / "out", progress=False)
    assert f"{empty}: empty or only blank lines" in caplog.text
    assert tok.vocab_size == 300


def test_binary_files_are_refused_naming_them(tmp_path, capsys):
    nul = tmp_path / "zeros.bin"
    nul.write_bytes(b"\0" * 4096)
    exe = tmp_path / "python.bin"
    exe.write_bytes(open(os.path.realpath(sys.executable), "rb").read(100_000))
    gz = tmp_path / "faq.txt.gz"
    gz.write_bytes(gzip.compress(open(FAQ, "rb").read()))
    for bad in (nul, exe, gz):
        with pytest.raises(ValueError, match=rf"corpus file {bad} looks binary, not text"):
            train_wordpiece([TUTORIAL, bad], 300, output_dir=tmp_path / "out", progress=False)
        assert not (tmp_path / "out").exists()
    assert main(["train", "--input", str(nul), "--vocab-size", "100", "--output", str(tmp_path / "cli"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{nul} looks binary" in err and "NUL byte at offset 0" in err
    assert not (tmp_path / "cli").exists()
