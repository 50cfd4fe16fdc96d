"""WordPiece vocabulary training: layout, files, round trips, CLI, streaming."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from bert_jax.tokenization import BertTokenizer, BertTokenizerFast
from bert_jax.vocab import SPECIAL_TOKENS, iter_corpus_lines, main, train_wordpiece


@pytest.mark.parametrize("vocab", ["uncased", "cased"])
def test_trained_vocab_layout(vocab, trained_vocabs):
    directory = trained_vocabs[vocab]
    lines = (directory / "vocab.txt").read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and len(lines) - 1 == 8000 and len(set(lines[:-1])) == 8000
    assert tuple(lines[:5]) == SPECIAL_TOKENS == ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
    config = json.loads((directory / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["do_lower_case"] is (vocab == "uncased")
    assert json.loads((directory / "special_tokens_map.json").read_text())["mask_token"] == "[MASK]"
    tok = BertTokenizerFast.from_pretrained(directory)
    assert (tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id) == (0, 1, 2, 3, 4)
    has_upper = any(t != t.lower() for t in lines[5:-1])
    assert has_upper is (vocab == "cased")
    assert not list(directory.glob(".vocab-*")), "staging directory left behind"


def test_training_twice_gives_the_same_vocabulary(corpus_files, tmp_path):
    """The same files give the same vocab.txt, byte for byte. The tokenizers trainer alone
    numbered continuation characters in hash order, which moved token ids and, at this size,
    sometimes changed which tokens were learnt (2 distinct sets in 5 runs)."""
    texts = []
    for run in range(3):
        train_wordpiece(corpus_files, 3000, output_dir=tmp_path / str(run), progress=False)
        texts.append((tmp_path / str(run) / "vocab.txt").read_bytes())
    assert texts[0] == texts[1] == texts[2]
    lines = texts[0].decode("utf-8").split("\n")
    continuations = [t for t in lines if t.startswith("##") and len(t) == 3]
    assert lines[5:5 + len(continuations)] == sorted(continuations)  # fixed, sorted ids after the specials


def test_trained_vocab_covers_the_corpus(trained_vocabs, corpus_lines):
    # Every word of the training corpus is segmentable, so [UNK] stays rare.
    tok = BertTokenizerFast.from_pretrained(trained_vocabs["uncased"])
    ids = [i for row in tok(corpus_lines[:3000], add_special_tokens=False)["input_ids"] for i in row]
    assert ids.count(tok.unk_token_id) / len(ids) < 1e-3


@pytest.mark.parametrize("cls", [BertTokenizer, BertTokenizerFast])
def test_round_trip_through_save_pretrained(cls, trained_vocabs, corpus_lines, tmp_path):
    original = cls.from_pretrained(trained_vocabs["uncased"])
    original.save_pretrained(tmp_path)
    reloaded = cls.from_pretrained(tmp_path)
    sample = corpus_lines[:500]
    assert reloaded(sample, truncation=True, max_length=64)["input_ids"] == \
        original(sample, truncation=True, max_length=64)["input_ids"]


@pytest.mark.parity
@pytest.mark.parametrize("vocab", ["uncased", "cased"])
def test_transformers_loads_trained_and_saved_vocab(vocab, trained_vocabs, corpus_lines, hard_cases, tmp_path):
    transformers = pytest.importorskip("transformers")
    ours = BertTokenizerFast.from_pretrained(trained_vocabs[vocab])
    ours.save_pretrained(tmp_path / "saved")
    sample = corpus_lines[:2000] + hard_cases
    expected = ours(sample, truncation=True, max_length=64)["input_ids"]
    for directory in (trained_vocabs[vocab], tmp_path / "saved"):
        theirs = transformers.BertTokenizerFast.from_pretrained(str(directory))
        assert theirs.vocab == ours.vocab
        assert theirs(sample, truncation=True, max_length=64)["input_ids"] == expected
        assert [theirs.pad_token_id, theirs.unk_token_id, theirs.cls_token_id, theirs.sep_token_id,
                theirs.mask_token_id] == [0, 1, 2, 3, 4]


def test_cli_trains_a_vocabulary(tmp_path, corpus_files, capsys):
    out = tmp_path / "vocab"
    assert main(["train", "--input", *corpus_files[:2], "--vocab-size", "600", "--cased", "--output", str(out),
                 "--quiet"]) == 0
    assert "wrote 600-token vocabulary" in capsys.readouterr().out
    tok = BertTokenizer.from_pretrained(out)
    assert tok.vocab_size == 600 and tok.do_lower_case is False
    assert main(["train", "--input", str(tmp_path / "missing.txt"), "--vocab-size", "600", "--output", str(out)]) == 2
    assert f"input path {str(tmp_path / 'missing.txt')!r} does not exist" in capsys.readouterr().err


def test_cli_takes_a_directory_and_says_when_the_size_cannot_be_met(tmp_path, corpus_files, capsys, caplog):
    """A directory was "corpus file not found"; a size below the alphabet wrote a larger
    vocabulary without a word."""
    import logging
    import shutil
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for f in corpus_files[:2]:
        shutil.copy(f, corpus)
    files = sorted(str(p) for p in corpus.iterdir())
    for inputs, out in (([str(corpus)], "a"), (files, "b")):  # the folder, then its files by name
        assert main(["train", "--input", *inputs, "--vocab-size", "600", "--output", str(tmp_path / out),
                     "--quiet"]) == 0
    assert (tmp_path / "a" / "vocab.txt").read_text() == (tmp_path / "b" / "vocab.txt").read_text()
    with caplog.at_level(logging.WARNING, logger="bert_jax"):
        assert main(["train", "--input", str(corpus), "--vocab-size", "20", "--output", str(tmp_path / "c"),
                     "--quiet"]) == 0
    size = len((tmp_path / "c" / "vocab.txt").read_text().splitlines())
    assert size > 20 and f"the vocabulary has {size} tokens, not 20" in caplog.text
    # The Python API takes files only; a folder is refused naming it and the command that expands it.
    with pytest.raises(IsADirectoryError, match=re.escape(f"--input {corpus}` takes the .txt files")):
        train_wordpiece([str(corpus)], 600, output_dir=str(tmp_path / "d"), progress=False)
    assert not (tmp_path / "d").exists()
    (tmp_path / "afile").write_text("mine\n")  # an --output under a file: named, was a bare "[Errno 20]"
    assert main(["train", "--input", str(corpus), "--vocab-size", "600", "--output", str(tmp_path / "afile" / "v"),
                 "--quiet"]) == 2
    assert f"{tmp_path / 'afile'} is a file, so no folder can be made under it" in capsys.readouterr().err


def test_cli_through_the_entry_point(tmp_path, corpus_files):
    result = subprocess.run(
        [sys.executable, "-m", "bert_jax.cli", "tokenizer", "train", "--input", corpus_files[0],
         "--vocab-size", "300", "--output", str(tmp_path / "v")],
        capture_output=True, text=True, check=True,
    )
    assert "reading corpus" in result.stderr  # progress is shown
    assert (tmp_path / "v" / "tokenizer.json").exists()
    # stdout is the one result line: the tokenizers library's bars wrote 6 blank lines there, and
    # the same result was logged on stderr as well
    assert result.stdout.splitlines() == [f"wrote 300-token vocabulary to {tmp_path / 'v'} "
                                          "([PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4)"], result.stdout
    assert "wrote 300-token" not in result.stderr


@pytest.mark.parametrize("flag, value", [("--min-frequency", "-1"), ("--limit-alphabet", "0"),
                                         ("--limit-alphabet", "-1")])
def test_out_of_range_training_flags_are_named(flag, value, tmp_path, corpus_files, capsys):
    """--min-frequency -1 was an OverflowError traceback; --limit-alphabet 0 was reported as a
    corpus with no words left, blaming the text."""
    assert main(["train", "--input", corpus_files[0], "--vocab-size", "300", "--output", str(tmp_path / "v"),
                 flag, value, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"({flag}) must be" in err and "Traceback" not in err, err
    assert not (tmp_path / "v").exists()


def test_help_lists_the_special_token_ids(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "[PAD] = 0, [UNK] = 1, [CLS] = 2, [SEP] = 3, [MASK] = 4" in capsys.readouterr().out


def test_corpus_is_read_lazily(tmp_path):
    # Line 3 is invalid: a reader that loads the whole file first would fail
    # before yielding anything; a streaming one yields lines 1-2 first.
    path = tmp_path / "c.txt"
    path.write_bytes(b"first line\n\nsecond line\n\xff bad\n")
    lines = iter_corpus_lines([str(path)], progress=False)
    assert next(lines) == "first line" and next(lines) == "second line"  # blank line skipped
    with pytest.raises(ValueError, match="c.txt:4"):
        next(lines)


_PEAK_RSS = """
import resource, sys
from bert_jax.vocab import train_wordpiece
train_wordpiece(sys.argv[2:], 8000, output_dir=sys.argv[1], progress=False)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.slow
def test_training_memory_does_not_grow_with_corpus_size(tmp_path, corpus_files):
    """Peak memory training on the corpus repeated 10 times (~30 MB) stays
    within 20 MB of training on it once: the text is never held in memory."""
    peaks = {}
    for repeats in (1, 10):
        files = corpus_files * repeats
        out = subprocess.run([sys.executable, "-c", _PEAK_RSS, str(tmp_path / f"v{repeats}"), *files],
                             capture_output=True, text=True, check=True)
        peaks[repeats] = int(out.stdout.split()[-1]) / 1024  # MiB (ru_maxrss is KiB on Linux)
    assert peaks[10] - peaks[1] < 20, peaks
