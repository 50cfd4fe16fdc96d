"""SWAG CSV layout: reading (choices from the columns, the released files' unnamed index column),
errors that name the line, and encoding to [examples, choices, length]."""

import csv
import glob
import os

import numpy as np
import pytest

from bert_jax.tasks.swag_data import IGNORE_LABEL, encode_swag, read_swag

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SWAG = os.path.join(ROOT, "data", "tasks", "swag_next")


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    """BertTokenizerFast over a 1,000-token WordPiece vocabulary trained on the bundled corpus."""
    tokenizers = pytest.importorskip("tokenizers")
    from bert_jax.tokenization import BertTokenizerFast
    root = tmp_path_factory.mktemp("vocab")
    trainer = tokenizers.BertWordPieceTokenizer(lowercase=True)
    trainer.train(sorted(glob.glob(os.path.join(ROOT, "data", "corpus", "*.txt"))), vocab_size=1000,
                  min_frequency=2, show_progress=False)
    trainer.save_model(str(root))
    return BertTokenizerFast(str(root / "vocab.txt"))


def rows_of(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def write_rows(path, rows):
    with open(path, "w", encoding="utf-8", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


def test_reads_the_layout():
    got = read_swag(os.path.join(SWAG, "val.csv"))
    header, *rows = rows_of(os.path.join(SWAG, "val.csv"))
    assert len(got) == len(rows)
    for example, row in zip(got, rows):
        record = dict(zip(header, row))
        assert example.context == record["sent1"] and example.start == record["sent2"]
        assert example.endings == tuple(record[f"ending{i}"] for i in range(4))
        assert example.label == int(record["label"])
    assert [e.label for e in read_swag(os.path.join(SWAG, "test.csv"))] == [None] * len(
        read_swag(os.path.join(SWAG, "test.csv")))


def test_choices_from_columns_and_the_unnamed_index(tmp_path):
    header, *rows = rows_of(os.path.join(SWAG, "val.csv"))
    # The released SWAG files start with an unnamed index column; a fifth ending makes five choices.
    five = [[""] + header[:10] + ["ending4", "label"]] + [[str(100 + k)] + r[:10] + [r[6], r[10]]
                                                          for k, r in enumerate(rows[:3])]
    write_rows(tmp_path / "five.csv", five)
    got = read_swag(str(tmp_path / "five.csv"))
    assert [e.guid for e in got] == ["100", "101", "102"]
    assert all(len(e.endings) == 5 and e.endings[4] == e.endings[0] for e in got)


def test_errors_name_the_line(tmp_path):
    header, *rows = rows_of(os.path.join(SWAG, "val.csv"))
    write_rows(tmp_path / "a.csv", [header, rows[0], rows[1][:-1] + ["4"]])
    with pytest.raises(ValueError, match=r"a.csv:3: label '4' is not a choice index 0..3"):
        read_swag(str(tmp_path / "a.csv"))
    write_rows(tmp_path / "b.csv", [header, rows[0][:-1] + ["x"]])
    with pytest.raises(ValueError, match=r"b.csv:2: label 'x'"):
        read_swag(str(tmp_path / "b.csv"))
    write_rows(tmp_path / "c.csv", [header, rows[0][:-2]])
    with pytest.raises(ValueError, match=r"c.csv:2: 9 fields, the header has 11"):
        read_swag(str(tmp_path / "c.csv"))
    write_rows(tmp_path / "d.csv", [[c for c in header if c not in ("sent2", "ending0")], rows[0][:9]])
    with pytest.raises(ValueError, match=r"d.csv:1: the header lacks sent2, ending0"):
        read_swag(str(tmp_path / "d.csv"))
    write_rows(tmp_path / "e.csv", [header])
    with pytest.raises(ValueError, match="e.csv: no examples"):
        read_swag(str(tmp_path / "e.csv"))


def test_encoding_pairs_every_ending_with_the_context(tokenizer):
    examples = read_swag(os.path.join(SWAG, "val.csv"))[:16]
    out = encode_swag(examples, tokenizer, 96)
    assert out["input_ids"].shape == (16, 4, 96) and out["input_ids"].dtype == np.int32
    assert out["labels"].tolist() == [e.label for e in examples]
    for k, example in enumerate(examples):
        for i, ending in enumerate(example.endings):
            ref = tokenizer(example.context, f"{example.start} {ending}", padding="max_length", truncation=True,
                            max_length=96)
            assert out["input_ids"][k, i].tolist() == ref["input_ids"]
            assert out["token_type_ids"][k, i].tolist() == ref["token_type_ids"]
            assert out["attention_mask"][k, i].tolist() == ref["attention_mask"]
    short = encode_swag(examples, tokenizer, 16)  # truncated: every row full
    assert short["attention_mask"].sum(-1).min() == 16
    test = encode_swag(read_swag(os.path.join(SWAG, "test.csv"))[:3], tokenizer, 32)
    assert test["labels"].tolist() == [IGNORE_LABEL] * 3
