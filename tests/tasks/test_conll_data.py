"""CoNLL-2003 layout: reading and its errors, word -> piece alignment, word-aligned windows and
the merge back to words (exact round trip on the bundled conll_docs set), writing predictions."""

import glob
import os

import numpy as np
import pytest

from bert_jax.tasks import conll_data
from bert_jax.tasks.conll_data import IGNORE_INDEX, encode_conll, merge_word_predictions, read_conll

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONLL = os.path.join(ROOT, "data", "tasks", "conll_docs")
LABELS = ("O", "B-CODE", "I-CODE", "B-KW", "I-KW", "B-NUM", "I-NUM", "B-VER", "I-VER")


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


@pytest.fixture(scope="module")
def sentences():
    return read_conll(os.path.join(CONLL, "dev.txt"), LABELS) + read_conll(os.path.join(CONLL, "test.txt"), LABELS)


def test_reads_the_layout(sentences):
    first = sentences[0]
    assert first.document == 0 and first.line == 3  # after "-DOCSTART- -X- -X- O" and a blank line
    assert all(len(row) == 4 and row[1] == row[2] == "-X-" for s in sentences for row in s.columns)
    assert all(s.words == tuple(r[0] for r in s.columns) and s.labels == tuple(r[3] for r in s.columns)
               for s in sentences)
    assert len({s.document for s in sentences}) > 10
    assert conll_data.label_list_of(sentences)[0] == "O"


def test_alignment_round_trip_on_real_text(tokenizer, sentences):
    """Word labels -> piece labels -> (labels as predictions) -> merged words == input, for long words,
    sentences longer than the window, both labelling options and overlapping windows."""
    pieces = conll_data.word_pieces(sentences, tokenizer)
    assert max(len(p) for s in pieces for p in s) >= 8  # identifiers split into many pieces
    assert max(sum(len(p) for p in s) for s in pieces) > 126  # needs several 128-piece windows
    gold = [[LABELS.index(lab) for lab in s.labels] for s in sentences]
    num_words = [len(s.words) for s in sentences]
    b_to_i = {LABELS.index(f"B-{t}"): LABELS.index(f"I-{t}") for t in ("CODE", "KW", "NUM", "VER")}
    for max_len, stride in ((128, 0), (128, 32), (24, 0), (24, 8)):
        for label_all in (False, True):
            feats = encode_conll(sentences, tokenizer, LABELS, max_len, label_all_tokens=label_all, stride=stride)
            assert feats["input_ids"].shape[1] == max_len
            if max_len == 128:
                assert np.bincount(feats["example_index"]).max() >= 2  # some sentence spans 2+ windows
            merged = merge_word_predictions(feats, feats["labels"], num_words)
            assert merged == gold, (max_len, stride, label_all)
            labelled = feats["labels"] != IGNORE_INDEX
            if label_all:
                # Every piece is labelled; continuation pieces of a B- word carry its I- label.
                assert np.array_equal(labelled, feats["word_ids"] >= 0)
                for w, t in zip(*np.nonzero(labelled & ~feats["first_piece"])):
                    head = feats["labels"][w, np.flatnonzero(feats["word_ids"][w] == feats["word_ids"][w, t])[0]]
                    assert feats["labels"][w, t] == b_to_i.get(int(head), int(head))
            else:
                assert np.array_equal(labelled, feats["first_piece"])
    # Logits give the same merge as ids.
    feats = encode_conll(sentences[:20], tokenizer, LABELS, 24, stride=8)
    logits = np.eye(len(LABELS))[np.maximum(feats["labels"], 0)]
    assert merge_word_predictions(feats, logits, num_words[:20]) == gold[:20]


def test_windows_cover_words_in_order(tokenizer, sentences):
    longest = max(sentences, key=lambda s: len(s.words))
    pieces = conll_data.word_pieces([longest], tokenizer)[0]
    for budget, stride in ((30, 0), (30, 10), (126, 20)):
        spans = conll_data.windows(pieces, budget, stride)
        assert spans[0][0] == 0 and spans[-1][1] == len(pieces)
        for (s0, e0), (s1, e1) in zip(spans, spans[1:]):
            assert s0 < s1 <= e0 and sum(len(p) for p in pieces[s1:e0]) <= stride
        assert all(sum(len(p) for p in pieces[s:e]) <= budget or e - s == 1 for s, e in spans)
    feats = encode_conll([longest], tokenizer, LABELS, 32, stride=10)
    for row, (s, e), mask in zip(feats["input_ids"], feats["word_range"], feats["attention_mask"]):
        inside = row[1:mask.sum() - 1].tolist()
        assert inside == [i for p in pieces[s:e] for i in p]
        assert row[0] == tokenizer.cls_token_id and row[mask.sum() - 1] == tokenizer.sep_token_id


