"""GLUE readers: every task's original layout and quirks, errors that point at the line, the Hub
conversion (in memory), and submission files. Texts are real sentences of the bundled corpus."""

import os

import pytest

from bert_jax.tasks import glue_data
from bert_jax.tasks.glue_data import GLUE_TASKS, read_glue, read_glue_submission, write_glue_submission

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def corpus_sentences(n, start=0):
    with open(os.path.join(ROOT, "data", "corpus", "tutorial.txt"), encoding="utf-8") as f:
        lines = [line.strip() for line in f if line.strip() and "\t" not in line]
    return lines[start:start + n]


S = corpus_sentences(12)
QUOTED = next(s for s in corpus_sentences(400) if s.startswith('"'))  # opens with an unbalanced-looking quote
MNLI_HEAD = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
             "sentence1_parse", "sentence2_parse", "sentence1", "sentence2"]
STS_HEAD = ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2"]


def write(path, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join("\t".join(map(str, r)) + "\n" for r in rows))


def layout(task, root):
    """Files of `task` in the GLUE download's layout; returns the expected examples per split."""
    d = str(root / task)
    a, b = S[:3], S[3:6]
    if task == "cola":
        write(f"{d}/train.tsv", [["gj04", 1, "", QUOTED], ["gj04", 0, "*", a[1]]])
        write(f"{d}/dev.tsv", [["gj04", 0, "*", a[2]]])
        write(f"{d}/test.tsv", [["index", "sentence"], [0, b[0]]])
        return {"train": [("train-0", QUOTED, None, "1"), ("train-1", a[1], None, "0")],
                "dev": [("dev-0", a[2], None, "0")], "test": [("test-0", b[0], None, None)]}
    if task == "sst2":
        write(f"{d}/train.tsv", [["sentence", "label"], [QUOTED, 1], [a[1], 0]])
        write(f"{d}/dev.tsv", [["sentence", "label"], [a[2], 1]])
        write(f"{d}/test.tsv", [["index", "sentence"], [0, b[0]]])
        return {"train": [("train-0", QUOTED, None, "1"), ("train-1", a[1], None, "0")],
                "dev": [("dev-0", a[2], None, "1")], "test": [("test-0", b[0], None, None)]}
    if task == "mrpc":
        head = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
        write(f"{d}/train.tsv", [head, [1, 702876, 702977, QUOTED, b[0]], [0, 2108705, 2108831, a[1], b[1]]])
        write(f"{d}/dev.tsv", [head, [0, 1, 2, a[2], b[2]]])
        write(f"{d}/test.tsv", [["index", "#1 ID", "#2 ID", "#1 String", "#2 String"],
                                [0, 1089874, 1089925, b[0], a[0]]])
        return {"train": [("train-0", QUOTED, b[0], "1"), ("train-1", a[1], b[1], "0")],
                "dev": [("dev-0", a[2], b[2], "0")], "test": [("test-0", b[0], a[0], None)]}
    if task == "stsb":
        write(f"{d}/train.tsv", [STS_HEAD + ["score"], [0, "main-captions", "MSRvid", "2012test", 1, "none", "none",
                                                       QUOTED, b[0], "5.000"]])
        write(f"{d}/dev.tsv", [STS_HEAD + ["score"],
                               [7, "main-forums", "f", "2014", 3, "none", "none", a[1], b[1], "0.8"]])
        write(f"{d}/test.tsv", [STS_HEAD, [0, "main-news", "f", "2016", 1, "none", "none", a[2], b[2]]])
        return {"train": [("train-0", QUOTED, b[0], 5.0)], "dev": [("dev-7", a[1], b[1], 0.8)],
                "test": [("test-0", a[2], b[2], None)]}
    if task == "qqp":
        head = ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"]
        write(f"{d}/train.tsv", [head, [133273, 213221, 213222, QUOTED, b[0], 0]])
        write(f"{d}/dev.tsv", [head, [5, 1, 2, a[1], b[1], 1]])
        write(f"{d}/test.tsv", [["id", "question1", "question2"], [0, a[2], b[2]]])
        return {"train": [("train-133273", QUOTED, b[0], "0")], "dev": [("dev-5", a[1], b[1], "1")],
                "test": [("test-0", a[2], b[2], None)]}
    if task == "mnli":
        parses = ["( x )", "( y )", "(ROOT x)", "(ROOT y)"]
        train = [MNLI_HEAD + ["label1", "gold_label"], [0, 31193, "31193n", "government", *parses, QUOTED, b[0],
                                                      "neutral", "neutral"]]
        dev = [MNLI_HEAD + [f"label{i}" for i in range(1, 6)] + ["gold_label"],
               [0, 63735, "63735n", "slate", *parses, a[1], b[1], "neutral", "entailment", "neutral", "neutral",
                "neutral", "neutral"],
               [1, 91383, "91383c", "slate", *parses, a[2], b[2], "contradiction", "contradiction",
                "contradiction", "contradiction", "contradiction", "contradiction"]]
        write(f"{d}/train.tsv", train)
        for name in ("dev_matched", "dev_mismatched"):
            write(f"{d}/{name}.tsv", dev)
        for name in ("test_matched", "test_mismatched"):
            write(f"{d}/{name}.tsv", [MNLI_HEAD, [0, 31193, "31193n", "government", *parses, a[0], b[0]]])
        dev_rows = [("dev_matched-0", a[1], b[1], "neutral"), ("dev_matched-1", a[2], b[2], "contradiction")]
        return {"train": [("train-0", QUOTED, b[0], "neutral")], "dev_matched": dev_rows,
                "dev_mismatched": [(g.replace("matched", "mismatched"), *r) for g, *r in dev_rows],
                "test_matched": [("test_matched-0", a[0], b[0], None)],
                "test_mismatched": [("test_mismatched-0", a[0], b[0], None)]}
    if task == "ax":
        write(f"{d}/diagnostic.tsv", [["index", "sentence1", "sentence2"], [0, QUOTED, b[0]]])
        return {"test": [("test-0", QUOTED, b[0], None)]}
    first, second = {"qnli": ("question", "sentence")}.get(task, ("sentence1", "sentence2"))
    pos, neg = {"qnli": ("entailment", "not_entailment"), "rte": ("entailment", "not_entailment"),
                "wnli": ("1", "0")}[task]
    write(f"{d}/train.tsv", [["index", first, second, "label"], [0, QUOTED, b[0], pos], [1, a[1], b[1], neg]])
    write(f"{d}/dev.tsv", [["index", first, second, "label"], [0, a[2], b[2], neg]])
    write(f"{d}/test.tsv", [["index", first, second], [0, a[0], b[0]]])
    return {"train": [("train-0", QUOTED, b[0], pos), ("train-1", a[1], b[1], neg)],
            "dev": [("dev-0", a[2], b[2], neg)], "test": [("test-0", a[0], b[0], None)]}


