"""GLUE data in its original distribution layout: reading, the Hub route, submission files.

``read_glue(task, data_dir, split)`` reads the TSV files exactly as the GLUE download ships them,
quirks included: CoLA's train/dev have no header; MRPC uses the ``msr_paraphrase`` columns;
STS-B's score is the last column; MNLI's label is the last column (``gold_label``) and its
dev/test come matched and mismatched; the diagnostic set (AX) is ``diagnostic.tsv`` with no
labels. Every file is read with ``csv.QUOTE_NONE``: GLUE text holds unbalanced quotes that a
quoting reader would swallow across lines.

QQP: the released ``train.tsv`` / ``dev.tsv`` hold a few rows whose question text contains a
newline, which breaks the row into pieces with too few columns. Those pieces are skipped and
counted (one warning per file naming the first lines), as the reference processors skip them;
pass ``strict=True`` to make them errors. Every other task treats a short row as an error.

Labels are kept as the strings of the files (``"0"``/``"1"``, ``"entailment"`` ...) or a float
(STS-B); ``GLUE_TASKS[task].labels`` gives their order, which is also the Hub's class order.
No JAX import here.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Sequence

from bert_jax.text_files import read_utf8

csv.field_size_limit(1 << 24)  # MNLI rows carry full parse trees

NLI_LABELS = ("entailment", "neutral", "contradiction")
BINARY_NLI = ("entailment", "not_entailment")
BINARY = ("0", "1")


@dataclass(frozen=True)
class GlueExample:
    """One example: ``text_b`` is None for single-sentence tasks, ``label`` None on test."""

    guid: str
    text_a: str
    text_b: str | None
    label: str | float | None


@dataclass(frozen=True)
class GlueTask:
    """Where one task keeps its fields, per its original files.

    Attributes:
      name: lower-case task name (``"mnli"``).
      labels: label strings in class-id order; None for regression (STS-B).
      files: split -> file name.
      text_a, text_b: header names of the text columns (text_b None: one sentence).
      label: header name of the label column in labelled splits (``"last"``: the last column).
      guid: header name of the id column, None = use the line number.
      test_guid: the id column of test files.
      headerless: splits whose files have no header; their columns are positional
        (``positions``: field -> column index).
      hub_columns: the Hub dataset's (text_a, text_b) column names.
      submission: split -> file name of the GLUE server submission.
    """

    name: str
    labels: tuple[str, ...] | None
    files: dict[str, str]
    text_a: str
    text_b: str | None
    label: str
    guid: str | None
    test_guid: str
    hub_columns: tuple[str, str | None]
    submission: dict[str, str]
    headerless: tuple[str, ...] = ()
    positions: dict[str, int] = field(default_factory=dict)

    @property
    def is_regression(self) -> bool:
        return self.labels is None

    def label_id(self, label: str) -> int:
        """Class id of a label string (raises with the valid set)."""
        if self.labels is None or label not in self.labels:
            raise ValueError(f"{self.name}: label {label!r} is not one of {self.labels}.")
        return self.labels.index(label)


_STD = {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv"}
GLUE_TASKS: dict[str, GlueTask] = {t.name: t for t in (
    GlueTask("cola", BINARY, _STD, "sentence", None, "label", None, "index", ("sentence", None),
             {"test": "CoLA.tsv"}, headerless=("train", "dev"), positions={"label": 1, "text_a": 3}),
    GlueTask("sst2", BINARY, _STD, "sentence", None, "label", None, "index", ("sentence", None),
             {"test": "SST-2.tsv"}),
    GlueTask("mrpc", BINARY, _STD, "#1 String", "#2 String", "Quality", None, "index",
             ("sentence1", "sentence2"), {"test": "MRPC.tsv"}),
    GlueTask("stsb", None, _STD, "sentence1", "sentence2", "last", "index", "index", ("sentence1", "sentence2"),
             {"test": "STS-B.tsv"}),
    GlueTask("qqp", BINARY, _STD, "question1", "question2", "is_duplicate", "id", "id",
             ("question1", "question2"), {"test": "QQP.tsv"}),
    GlueTask("mnli", NLI_LABELS,
             {"train": "train.tsv", "dev_matched": "dev_matched.tsv", "dev_mismatched": "dev_mismatched.tsv",
              "test_matched": "test_matched.tsv", "test_mismatched": "test_mismatched.tsv"},
             "sentence1", "sentence2", "last", "index", "index", ("premise", "hypothesis"),
             {"test_matched": "MNLI-m.tsv", "test_mismatched": "MNLI-mm.tsv"}),
    GlueTask("qnli", BINARY_NLI, _STD, "question", "sentence", "label", "index", "index", ("question", "sentence"),
             {"test": "QNLI.tsv"}),
    GlueTask("rte", BINARY_NLI, _STD, "sentence1", "sentence2", "label", "index", "index",
             ("sentence1", "sentence2"), {"test": "RTE.tsv"}),
    GlueTask("wnli", BINARY, _STD, "sentence1", "sentence2", "label", "index", "index", ("sentence1", "sentence2"),
             {"test": "WNLI.tsv"}),
    GlueTask("ax", NLI_LABELS, {"test": "diagnostic.tsv"}, "sentence1", "sentence2", "label", "index", "index",
             ("premise", "hypothesis"), {"test": "AX.tsv"}),
)}
# Hub configuration names and class names, to check a Hub dataset is the one we think it is.
_HUB_NAMES = {"cola": ("unacceptable", "acceptable"), "sst2": ("negative", "positive"),
              "mrpc": ("not_equivalent", "equivalent"), "qqp": ("not_duplicate", "duplicate"),
              "mnli": NLI_LABELS, "ax": NLI_LABELS, "qnli": BINARY_NLI, "rte": BINARY_NLI,
              "wnli": ("not_entailment", "entailment")}


def get_task(task: str) -> GlueTask:
    key = task.lower().replace("-", "")
    if key in GLUE_TASKS:
        return GLUE_TASKS[key]
    raise ValueError(f"unknown GLUE task {task!r}; choose one of {', '.join(GLUE_TASKS)}.")


def _is_test(split: str) -> bool:
    return split.startswith("test")


def read_glue(task: str, data_dir: str, split: str, *, strict: bool = False) -> list[GlueExample]:
    """Reads one split of a GLUE task from its original files.

    Args:
      task: ``cola sst2 mrpc stsb qqp mnli qnli rte wnli ax`` (case and ``-`` ignored).
      data_dir: the task's directory (e.g. ``glue_data/MNLI``).
      split: ``train``, ``dev``, ``test``; MNLI: ``train``, ``dev_matched``, ``dev_mismatched``,
        ``test_matched``, ``test_mismatched``; AX: ``test``.
      strict: QQP only: raise on rows with the wrong number of columns instead of skipping them.

    Returns:
      The examples in file order; labels None on test splits.
    """
    spec = get_task(task)
    if split not in spec.files:
        raise ValueError(f"{spec.name} has no split {split!r}; its splits are {', '.join(spec.files)}.")
    path = os.path.join(data_dir, spec.files[split])
    if not os.path.isfile(path):
        expected = ", ".join(spec.files.values())
        raise FileNotFoundError(f"{path} not found: the {spec.name} layout expects {expected} in {data_dir} "
                                f"(the files of the GLUE download, unrenamed).")
    text = read_utf8(path, f"{spec.name} file")
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE))
    if split in spec.headerless:
        examples = _read_positional(spec, path, split, rows)
    else:
        examples = _read_headered(spec, path, split, rows, strict)
    if not examples:
        raise ValueError(f"{path}: no examples in split {split!r}; the file is empty or holds only a header. "
                         "Re-download or re-derive it.")
    return examples


def _check_label(spec: GlueTask, value: str, where: str) -> str | float:
    if spec.is_regression:
        try:
            score = float(value)
        except ValueError:
            raise ValueError(f"{where}: score {value!r} is not a number; {spec.name} scores are floats in "
                             "[0, 5] in the last column.") from None
        if not 0.0 <= score <= 5.0:
            raise ValueError(f"{where}: score {score} is outside [0, 5].")
        return score
    if value not in spec.labels:
        raise ValueError(f"{where}: label {value!r} is not a {spec.name} label; valid labels: "
                         f"{', '.join(spec.labels)}.")
    return value


def _read_positional(spec: GlueTask, path: str, split: str, rows: list[list[str]]) -> list[GlueExample]:
    need = max(spec.positions.values()) + 1
    out = []
    for line, row in enumerate(rows, 1):
        if len(row) < need:
            raise ValueError(f"{path}:{line}: {len(row)} tab-separated columns, {spec.name} {split} rows have "
                             f"{need} (source, label, mark, sentence) and no header.")
        label = _check_label(spec, row[spec.positions["label"]], f"{path}:{line}")
        out.append(GlueExample(f"{split}-{line - 1}", row[spec.positions["text_a"]], None, label))
    return out


def _read_headered(spec: GlueTask, path: str, split: str, rows: list[list[str]], strict: bool):
    if not rows:
        return []
    header, test = rows[0], _is_test(split)
    guid_name = spec.test_guid if test else spec.guid
    wanted = {"text_a": spec.text_a, "text_b": spec.text_b, "guid": guid_name}
    if not test and spec.label != "last":
        wanted["label"] = spec.label
    columns = {}
    for key, name in wanted.items():
        if name is None:
            continue
        if name not in header:
            raise ValueError(f"{path}:1: the header has no column {name!r} (it has: {', '.join(header)}); a "
                             f"{spec.name} {split} file names its columns in its first line.")
        columns[key] = header.index(name)
    need = max(columns.values()) + 1
    skipped, out = [], []
    for line, row in enumerate(rows[1:], 2):
        if len(row) < need or (spec.name == "qqp" and len(row) != len(header)):
            if spec.name == "qqp" and not strict:
                skipped.append(line)
                continue
            raise ValueError(f"{path}:{line}: {len(row)} tab-separated columns, the header has {len(header)}; "
                             "fix or drop this row (text may not contain tabs or newlines).")
        label = None
        if not test:
            label = _check_label(spec, row[-1] if spec.label == "last" else row[columns["label"]],
                                 f"{path}:{line}")
        guid = row[columns["guid"]] if "guid" in columns else str(line - 2)
        text_b = row[columns["text_b"]] if "text_b" in columns else None
        out.append(GlueExample(f"{split}-{guid}", row[columns["text_a"]], text_b, label))
    if skipped:
        logging.warning("%s: skipped %d malformed rows (wrong column count), first at lines %s.", path,
                        len(skipped), ", ".join(map(str, skipped[:5])))
    return out


# ---------------------------------------------------------------- the Hub
_HUB_SPLITS = {"train": "train", "dev": "validation", "test": "test", "dev_matched": "validation_matched",
               "dev_mismatched": "validation_mismatched", "test_matched": "test_matched",
               "test_mismatched": "test_mismatched"}


def load_glue_hub(task: str, split: str, path: str = "nyu-mll/glue") -> list[GlueExample]:
    """The same examples from the Hugging Face Hub (needs `datasets` and network).

    Split names are ours (``dev``, ``dev_matched`` ...); they map to the Hub's ``validation*``.
    """
    import datasets  # optional dependency, only for this route

    spec = get_task(task)
    if split not in spec.files:
        raise ValueError(f"{spec.name} has no split {split!r}; its splits are {', '.join(spec.files)}.")
    return examples_from_hub(spec.name, datasets.load_dataset(path, spec.name, split=_HUB_SPLITS[split]), split)


def examples_from_hub(task: str, dataset, split: str) -> list[GlueExample]:
    """A Hub GLUE split (a `datasets.Dataset`) -> `GlueExample`s with the labels of the original files.

    The Hub stores class ids in the order of ``GLUE_TASKS[task].labels`` and -1 for test.
    """
    spec = get_task(task)
    a_col, b_col = spec.hub_columns
    missing = [c for c in (a_col, b_col, "label", "idx") if c is not None and c not in dataset.column_names]
    if missing:
        raise ValueError(f"the {spec.name} Hub split {split!r} lacks columns {missing} (has "
                         f"{dataset.column_names}); pass the GLUE dataset ('nyu-mll/glue', {spec.name!r}).")
    names = getattr(dataset.features["label"], "names", None)
    if names is not None and spec.name in _HUB_NAMES and tuple(names) != _HUB_NAMES[spec.name]:
        raise ValueError(f"{spec.name}: the Hub label names {names} differ from the expected "
                         f"{_HUB_NAMES[spec.name]}; this is not the GLUE {spec.name} dataset.")
    out = []
    for row in dataset:
        label = row["label"]
        if label is None or label < 0:  # the Hub marks unlabelled (test) rows with -1
            label = None
        elif spec.is_regression:
            label = float(label)
        else:
            label = spec.labels[int(label)]
        out.append(GlueExample(f"{split}-{row['idx']}", row[a_col], row[b_col] if b_col else None, label))
    return out


# ------------------------------------------------------------- submission
SUBMISSION_HEADER = ("index", "prediction")


def write_glue_submission(task: str, predictions: Sequence, path: str, *, split: str | None = None,
                          indices: Sequence[int] | None = None) -> str:
    """Writes a GLUE server submission file (``index\\tprediction``).

    Args:
      task: the task; MNLI needs ``split`` ``test_matched`` (MNLI-m.tsv) or ``test_mismatched`` (MNLI-mm.tsv).
      predictions: class ids or label strings (classification), floats (STS-B, clipped to [0, 5]).
      path: a directory (the file gets the server's name, see ``GLUE_TASKS[task].submission``) or a file path.
      indices: the test ``index`` of each prediction; default 0..n-1 (test files are in index order).

    Returns:
      The path written. Labels are written as the server reads them: ``entailment`` / ``neutral`` /
      ``contradiction`` (MNLI, AX), ``entailment`` / ``not_entailment`` (QNLI, RTE), 0/1 otherwise.
    """
    spec = get_task(task)
    if split is None:
        if len(spec.submission) > 1:
            raise ValueError(f"{spec.name} has several test sets; pass split= one of {', '.join(spec.submission)}.")
        split = next(iter(spec.submission))
    if split not in spec.submission:
        raise ValueError(f"{spec.name}: no submission for split {split!r}; use {', '.join(spec.submission)}.")
    indices = list(range(len(predictions))) if indices is None else [int(i) for i in indices]
    if len(indices) != len(predictions):
        raise ValueError(f"{len(indices)} indices for {len(predictions)} predictions.")
    if not predictions:
        raise ValueError(f"no predictions to write for {spec.name}.")
    lines = []
    for k, value in enumerate(predictions):
        if spec.is_regression:
            score = float(value)
            if not math.isfinite(score):
                raise ValueError(f"prediction {k} is {score}; STS-B predictions must be finite numbers.")
            text = f"{min(5.0, max(0.0, score)):.3f}"
        elif isinstance(value, str):
            if value not in spec.labels:
                raise ValueError(f"prediction {k} = {value!r} is not a {spec.name} label ({', '.join(spec.labels)}).")
            text = value
        else:
            if int(value) != value or not 0 <= int(value) < len(spec.labels):
                raise ValueError(f"prediction {k} = {value!r} is not a class id 0..{len(spec.labels) - 1}.")
            text = spec.labels[int(value)]
        lines.append(f"{indices[k]}\t{text}\n")
    if os.path.isdir(path) or path.endswith(os.sep):
        os.makedirs(path, exist_ok=True)
        path = os.path.join(path, spec.submission[split])
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\t".join(SUBMISSION_HEADER) + "\n" + "".join(lines))
    return path


def read_glue_submission(path: str) -> list[tuple[int, str]]:
    """``(index, prediction)`` rows of a submission file, checking its header and columns."""
    out = []
    with open(path, encoding="utf-8") as handle:
        for line, text in enumerate(handle, 1):
            row = text.rstrip("\n").split("\t")
            if line == 1:
                if tuple(row) != SUBMISSION_HEADER:
                    raise ValueError(f"{path}:1: header {row} is not index<TAB>prediction.")
                continue
            if len(row) != 2 or not row[0].isdigit():
                raise ValueError(f"{path}:{line}: expected '<index>\\t<prediction>', got {text.rstrip()!r}.")
            out.append((int(row[0]), row[1]))
    return out