def test_write_back_reproduces_the_file(sentences, tmp_path):
    dev = read_conll(os.path.join(CONLL, "dev.txt"), LABELS)
    out = tmp_path / "dev.txt"
    conll_data.write_conll(str(out), dev, [list(s.labels) for s in dev])
    assert out.read_bytes() == open(os.path.join(CONLL, "dev.txt"), "rb").read()
    predicted = [["O"] * len(s.words) for s in dev]
    conll_data.write_conll(str(out), dev, predicted, keep_gold=True)
    again = read_conll(str(out), LABELS, num_columns=5)
    assert [s.labels for s in again] == [tuple(p) for p in predicted]
    assert [tuple(r[3] for r in s.columns) for s in again] == [s.labels for s in dev]
    with pytest.raises(ValueError, match="sentence 0 .*: 1 predicted labels for"):
        conll_data.write_conll(str(out), dev[:1], [["O"]])


def test_errors_point_at_the_line(tmp_path):
    lines = open(os.path.join(CONLL, "dev.txt"), encoding="utf-8").read().splitlines()
    bad = list(lines)
    bad[4] = bad[4].replace(" -X- -X- ", " -X- ")
    (tmp_path / "a.txt").write_text("\n".join(bad) + "\n")
    with pytest.raises(ValueError, match=r"a.txt:5: 3 columns, expected 4 \(data.num_columns; set "
                                         r"--config.data.num_columns to the file's own count"):
        read_conll(str(tmp_path / "a.txt"), LABELS)
    three = [" ".join(line.split()[:1] + line.split()[2:]) for line in lines]  # every line: 3 columns
    (tmp_path / "three.txt").write_text("\n".join(three) + "\n")
    assert [s.labels for s in read_conll(str(tmp_path / "three.txt"), LABELS, num_columns=3)] == \
        [s.labels for s in read_conll(os.path.join(CONLL, "dev.txt"), LABELS)]  # the advice, followed
    with pytest.raises(ValueError, match=r"dev.txt:3: label 'O' \(column -1\) is not in the label list "
                                         r"\(data.labels, in classifier order\) \['B-PER'\]; fix the file, or, for a new "
                                         r"fine-tuning run, add the label: --config.data.labels=B-PER,O$"):
        read_conll(os.path.join(CONLL, "dev.txt"), ["B-PER"])
    (tmp_path / "b.txt").write_text("-DOCSTART- -X- -X- O\n\n")
    with pytest.raises(ValueError, match="b.txt: no sentences"):
        read_conll(str(tmp_path / "b.txt"))
    with pytest.raises(FileNotFoundError, match="c.txt not found"):
        read_conll(str(tmp_path / "c.txt"))
    # Another label column: the first column after the token (here the placeholder POS).
    assert read_conll(os.path.join(CONLL, "dev.txt"), label_column=1)[0].labels[0] == "-X-"
    # A test file of tokens without tags reads as such; a tagged line later in it names both lines
    tokens = [line.split()[0] if line.strip() else "" for line in lines]
    (tmp_path / "tokens.txt").write_text("\n".join(tokens) + "\n")
    plain = read_conll(str(tmp_path / "tokens.txt"), LABELS, tokens_only_ok=True)
    assert [s.words for s in plain] == [s.words for s in read_conll(os.path.join(CONLL, "dev.txt"), LABELS)]
    assert all(s.labels == () for s in plain)
    first = next(i for i, t in enumerate(tokens) if t and t != "-DOCSTART-")
    later = next(i for i, t in enumerate(tokens) if i > first + 1 and t and t != "-DOCSTART-")
    tokens[later] = lines[later]
    (tmp_path / "mixed.txt").write_text("\n".join(tokens) + "\n")
    with pytest.raises(ValueError, match=rf"mixed.txt:{later + 1}: 4 columns, but line {first + 1} has one, so the "
                                         "file was read as tokens without tags"):
        read_conll(str(tmp_path / "mixed.txt"), LABELS, tokens_only_ok=True)


def test_unknown_label_when_encoding(tokenizer, sentences):
    first = next(s for s in sentences if set(s.labels) != {"O"})
    k = next(k for k, lab in enumerate(first.labels) if lab != "O")
    with pytest.raises(ValueError, match=rf"line {first.line + k}: label '{first.labels[k]}' is not in label_list"):
        encode_conll([first], tokenizer, ["O"], 64)