@pytest.mark.parametrize("task", sorted(GLUE_TASKS))
def test_every_task_reads_its_original_layout(task, tmp_path):
    expected = layout(task, tmp_path)
    assert set(expected) == set(GLUE_TASKS[task].files)
    for split, rows in expected.items():
        got = read_glue(task, str(tmp_path / task), split)
        assert [(e.guid, e.text_a, e.text_b, e.label) for e in got] == rows, (task, split)


def test_task_names_accept_glue_spellings(tmp_path):
    layout("stsb", tmp_path)
    assert read_glue("STS-B", str(tmp_path / "stsb"), "dev")[0].label == 0.8
    with pytest.raises(ValueError, match="unknown GLUE task 'squad'.*cola"):
        read_glue("squad", str(tmp_path), "train")


def test_missing_file_names_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"dev_matched.tsv not found.*train.tsv, dev_matched.tsv, "
                                                r"dev_mismatched.tsv, test_matched.tsv, test_mismatched.tsv"):
        read_glue("mnli", str(tmp_path), "dev_matched")
    with pytest.raises(ValueError, match="mnli has no split 'dev'; its splits are train, dev_matched"):
        read_glue("mnli", str(tmp_path), "dev")


def test_missing_column_names_file_line_and_header(tmp_path):
    write(tmp_path / "rte" / "train.tsv", [["index", "sentence1", "hypothesis", "label"],
                                           [0, S[0], S[1], "entailment"]])
    with pytest.raises(ValueError, match=r"rte[/\\]train.tsv:1: the header has no column 'sentence2' "
                                         r"\(it has: index, sentence1, hypothesis, label\)"):
        read_glue("rte", str(tmp_path / "rte"), "train")


