"""Shared by the set makers of ``derive_task_data.py``: the corpus and its document splits, the
writer of a set's files and README, and the baseline metrics the READMEs report."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import string
from dataclasses import dataclass

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEED = 20231130
SPLITS = ("train", "dev", "test")
DOC_SPLIT_PERCENT = (80, 10, 10)
LICENCE = ("Python Software Foundation License (PSF License Agreement for Python), as the corpus it is "
           "derived from: the Python 3.11 documentation, Copyright (c) 2001-2023 Python Software Foundation. "
           "See `data/corpus/LICENSE`.")
REGENERATE = "python scripts/derive_task_data.py"


# ------------------------------------------------------------------- corpus
@dataclass(frozen=True)
class Document:
    """One document of the corpus: a section of one documentation page."""

    file: str  # corpus file stem, e.g. "library"
    index: int  # position of the document in its file
    sentences: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.file}:{self.index}"


def read_corpus(corpus_dir: str) -> list[Document]:
    """All documents of ``corpus_dir/*.txt`` (one sentence per line, blank line between documents)."""
    docs = []
    for file in sorted(f for f in os.listdir(corpus_dir) if f.endswith(".txt")):
        current, index = [], 0
        with open(os.path.join(corpus_dir, file), encoding="utf-8") as handle:
            for line in [*handle, ""]:
                line = line.strip()
                if line:
                    current.append(line)
                elif current:
                    docs.append(Document(file[:-4], index, tuple(current)))
                    current, index = [], index + 1
    if not docs:
        raise SystemExit(f"{corpus_dir}: no documents in *.txt; pass --corpus the bundled data/corpus directory.")
    return docs


def split_of(doc: Document) -> str:
    """train / dev / test from a stable hash of the document's name (never Python's hash())."""
    bucket = int.from_bytes(hashlib.sha1(doc.name.encode()).digest()[:4], "little") % 100
    return "train" if bucket < DOC_SPLIT_PERCENT[0] else "dev" if bucket < 100 - DOC_SPLIT_PERCENT[2] else "test"


def by_split(docs: list[Document]) -> dict[str, list[Document]]:
    """Documents per split. The corpus repeats some sentences across documents (e.g. "What's New" pages
    quoting each other); in dev/test documents a sentence that also occurs in a train document is blanked
    to "" so that it is never used, while the positions of the others (and so adjacency) stay."""
    out = {s: [] for s in SPLITS}
    for doc in docs:
        out[split_of(doc)].append(doc)
    train_texts = {s for doc in out["train"] for s in doc.sentences}
    for split in ("dev", "test"):
        out[split] = [Document(d.file, d.index, tuple("" if s in train_texts else s for s in d.sentences))
                      for d in out[split]]
    return out


def usable(sentence: str, low: int = 6, high: int = 30) -> bool:
    """A plain prose sentence of low..high whitespace words (no tabs, which the TSV layouts cannot hold)."""
    return low <= len(sentence.split()) <= high and "\t" not in sentence


def words_lower(text: str) -> set[str]:
    return {w.strip(string.punctuation).lower() for w in text.split()} - {""}


def jaccard(a: str, b: str) -> float:
    x, y = words_lower(a), words_lower(b)
    return len(x & y) / max(1, len(x | y))


# ------------------------------------------------------------ baselines
def best_threshold_accuracy(train_x, train_y, dev_x, dev_y) -> float:
    """Dev accuracy of the one-feature rule "x > t -> label a else b" fitted on train (t and a/b)."""
    train_x, train_y = np.asarray(train_x, float), np.asarray(train_y)
    best = (-1.0, 0.0, 1)
    for t in np.unique(train_x):
        for above in (0, 1):
            acc = float(np.mean(np.where(train_x > t, above, 1 - above) == train_y))
            if acc > best[0]:
                best = (acc, float(t), above)
    _, t, above = best
    return float(np.mean(np.where(np.asarray(dev_x, float) > t, above, 1 - above) == np.asarray(dev_y)))


def pearson(x, y) -> float | None:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def mcc(pred, gold) -> float:
    pred, gold = np.asarray(pred), np.asarray(gold)
    tp, tn = np.sum((pred == 1) & (gold == 1)), np.sum((pred == 0) & (gold == 0))
    fp, fn = np.sum((pred == 1) & (gold == 0)), np.sum((pred == 0) & (gold == 1))
    den = np.sqrt(float((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)))
    return float((tp * tn - fp * fn) / den) if den else 0.0


def fmt(value, digits: int = 3) -> str:
    return "undefined (constant)" if value is None else f"{value:.{digits}f}"


# ------------------------------------------------------------------ writing
class Writer:
    """Writes files under one set's directory and remembers them for the summary."""

    def __init__(self, root: str, name: str):
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir, exist_ok=True)
        self.files: list[str] = []

    def text(self, filename: str, content: str) -> None:
        with open(os.path.join(self.dir, filename), "w", encoding="utf-8", newline="") as handle:
            handle.write(content)
        self.files.append(filename)

    def tsv(self, filename: str, rows: list[list], header: list[str] | None = None) -> None:
        lines = ([header] if header else []) + rows
        for row in lines:
            for cell in row:
                if "\t" in str(cell) or "\n" in str(cell):
                    raise AssertionError(f"{filename}: a cell holds a tab or newline: {cell!r}")
        self.text(filename, "".join("\t".join(str(c) for c in row) + "\n" for row in lines))

    def csv(self, filename: str, rows: list[list], header: list[str]) -> None:
        buffer = io.StringIO()
        out = csv.writer(buffer, lineterminator="\n")
        out.writerow(header)
        out.writerows(rows)
        self.text(filename, buffer.getvalue())

    def json(self, filename: str, data) -> None:
        self.text(filename, json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n")


def table(rows: list[tuple]) -> str:
    head, *body = rows
    lines = ["| " + " | ".join(str(c) for c in head) + " |", "|" + " --- |" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in body])


def readme(title: str, layout: str, derivation: str, labels: str, sizes: list[tuple], baselines: list[tuple],
           cues: str) -> str:
    return f"""# {title}

Derived from the bundled corpus (`data/corpus/*.txt`, real English prose from the Python 3.11
documentation) by `scripts/derive_task_data.py`; regenerate with `{REGENERATE}`.
Nothing in it was written by hand.

- **Licence**: {LICENCE}
- **Layout**: {layout}
- **Splits**: by document: `sha1("<file>:<document index>")` sends 80% of the corpus documents to
  train, 10% to dev, 10% to test; every sentence of a split (including negatives and distractors)
  comes from that split's documents, and a dev/test sentence that also occurs in a train document
  (the corpus repeats a few) is never used.

## How it was derived
{derivation}

## Labels
{labels}

## Sizes
{table(sizes)}

## Baselines (dev)
{table(baselines)}

## Surface cues checked
{cues}
"""