def test_label_outside_the_label_set(tmp_path):
    write(tmp_path / "qnli" / "dev.tsv", [["index", "question", "sentence", "label"], [0, S[0], S[1], "entailment"],
                                          [1, S[2], S[3], "neutral"]])
    with pytest.raises(ValueError, match=r"dev.tsv:3: label 'neutral' is not a qnli label; valid labels: "
                                         r"entailment, not_entailment"):
        read_glue("qnli", str(tmp_path / "qnli"), "dev")
    write(tmp_path / "cola" / "train.tsv", [["gj04", 1, "", S[0]], ["gj04", "*", "", S[1]]])
    with pytest.raises(ValueError, match=r"train.tsv:2: label '\*' is not a cola label; valid labels: 0, 1"):
        read_glue("cola", str(tmp_path / "cola"), "train")


def test_sts_score_must_be_a_number_in_range(tmp_path):
    row = [0, "g", "f", "y", 0, "none", "none", S[0], S[1]]
    write(tmp_path / "stsb" / "train.tsv", [STS_HEAD + ["score"], row + ["4.2"], row + ["high"]])
    with pytest.raises(ValueError, match=r"train.tsv:3: score 'high' is not a number"):
        read_glue("stsb", str(tmp_path / "stsb"), "train")
    write(tmp_path / "stsb" / "dev.tsv", [STS_HEAD + ["score"], row + ["5.5"]])
    with pytest.raises(ValueError, match=r"dev.tsv:2: score 5.5 is outside \[0, 5\]"):
        read_glue("stsb", str(tmp_path / "stsb"), "dev")


def test_empty_split_and_short_rows(tmp_path):
    write(tmp_path / "rte" / "dev.tsv", [["index", "sentence1", "sentence2", "label"]])
    with pytest.raises(ValueError, match=r"dev.tsv: no examples in split 'dev'"):
        read_glue("rte", str(tmp_path / "rte"), "dev")
    write(tmp_path / "rte" / "train.tsv", [["index", "sentence1", "sentence2", "label"], [0, S[0]]])
    with pytest.raises(ValueError, match=r"train.tsv:2: 2 tab-separated columns, the header has 4"):
        read_glue("rte", str(tmp_path / "rte"), "train")
    write(tmp_path / "cola" / "dev.tsv", [["gj04", 1, S[0]]])
    with pytest.raises(ValueError, match=r"dev.tsv:1: 3 tab-separated columns, cola dev rows have 4"):
        read_glue("cola", str(tmp_path / "cola"), "dev")


def test_qqp_skips_broken_rows_with_a_count_unless_strict(tmp_path, caplog):
    head = ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"]
    # A question holding a newline splits its row in two, as in the released QQP files.
    write(tmp_path / "qqp" / "train.tsv", [head, [0, 1, 2, S[0], S[1], 1], [1, 3, 4, S[2]], [S[3], 0],
                                           [2, 5, 6, S[4], S[5], 0]])
    got = read_glue("qqp", str(tmp_path / "qqp"), "train")
    assert [e.guid for e in got] == ["train-0", "train-2"]
    assert "skipped 2 malformed rows" in caplog.text and "lines 3, 4" in caplog.text
    with pytest.raises(ValueError, match=r"train.tsv:3: 4 tab-separated columns, the header has 6"):
        read_glue("qqp", str(tmp_path / "qqp"), "train", strict=True)


def test_hub_conversion_matches_the_file_labels():
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["entailment", "neutral", "contradiction"]),
                                  "idx": datasets.Value("int32")})
    mnli = datasets.Dataset.from_dict({"premise": S[:3], "hypothesis": S[3:6], "label": [2, 0, 1], "idx": [0, 1, 2]},
                                      features=features)
    got = glue_data.examples_from_hub("mnli", mnli, "dev_matched")
    assert [(e.guid, e.text_a, e.text_b, e.label) for e in got] == [
        ("dev_matched-0", S[0], S[3], "contradiction"), ("dev_matched-1", S[1], S[4], "entailment"),
        ("dev_matched-2", S[2], S[5], "neutral")]
    cola = datasets.Dataset.from_dict(
        {"sentence": S[:2], "label": [1, -1], "idx": [4, 5]},
        features=datasets.Features({"sentence": datasets.Value("string"),
                                    "label": datasets.ClassLabel(names=["unacceptable", "acceptable"]),
                                    "idx": datasets.Value("int32")}))
    assert [(e.text_a, e.text_b, e.label) for e in glue_data.examples_from_hub("cola", cola, "train")] == [
        (S[0], None, "1"), (S[1], None, None)]
    stsb = datasets.Dataset.from_dict({"sentence1": S[:2], "sentence2": S[2:4], "label": [3.8, -1.0], "idx": [0, 1]})
    assert [e.label for e in glue_data.examples_from_hub("stsb", stsb, "test")] == [3.8, None]
    wrong = datasets.Dataset.from_dict(
        {"sentence1": S[:1], "sentence2": S[1:2], "label": [0], "idx": [0]},
        features=datasets.Features({"sentence1": datasets.Value("string"), "sentence2": datasets.Value("string"),
                                    "label": datasets.ClassLabel(names=["not_equivalent", "equivalent"]),
                                    "idx": datasets.Value("int32")}))
    with pytest.raises(ValueError, match="Hub label names.*not the GLUE rte dataset"):
        glue_data.examples_from_hub("rte", wrong, "train")
    with pytest.raises(ValueError, match=r"lacks columns \['question'"):
        glue_data.examples_from_hub("qnli", wrong, "train")


SERVER_NAMES = {("cola", "test"): "CoLA.tsv", ("sst2", "test"): "SST-2.tsv", ("mrpc", "test"): "MRPC.tsv",
                ("stsb", "test"): "STS-B.tsv", ("qqp", "test"): "QQP.tsv", ("mnli", "test_matched"): "MNLI-m.tsv",
                ("mnli", "test_mismatched"): "MNLI-mm.tsv", ("qnli", "test"): "QNLI.tsv", ("rte", "test"): "RTE.tsv",
                ("wnli", "test"): "WNLI.tsv", ("ax", "test"): "AX.tsv"}


@pytest.mark.parametrize("task,split", sorted(SERVER_NAMES))
def test_submission_files_round_trip(task, split, tmp_path):
    spec = GLUE_TASKS[task]
    preds = [0.5, -1.0, 7.25, 4.0] if spec.is_regression else [0, len(spec.labels) - 1, spec.labels[0], 1]
    path = write_glue_submission(task, preds, str(tmp_path), split=split)
    assert os.path.basename(path) == SERVER_NAMES[(task, split)]
    rows = read_glue_submission(path)
    assert [i for i, _ in rows] == [0, 1, 2, 3]
    if spec.is_regression:
        assert [p for _, p in rows] == ["0.500", "0.000", "5.000", "4.000"]  # clipped to [0, 5]
    else:
        assert [p for _, p in rows] == [spec.labels[0], spec.labels[-1], spec.labels[0], spec.labels[1]]
        if task in ("mnli", "ax"):
            assert {p for _, p in rows} <= {"entailment", "neutral", "contradiction"}
        elif task in ("qnli", "rte"):
            assert {p for _, p in rows} <= {"entailment", "not_entailment"}
        else:
            assert {p for _, p in rows} <= {"0", "1"}
    assert open(path).readline() == "index\tprediction\n"


def test_submission_refuses_bad_predictions(tmp_path):
    with pytest.raises(ValueError, match="pass split= one of test_matched, test_mismatched"):
        write_glue_submission("mnli", [0], str(tmp_path))
    with pytest.raises(ValueError, match=r"prediction 1 = 3 is not a class id 0..2"):
        write_glue_submission("mnli", [0, 3], str(tmp_path), split="test_matched")
    with pytest.raises(ValueError, match=r"prediction 0 = 'neutral' is not a rte label"):
        write_glue_submission("rte", ["neutral"], str(tmp_path))
    with pytest.raises(ValueError, match="STS-B predictions must be finite"):
        write_glue_submission("stsb", [float("nan")], str(tmp_path))
    bad = tmp_path / "x.tsv"
    bad.write_text("index\tprediction\n0\tentailment\textra\n")
    with pytest.raises(ValueError, match=r"x.tsv:2: expected"):
        read_glue_submission(str(bad))
