"""Derive small fine-tuning sets, in the original benchmark file layouts, from the bundled corpus.

Every sentence in every set is a real sentence of ``data/corpus/*.txt`` (the Python 3.11
documentation, PSF licence), or one transformed by a stated rule (words swapped, replaced by
the words of another real sentence, a span blanked out). Nothing is written by hand.

Splits are by *document*: ``sha1("<file>:<document index>")`` puts 80% of the documents in
train, 10% in dev and 10% in test, so dev/test sentences (and the distractors or negatives
drawn for them) come from documents that train never sees. Random choices use
``np.random.default_rng([SEED, <set number>])``; the output depends only on the corpus.

Sets (layout mimicked in brackets; each directory gets a README.md with sizes and baselines):
  glue_acceptability [CoLA]    real sentence (1) vs. the same sentence with its word order corrupted (0)
  glue_nextsent      [RTE]     sentence2 follows sentence1 in its document, or comes from another one
  glue_similarity    [STS-B]   sentence2 = sentence1 with a fraction r of its words replaced; score 5(1-r)
  squad_cloze        [SQuAD]   a sentence of the paragraph with an answer span blanked out, cut to 3 words
                               either side of the gap (v2.0: plus such cuts of other documents, unanswerable)
  conll_docs         [CoNLL-2003] rule-derived CODE / KW / VER / NUM entities in IOB2
  swag_next          [SWAG]    the continuation of a sentence's successor vs. three other real endings

    python scripts/derive_task_data.py                       # rewrite data/tasks/
    python scripts/derive_task_data.py --output /tmp/tasks   # elsewhere (tests compare the two)
"""

from __future__ import annotations

import argparse
import collections
import csv
import hashlib
import io
import json
import os
import re
import string
import sys
from dataclasses import dataclass

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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


# --------------------------------------------------------------- CoLA layout
CORRUPTIONS = ("swap_adjacent", "swap_two", "reverse_span")


def corrupt(words: list[str], rng: np.random.Generator) -> tuple[str, list[str]]:
    """Word order corrupted inside the sentence; the first and last words stay in place so that
    capitalisation and the final punctuation do not reveal the label."""
    inner = len(words) - 2
    for _ in range(20):
        kind = CORRUPTIONS[rng.integers(len(CORRUPTIONS))]
        out = list(words)
        if kind == "swap_adjacent":
            i = 1 + int(rng.integers(inner - 1))
            out[i], out[i + 1] = out[i + 1], out[i]
        elif kind == "swap_two":
            i, j = 1 + rng.choice(inner, 2, replace=False)
            out[i], out[j] = out[j], out[i]
        else:
            span = int(rng.integers(3, min(5, inner) + 1))
            i = 1 + int(rng.integers(inner - span + 1))
            out[i:i + span] = out[i:i + span][::-1]
        if out != words:
            return kind, out
    raise AssertionError(f"could not corrupt {' '.join(words)!r}")


def make_acceptability(splits, rng, writer, sizes=(2000, 300, 300)):
    examples = {}
    kinds = collections.Counter()
    for split, n in zip(SPLITS, sizes):
        pool = [(d, i, s) for d in splits[split] for i, s in enumerate(d.sentences) if usable(s)]
        chosen = [pool[k] for k in rng.choice(len(pool), n, replace=False)]
        labels = rng.permutation(np.arange(n) % 2)
        rows = []
        for (doc, i, sentence), label in zip(chosen, labels):
            words = sentence.split()
            if label == 0:
                kind, words = corrupt(words, rng)
                kinds[kind] += 1
            rows.append((doc, int(label), " ".join(words)))
        examples[split] = rows
    for split in ("train", "dev"):
        writer.tsv(f"{split}.tsv", [[doc.file, label, "" if label else "*", text]
                                    for doc, label, text in examples[split]])
    writer.tsv("test.tsv", [[k, text] for k, (_, _, text) in enumerate(examples["test"])], ["index", "sentence"])
    writer.tsv("test_labels.tsv", [[k, label] for k, (_, label, _) in enumerate(examples["test"])],
               ["index", "label"])

    # Cues: length (identical multisets of words, so no bag-of-words cue exists) and a word-order
    # statistic a model can learn: the share of a sentence's bigrams seen in the train documents.
    train_bigrams = set()
    for doc in splits["train"]:
        for s in doc.sentences:
            w = s.lower().split()
            train_bigrams.update(zip(w, w[1:]))
    train_texts = {s for d in splits["train"] for s in d.sentences}

    def seen(text):
        w = text.lower().split()
        pairs = list(zip(w, w[1:]))
        return sum(p in train_bigrams for p in pairs) / len(pairs)

    def feats(split, fn):
        return [fn(t) for _, _, t in examples[split]], [lab for _, lab, _ in examples[split]]

    tx, ty = feats("train", lambda t: len(t.split()))
    dx, dy = feats("dev", lambda t: len(t.split()))
    length_acc = best_threshold_accuracy(tx, ty, dx, dy)
    # Every bigram of a train example's original is "seen", so the threshold is fitted on dev and the
    # accuracy reported on test (both held out from the bigram table).
    dx2, dy2 = feats("dev", seen)
    ex2, ey2 = feats("test", seen)
    bigram_acc = best_threshold_accuracy(dx2, dy2, ex2, ey2)
    dev_labels = np.array(dy)
    majority = float(max(dev_labels.mean(), 1 - dev_labels.mean()))
    assert not any(t in train_texts for split in ("dev", "test") for _, _, t in examples[split])
    lengths = {lab: np.mean([len(t.split()) for _, l2, t in examples["train"] if l2 == lab]) for lab in (0, 1)}
    writer.text("README.md", readme(
        "glue_acceptability: is the word order of a real sentence intact? (CoLA layout)",
        "GLUE CoLA: `train.tsv`, `dev.tsv` without header, four tab-separated columns: source "
        "(the corpus file the sentence comes from), label (1/0), the original-label mark (`*` for 0, empty "
        "for 1), sentence. `test.tsv` with header `index\\tsentence`. The test labels, withheld from "
        "`test.tsv` as in GLUE, are in `test_labels.tsv` (`index\\tlabel`) for offline scoring.",
        "Sentences of 6-30 whitespace words are drawn without replacement from each split's documents; "
        "each is used once, kept as is (label 1) or corrupted (label 0), half and half at random. "
        "A corruption moves words strictly inside the sentence (the first and last word stay put): "
        "`swap_adjacent` swaps two neighbouring words, `swap_two` two random words, `reverse_span` "
        "reverses a span of 3-5 words; the result always differs from the original. "
        f"Corruptions used: {dict(sorted(kinds.items()))}.",
        "1 = a sentence of the corpus exactly as written; 0 = the same words in a corrupted order.",
        [("split", "examples", "label 1", "label 0")] + [
            (s, len(examples[s]), sum(l for _, l, _ in examples[s]), sum(1 - l for _, l, _ in examples[s]))
            for s in SPLITS],
        [("predictor", "accuracy", "MCC (the CoLA metric)"),
         ("majority class", f"{majority:.3f}", "0.000"),
         ("length threshold fitted on train", f"{length_acc:.3f}", "-"),
         ("share of bigrams seen in train documents, threshold fitted on dev (test accuracy)",
          f"{bigram_acc:.3f}", "-")],
        f"- Bag of words: none by construction (a corrupted sentence has exactly the words of its original).\n"
        f"- Length: mean words per train sentence {lengths[1]:.2f} (label 1) vs {lengths[0]:.2f} (label 0); "
        f"the best length threshold reaches {length_acc:.3f} on dev (chance is 0.5).\n"
        "- Capitalisation and final punctuation: unchanged (the first and last words never move).\n"
        "- Word order is learnable: how many of a sentence's bigrams occur in the train documents separates "
        f"the labels with {bigram_acc:.3f} held-out accuracy, so a model that learns English word order "
        "from the train set can beat the majority class.\n"))
    return {s: len(v) for s, v in examples.items()}


# ---------------------------------------------------------------- RTE layout
def make_nextsent(splits, rng, writer, sizes=(1600, 250, 250)):
    examples = {}
    for split, n in zip(SPLITS, sizes):
        docs = splits[split]
        pool = [(d, i) for d in docs for i in range(len(d.sentences) - 1)
                if usable(d.sentences[i]) and usable(d.sentences[i + 1])]
        others = collections.defaultdict(list)  # corpus file -> usable sentences (doc name, sentence)
        for d in docs:
            others[d.file] += [(d.name, s) for s in d.sentences if usable(s)]
        chosen = [pool[k] for k in rng.choice(len(pool), n, replace=False)]
        labels = rng.permutation(np.arange(n) % 2)  # 1 = entailment (the next sentence)
        rows = []
        for (doc, i), label in zip(chosen, labels):
            if label:
                second = doc.sentences[i + 1]
            else:
                # Another document of the same part of the documentation, so the topic vocabulary
                # of the negative is as close as the split allows.
                candidates = others[doc.file]
                while True:
                    name, second = candidates[rng.integers(len(candidates))]
                    if name != doc.name and (doc.sentences[i], second) not in splits["pairs"]:
                        break
            rows.append((doc.sentences[i], second, "entailment" if label else "not_entailment"))
        examples[split] = rows
    for split in ("train", "dev"):
        writer.tsv(f"{split}.tsv", [[k, a, b, lab] for k, (a, b, lab) in enumerate(examples[split])],
                   ["index", "sentence1", "sentence2", "label"])
    writer.tsv("test.tsv", [[k, a, b] for k, (a, b, _) in enumerate(examples["test"])],
               ["index", "sentence1", "sentence2"])
    writer.tsv("test_labels.tsv", [[k, lab] for k, (_, _, lab) in enumerate(examples["test"])], ["index", "label"])

    def feats(split, fn):
        return ([fn(a, b) for a, b, _ in examples[split]],
                [int(lab == "entailment") for _, _, lab in examples[split]])

    length = best_threshold_accuracy(*feats("train", lambda a, b: len(b.split())),
                                     *feats("dev", lambda a, b: len(b.split())))
    length_diff = best_threshold_accuracy(*feats("train", lambda a, b: abs(len(a.split()) - len(b.split()))),
                                          *feats("dev", lambda a, b: abs(len(a.split()) - len(b.split()))))
    overlap = best_threshold_accuracy(*feats("train", jaccard), *feats("dev", jaccard))
    dev_y = np.array(feats("dev", jaccard)[1])
    majority = float(max(dev_y.mean(), 1 - dev_y.mean()))
    writer.text("README.md", readme(
        "glue_nextsent: does sentence2 follow sentence1 in the same document? (RTE layout)",
        "GLUE RTE: `train.tsv`, `dev.tsv` with header `index\\tsentence1\\tsentence2\\tlabel`, labels "
        "`entailment` / `not_entailment`; `test.tsv` with header `index\\tsentence1\\tsentence2`. Test labels "
        "are in `test_labels.tsv` (`index\\tlabel`).",
        "sentence1 is drawn without replacement among the sentences of 6-30 words whose successor in the "
        "same document also has 6-30 words. Half at random (label `entailment`) get that successor as "
        "sentence2; the others (`not_entailment`) get a random 6-30-word sentence of *another* document "
        "of the same corpus file (same part of the documentation, same split).",
        "`entailment` = sentence2 is the sentence that follows sentence1 in the corpus; `not_entailment` = "
        "sentence2 comes from a different document.",
        [("split", "pairs", "entailment", "not_entailment")] + [
            (s, len(examples[s]), sum(lab == "entailment" for *_, lab in examples[s]),
             sum(lab != "entailment" for *_, lab in examples[s])) for s in SPLITS],
        [("predictor (threshold fitted on train)", "accuracy"),
         ("majority class", f"{majority:.3f}"),
         ("length of sentence2", f"{length:.3f}"),
         ("length difference", f"{length_diff:.3f}"),
         ("word overlap (Jaccard of lower-cased word sets)", f"{overlap:.3f}")],
        f"- Length of sentence2 and the length difference: {length:.3f} and {length_diff:.3f} on dev (chance 0.5).\n"
        f"- Lexical overlap is a real cue of coherence (consecutive sentences share topic words): "
        f"{overlap:.3f}. A model has to beat it with discourse cues (pronouns, 'This', 'However', "
        "continuing an enumeration) to be doing more than counting shared words.\n"))
    return {s: len(v) for s, v in examples.items()}


# -------------------------------------------------------------- STS-B layout
STS_HEADER = ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2",
              "score"]
RATIOS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


def make_similarity(splits, rng, writer, sizes=(1200, 240, 240)):
    examples = {}
    for split, n in zip(SPLITS, sizes):
        docs = splits[split]
        pool = [(d, i) for d in docs for i, s in enumerate(d.sentences) if usable(s, 6, 25)]
        donors = [(d, i) for d in docs for i, s in enumerate(d.sentences) if usable(s, 6, 40)]
        chosen = [pool[k] for k in rng.choice(len(pool), n, replace=False)]
        ratios = [RATIOS[k] for k in rng.permutation(np.arange(n) % len(RATIOS))]
        rows = []
        for (doc, i), r in zip(chosen, ratios):
            words = doc.sentences[i].split()
            want = round(r * len(words))
            best = None
            for _ in range(50):
                donor_doc, j = donors[rng.integers(len(donors))]
                donor = donor_doc.sentences[j].split()
                if donor_doc.name == doc.name or len(donor) < len(words):
                    continue
                # Replace word i by the donor's word i (same position), only where they differ, so the
                # share of changed words is exactly what the score says.
                differ = [k for k in range(len(words)) if words[k].lower() != donor[k].lower()]
                if best is None or len(differ) > len(best[2]):
                    best = (donor_doc, j, differ, donor)
                if len(differ) >= want:
                    break
            donor_doc, j, differ, donor = best
            replaced = sorted(rng.choice(differ, min(want, len(differ)), replace=False).tolist())
            out = list(words)
            for k in replaced:
                out[k] = donor[k]
            score = 5.0 * (1 - len(replaced) / len(words))
            rows.append((doc, i, donor_doc, j, " ".join(words), " ".join(out), score))
        examples[split] = rows

    def row(k, ex, with_score):
        doc, i, ddoc, j, a, b, score = ex
        cells = [k, "pydocs", doc.file, "py3.11", f"{doc.index:04d}{i:03d}", f"{doc.name}:{i}",
                 f"{ddoc.name}:{j}", a, b]
        return cells + [f"{score:.3f}"] if with_score else cells

    for split in ("train", "dev"):
        writer.tsv(f"{split}.tsv", [row(k, ex, True) for k, ex in enumerate(examples[split])], STS_HEADER)
    writer.tsv("test.tsv", [row(k, ex, False) for k, ex in enumerate(examples["test"])], STS_HEADER[:-1])
    writer.tsv("test_labels.tsv", [[k, f"{ex[-1]:.3f}"] for k, ex in enumerate(examples["test"])],
               ["index", "score"])
    dev = examples["dev"]
    scores = [ex[-1] for ex in dev]
    length_r = pearson([abs(len(ex[4].split()) - len(ex[5].split())) for ex in dev], scores)
    overlap_r = pearson([jaccard(ex[4], ex[5]) for ex in dev], scores)
    hist = collections.Counter(round(ex[-1]) for s in SPLITS for ex in examples[s])
    writer.text("README.md", readme(
        "glue_similarity: graded similarity of a sentence and a partly replaced copy (STS-B layout)",
        "GLUE STS-B: `train.tsv`, `dev.tsv` with the header `" + " ".join(STS_HEADER) + "` (tab-separated), "
        "the score in the last column; `test.tsv` with the same columns less `score`. genre = `pydocs`, "
        "filename = the corpus file, year = `py3.11`, old_index = document and sentence number, "
        "source1 / source2 = `<file>:<document>:<sentence>` of sentence1 and of the donor sentence. Test "
        "scores are in `test_labels.tsv` (`index\\tscore`).",
        "sentence1 is a real sentence of 6-25 words. A ratio r is drawn evenly from {0, 0.2, 0.4, 0.6, 0.8, 1}; "
        "a donor sentence at least as long is drawn from another document of the same split, and "
        "k = round(r * n) of sentence1's n word positions, chosen at random among the positions where the "
        "donor's word differs, are replaced by the donor's word at the same position. sentence2 therefore "
        "has exactly n words, n - k of them sentence1's in order. score = 5 * (1 - k / n) (k is smaller than "
        "round(r * n) only when too few positions differ in 50 donor draws).",
        "score in [0, 5]: 5 = identical, 0 = every word replaced by the donor's (then sentence2 is the donor's "
        "first n words); in between, the share of sentence1's words kept.",
        [("split", "pairs", "score ~0", "~1", "~2", "~3", "~4", "5")] + [
            (s, len(examples[s]), *[sum(round(ex[-1]) == v for ex in examples[s]) for v in range(6)])
            for s in SPLITS],
        [("predictor", "Pearson with the score"),
         ("constant (e.g. the train mean)", "undefined (0 by convention)"),
         ("length difference", fmt(length_r)),
         ("word overlap (Jaccard of lower-cased word sets)", fmt(overlap_r))],
        "- Length: sentence2 always has sentence1's word count, so length carries no signal "
        f"(length-difference Pearson: {fmt(length_r)}).\n"
        "- Lexical overlap *is* the construct here: the score is the share of words kept, and the Jaccard "
        f"overlap of the word sets correlates {fmt(overlap_r)} with it. The set tests that a model learns "
        "to compare two texts token by token across the [SEP]; it is not a test of paraphrase.\n"
        f"- Score histogram (rounded, all splits): {dict(sorted(hist.items()))}.\n"))
    return {s: len(v) for s, v in examples.items()}


# ------------------------------------------------------------- SQuAD layout
STOPWORDS = frozenset("""a an the and or but if then else of to in on at by for with from as is are was were be been
being it its this that these those there their they them he she we you i not no can may will would should could
than which who whom whose what when where why how all any each some such also only more most other into out up
over under about after before between so do does did has have had one two use used using see""".split())
_WORD = re.compile(r"\S+")
_EDGE = "\"'([{<"
_TAIL = "\"')]}>.,;:!?"
BLANK = "____"


def answer_spans(sentence: str) -> list[tuple[int, int]]:
    """Candidate answers: 1-3 consecutive words (edge punctuation stripped), none a stop word at either
    end, inner words without trailing punctuation; as (start, end) character offsets in `sentence`."""
    cores = []
    for m in _WORD.finditer(sentence):
        tok = m.group()
        lead = len(tok) - len(tok.lstrip(_EDGE))
        core = tok[lead:].rstrip(_TAIL)
        start = m.start() + lead
        cores.append((start, start + len(core), core, tok.endswith(tuple(_TAIL)) or lead > 0))
    spans = []
    for i, (start, _, core, _) in enumerate(cores):
        for length in (1, 2, 3):
            last = cores[i:i + length]
            if len(last) < length or any(c[3] for c in last[:-1]):
                break
            end, last_core = last[-1][1], last[-1][2]
            if all(len(c) >= 3 and c.lower() not in STOPWORDS and any(ch.isalnum() for ch in c)
                   for c in (core, last_core)):
                spans.append((start, end))
    return spans


def normalize_answer(text: str) -> str:
    """SQuAD's official normalisation: lower case, no punctuation, articles or extra spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def squad_f1(prediction: str, truth: str) -> float:
    p, t = normalize_answer(prediction).split(), normalize_answer(truth).split()
    if not p or not t:
        return float(p == t)
    common = sum((collections.Counter(p) & collections.Counter(t)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(t)
    return 2 * precision * recall / (precision + recall)


def cloze_question(sentence: str, a: int, b: int, side: int) -> str:
    """``sentence`` with ``[a, b)`` replaced by ``BLANK``, cut to the ``side`` words on either side of
    the gap (an exact slice of the sentence, so the question's two parts occur in it as they are)."""
    words = [(m.start(), m.end()) for m in _WORD.finditer(sentence)]
    left = [w for w in words if w[1] <= a][-side:]
    right = [w for w in words if w[0] >= b][:side]
    start = left[0][0] if left else a
    end = right[-1][1] if right else b
    return sentence[start:a] + BLANK + sentence[b:end]


def make_squad(splits, rng, writer, contexts=(2000, 150), v2_train_contexts=500, per_context=3,
               impossible_per_context=2, max_sentences=3, side=3):
    out = {}
    stats = {}
    for split, n in zip(("train", "dev"), contexts):
        docs = [d for d in splits[split]
                if 3 <= len(d.sentences) and all(s and "\t" not in s for s in d.sentences[:max_sentences])]
        chosen = [docs[k] for k in rng.choice(len(docs), min(n, len(docs)), replace=False)]
        other_sentences = [(d.name, s) for d in splits[split] for s in d.sentences if usable(s, 6, 40)]
        articles_v1, articles_v2 = [], []
        for number, doc in enumerate(chosen):
            sentences = doc.sentences[:max_sentences]
            context = " ".join(sentences)
            offsets = np.cumsum([0] + [len(s) + 1 for s in sentences])
            candidates = [k for k, s in enumerate(sentences) if usable(s, 6, 40) and answer_spans(s)]
            qas = []
            for k in rng.permutation(candidates)[:per_context]:
                sentence = sentences[k]
                spans = answer_spans(sentence)
                a, b = spans[rng.integers(len(spans))]
                start = int(offsets[k]) + a
                answer = sentence[a:b]
                assert context[start:start + len(answer)] == answer
                qid = hashlib.sha1(f"{doc.name}:{k}:{a}:{b}".encode()).hexdigest()[:24]
                qas.append({"answers": [{"answer_start": start, "text": answer}],
                            "question": cloze_question(sentence, a, b, side), "id": qid})
            title = f"{doc.file} {doc.index}"
            articles_v1.append({"title": title, "paragraphs": [{"context": context, "qas": qas}]})
            if split == "train" and number >= v2_train_contexts:
                continue
            impossible = []
            while len(impossible) < impossible_per_context:
                name, sentence = other_sentences[rng.integers(len(other_sentences))]
                spans = answer_spans(sentence)
                if name == doc.name or not spans:
                    continue
                a, b = spans[rng.integers(len(spans))]
                question = cloze_question(sentence, a, b, side)
                before, after = question.split(BLANK)
                if re.search(re.escape(before) + ".+?" + re.escape(after), context):
                    continue  # its two parts occur in this context around some span: answerable here
                qid = hashlib.sha1(f"{doc.name}:impossible:{name}:{sentence}:{a}".encode()).hexdigest()[:24]
                impossible.append({"question": question, "id": qid, "answers": [], "is_impossible": True})
            v2 = [{**q, "is_impossible": False} for q in qas] + impossible
            v2 = [v2[j] for j in rng.permutation(len(v2))]
            articles_v2.append({"title": title, "paragraphs": [{"context": context, "qas": v2}]})
        out[split] = (articles_v1, articles_v2)
        writer.json(f"{split}-v1.1.json", {"version": "1.1", "data": articles_v1})
        writer.json(f"{split}-v2.0.json", {"version": "v2.0", "data": articles_v2})

        # Baselines over this split: the first sentence / first three words of the context.
        first_f1, first3_f1, first_v2, noans_v2, words, qwords = [], [], [], [], [], []
        for art in articles_v1:
            para = art["paragraphs"][0]
            context = para["context"]
            words.append(len(context.split()))
            first = context[:context.find(". ") + 1] if ". " in context else context
            first3 = " ".join(context.split()[:3])
            for q in para["qas"]:
                first_f1.append(squad_f1(first, q["answers"][0]["text"]))
                first3_f1.append(squad_f1(first3, q["answers"][0]["text"]))
                qwords.append(len(q["question"].split()))
        for art in articles_v2:
            para = art["paragraphs"][0]
            context = para["context"]
            first = context[:context.find(". ") + 1] if ". " in context else context
            for q in para["qas"]:
                gold = q["answers"][0]["text"] if q["answers"] else ""
                first_v2.append(squad_f1(first, gold))
                noans_v2.append(float(gold == ""))
        stats[split] = dict(contexts=len(articles_v1), v2_contexts=len(articles_v2),
                            v1=sum(len(a["paragraphs"][0]["qas"]) for a in articles_v1),
                            v2=sum(len(a["paragraphs"][0]["qas"]) for a in articles_v2),
                            first=np.mean(first_f1), first3=np.mean(first3_f1), first_v2=np.mean(first_v2),
                            noans=np.mean(noans_v2), long=sum(w > 48 for w in words),
                            mean_words=np.mean(words), mean_qwords=np.mean(qwords))
    dev, train = stats["dev"], stats["train"]
    writer.text("README.md", readme(
        "squad_cloze: find the blanked span of a sentence in its paragraph (SQuAD v1.1 / v2.0 layout)",
        "SQuAD JSON: `train-v1.1.json`, `dev-v1.1.json` (`{\"version\", \"data\": [{\"title\", \"paragraphs\": "
        "[{\"context\", \"qas\": [{\"id\", \"question\", \"answers\": [{\"text\", \"answer_start\"}]}]}]}]}`); "
        "`train-v2.0.json`, `dev-v2.0.json` add `is_impossible` to every question (`answers: []` when true). "
        "There is no test split, as in SQuAD.",
        f"One article per document: the context is the document's first {max_sentences} sentences joined by "
        f"single spaces (mean {dev['mean_words']:.0f} words on dev; {train['long']} train and {dev['long']} dev "
        "contexts have more than 48 words, so at 64 tokens per window they need several). Up to "
        f"{per_context} questions per context: a sentence of 6-40 words of the context with an answer span "
        f"replaced by `____`, cut to the {side} words on either side of the gap (an exact slice of the sentence; "
        f"mean {dev['mean_qwords']:.1f} words on dev). The span is 1-3 consecutive words (edge punctuation "
        "stripped) whose first and last words are not stop words and have 3+ characters; the answer is that "
        "span at its exact character offset (`context[answer_start:][:len(text)] == text`, checked). One gold "
        "answer per question: the blanked occurrence (other occurrences of the same text score the same under "
        f"the official text-based metric). v2.0 adds {impossible_per_context} unanswerable questions per context: "
        "a sentence of another document of the same split, blanked and cut the same way, kept only when its two "
        "parts do not occur in the context around any span (`plausible_answers` are not given). v2.0 shares "
        f"v1.1's contexts and answerable question ids: all of dev's, the first {v2_train_contexts} of train's "
        "(to keep the files small; v1.1 train has every context).",
        "answer = the text removed from the question; v2.0: `is_impossible` = the question comes from another "
        "document.",
        [("split", "contexts (v1.1 / v2.0)", "v1.1 questions", "v2.0 questions")] + [
            (s, f"{stats[s]['contexts']} / {stats[s]['v2_contexts']}", stats[s]["v1"], stats[s]["v2"])
            for s in ("train", "dev")],
        [("predictor", "F1 (official normalisation)"),
         ("v1.1: always the context's first sentence", f"{100 * dev['first']:.1f}"),
         ("v1.1: always the context's first 3 words", f"{100 * dev['first3']:.1f}"),
         ("v2.0: always the first sentence", f"{100 * dev['first_v2']:.1f}"),
         ("v2.0: always no answer", f"{100 * dev['noans']:.1f}")],
        "- Position: the blanked sentence is any sentence of the context, so 'the first sentence' scores "
        f"{100 * dev['first']:.1f} F1.\n"
        "- The question is a slice of a context sentence with a gap: matching its words on either side of the "
        "gap against the context locates the answer, which needs the alignment of those words, not their "
        "meaning.\n"
        "- v2.0: an unanswerable question comes from any other document of the same split, so a topic "
        "mismatch often, but not always, gives it away.\n"))
    return {s: (stats[s]["v1"], stats[s]["v2"]) for s in ("train", "dev")}


# -------------------------------------------------------------- CoNLL layout
_TOKEN = re.compile(r"""
    \d+(?:\.\d+)+(?:(?:a|b|rc)\d+)?                       # dotted numbers: versions, decimals
  | \d+                                                   # integers
  | [A-Za-z_]\w*(?:-[A-Za-z]\w*)*(?:\.[A-Za-z_]\w*)*(?:\(\))?   # words, dotted names, calls
  | [^\w\s]                                               # any other character on its own
""", re.X)
KEYWORD_CONSTANTS = frozenset({"None", "True", "False"})
VERSION_CONTEXT = frozenset({"python", "version", "versions", "release", "releases", "in", "since", "until",
                             "before"})
_VERSION = re.compile(r"\d+(?:\.\d+)+(?:(?:a|b|rc)\d+)?$")


def conll_tokens(sentence: str) -> list[str]:
    return _TOKEN.findall(sentence)


def is_code(token: str) -> bool:
    """Identifiers written as code: with an underscore, a call `()`, or dotted names with a part of 3+
    characters (so `os.path.join` and `sys.argv` count, abbreviations like `e.g` do not)."""
    if not (token[0].isalpha() or token[0] == "_"):
        return False
    if "_" in token or token.endswith("()"):
        return True
    parts = token.split(".")
    return len(parts) > 1 and any(len(p) >= 3 for p in parts)


def entity_tags(tokens: list[str]) -> list[str]:
    """IOB2 tags from the rules in README (CODE, KW, VER, NUM)."""
    tags = ["O"] * len(tokens)
    for i, tok in enumerate(tokens):
        prev = tokens[i - 1] if i else ""
        if tok[0].isdigit():
            number_is_version = _VERSION.match(tok) and prev.lower() in VERSION_CONTEXT
            if prev == "Python" and tags[i - 1] == "O":
                tags[i - 1], tags[i] = "B-VER", "I-VER"  # "Python 3.11", "Python 3"
            elif number_is_version or tok.count(".") >= 2:
                tags[i] = "B-VER"
            else:
                tags[i] = "B-NUM"
        elif tok in KEYWORD_CONSTANTS and i > 0:
            tags[i] = "B-KW"  # sentence-initial "None of ..." is English, not the constant
        elif is_code(tok):
            tags[i] = "B-CODE"
    return tags


def make_conll(splits, rng, writer, sentences=(1300, 250, 250)):
    counts, examples = {}, {}
    for split, target in zip(SPLITS, sentences):
        docs = []
        for d in splits[split]:
            tokenised = [conll_tokens(s) for s in d.sentences]
            tagged = [(t, entity_tags(t)) for t in tokenised if t]
            if any(tag != "O" for _, tags in tagged for tag in tags):
                docs.append((d, tagged))
        # Documents holding the longest sentences first (a few per split), so every split has sentences
        # that need more than one 128-piece window; then random documents up to the target.
        # The rarest type (KW) would be missing from small splits by chance, so documents with a keyword
        # constant alternate with the others.
        longest = sorted(range(len(docs)), key=lambda k: -max(len(t) for t, _ in docs[k][1]))[:3]
        rest = [k for k in rng.permutation(len(docs)).tolist() if k not in longest]
        with_kw = [k for k in rest if any("B-KW" in tags for _, tags in docs[k][1])]
        without = [k for k in rest if k not in set(with_kw)]
        order = longest + [k for pair in zip(with_kw, without) for k in pair] + with_kw[len(without):] + \
            without[len(with_kw):]
        picked, total = [], 0
        for k in order:
            if total >= target:
                break
            doc, tagged = docs[k]
            tagged = tagged[:25]  # long documents would crowd out the others
            picked.append((doc, tagged))
            total += len(tagged)
        examples[split] = picked
        lines = []
        for doc, tagged in picked:
            lines.append("-DOCSTART- -X- -X- O\n\n")
            for tokens, tags in tagged:
                lines.append("".join(f"{tok} -X- -X- {tag}\n" for tok, tag in zip(tokens, tags)) + "\n")
        writer.text(f"{split}.txt", "".join(lines))
        entity_counts = collections.Counter(tag[2:] for _, tagged in picked for _, tags in tagged
                                            for tag in tags if tag.startswith("B-"))
        counts[split] = dict(documents=len(picked), sentences=total,
                             tokens=sum(len(t) for _, tagged in picked for t, _ in tagged),
                             longest=max(len(t) for _, tagged in picked for t, _ in tagged),
                             over80=sum(len(t) > 80 for _, tagged in picked for t, _ in tagged),
                             entities=dict(sorted(entity_counts.items())))

    # Baseline: each token gets its most frequent train tag (the CoNLL-2003 task's own baseline),
    # scored by exact entity-span F1.
    memory = collections.defaultdict(collections.Counter)
    for _, tagged in examples["train"]:
        for tokens, tags in tagged:
            for tok, tag in zip(tokens, tags):
                memory[tok][tag] += 1

    def spans(tags):
        out, start = set(), None
        for i, tag in enumerate([*tags, "O"]):
            if start is not None and not tag.startswith("I-"):
                out.add((start, i, tags[start][2:]))
                start = None
            if tag.startswith("B-"):
                start = i
        return out

    def f1(predict, lower=False):
        tp = fp = fn = 0
        for _, tagged in examples["dev"]:
            for tokens, tags in tagged:
                gold, pred = spans(tags), spans(predict(tokens, lower))
                tp, fp, fn = tp + len(gold & pred), fp + len(pred - gold), fn + len(gold - pred)
        return 2 * tp / max(1, 2 * tp + fp + fn)

    lower_memory = collections.defaultdict(collections.Counter)
    for tok, c in memory.items():
        lower_memory[tok.lower()].update(c)

    def lookup(tokens, lower):
        table_ = lower_memory if lower else memory
        tags = [table_[t.lower() if lower else t].most_common(1)[0][0] if (t.lower() if lower else t) in table_
                else "O" for t in tokens]
        # "I-" without a preceding entity starts one, as conlleval reads it.
        return [("B-" + t[2:]) if t.startswith("I-") and (i == 0 or tags[i - 1] == "O") else t
                for i, t in enumerate(tags)]

    seen_f1, lower_f1 = f1(lookup), f1(lookup, lower=True)
    dev_oov = [tok for _, tagged in examples["dev"] for tokens, tags in tagged
               for tok, tag in zip(tokens, tags) if tag != "O" and tok not in memory]
    dev_entities = sum(tag != "O" for _, tagged in examples["dev"] for _, tags in tagged for tag in tags)
    writer.text("README.md", readme(
        "conll_docs: code identifiers, keyword constants, versions and numbers in prose (CoNLL-2003 layout)",
        "CoNLL-2003: `train.txt`, `dev.txt`, `test.txt`; a `-DOCSTART- -X- -X- O` line (then a blank line) "
        "starts each corpus document, sentences are separated by blank lines, one token per line with four "
        "space-separated columns `token POS chunk NER`. **POS and chunk are the placeholder `-X-`**: no "
        "tagger was run, only the NER column carries information.",
        "Each corpus sentence is split into tokens by the regular expression in `conll_tokens` (dotted numbers "
        "such as `3.11` or `3.12.0rc1` stay whole, words keep inner hyphens, dotted names and a trailing `()` "
        "stay whole, as `os.path.join` or `print()`; any other punctuation character is its own token). "
        "Documents with at least one entity are taken (the 3 with the longest sentences first, then in random "
        "order, alternating documents that hold a `KW` with the others so the rare type reaches every split), "
        "their first 25 sentences each, until the split's sentence target. Tags, IOB2, by rule:\n\n"
        "- `VER`: `Python` followed by a number -> `B-VER I-VER` (`Python 3.11`, `Python 3`); a dotted number "
        "after `version(s)`, `release(s)`, `in`, `since`, `until`, `before`, or with 3+ parts -> `B-VER`.\n"
        "- `NUM`: any other number (`42`, `1.5`, a `2.0` not preceded by those words).\n"
        "- `KW`: `None`, `True`, `False` written with a capital, except as the first token (`None of these ...` "
        "is English).\n"
        "- `CODE`: a token with `_`, ending in `()`, or dotted names with a part of 3+ characters "
        "(`sys.argv`, `__init__`, `str.join()`; not `e.g`). Bare names (`re`, `open`) are not marked: the rule "
        "cannot tell them from English.",
        "`B-<type>` starts an entity, `I-<type>` continues it (only `Python <number>` spans two tokens), `O` "
        "is outside. Types: CODE, KW, VER, NUM.",
        [("split", "documents", "sentences", "tokens", "entities", "longest sentence (tokens)",
          "sentences > 80 tokens")] + [
            (s, counts[s]["documents"], counts[s]["sentences"], counts[s]["tokens"],
             ", ".join(f"{k} {v}" for k, v in counts[s]["entities"].items()), counts[s]["longest"],
             counts[s]["over80"]) for s in SPLITS],
        [("predictor", "entity F1"),
         ("all `O`", "0.000"),
         ("most frequent train tag of the exact (cased) token", f"{seen_f1:.3f}"),
         ("most frequent train tag of the lower-cased token (what an uncased model sees)", f"{lower_f1:.3f}")],
        f"- Unseen tokens: {len(dev_oov)} of the {dev_entities} dev entity tokens never occur in train "
        "(mostly identifiers); the lookup baseline cannot tag them, a model must use their shape (`_`, "
        "`.`, `()`, word pieces) and context.\n"
        "- Context: `VER` vs `NUM` for a dotted number depends on the previous word; `None` / `True` / "
        "`False` vs `none` / `true` / `false` differ only in case, which an uncased model loses, so it "
        "needs the context (`returns None`, `is True`).\n"
        "- Long inputs: every split holds sentences of more than 80 tokens (longest in the table), which "
        "exceed 128 word pieces with a small vocabulary, and identifiers such as "
        "`PyUnicode_AsUTF8AndSize` split into many word pieces.\n"))
    return {s: counts[s]["sentences"] for s in SPLITS}


# --------------------------------------------------------------- SWAG layout
SWAG_HEADER = ["video-id", "fold-ind", "startphrase", "sent1", "sent2", "gold-source",
               "ending0", "ending1", "ending2", "ending3", "label"]
PREFIX_WORDS = 2


def make_swag(splits, rng, writer, sizes=(700, 150, 150)):
    examples = {}
    for split, n in zip(SPLITS, sizes):
        docs = splits[split]
        pool = [(d, i) for d in docs for i in range(len(d.sentences) - 1)
                if usable(d.sentences[i], 6, 30) and usable(d.sentences[i + 1], 6, 30)]
        by_prefix, by_first, endings = (collections.defaultdict(list), collections.defaultdict(list), [])
        for d in docs:
            for s in d.sentences:
                if usable(s, 6, 30):
                    w = s.split()
                    item = (d.name, " ".join(w[PREFIX_WORDS:]))
                    by_prefix[" ".join(w[:PREFIX_WORDS]).lower()].append(item)
                    by_first[w[0].lower()].append(item)
                    endings.append(item)
        chosen = [pool[k] for k in rng.choice(len(pool), n, replace=False)]
        labels = rng.permutation(np.arange(n) % 4)
        rows = []
        for (doc, i), label in zip(chosen, labels):
            nxt = doc.sentences[i + 1].split()
            sent2, gold = " ".join(nxt[:PREFIX_WORDS]), " ".join(nxt[PREFIX_WORDS:])
            distractors = []
            # Endings of sentences that start with the same two words, else the same first word, else any;
            # among them the closest in length to the gold ending, so neither the opening words nor
            # the length give the answer away.
            for group in (by_prefix[sent2.lower()], by_first[nxt[0].lower()], endings):
                options = [e for name, e in group if name != doc.name and e != gold and e not in distractors
                           and (doc.sentences[i], f"{sent2} {e}") not in splits["pairs"]]
                if not options:
                    continue
                options = [options[k] for k in rng.permutation(len(options))]
                options.sort(key=lambda e: abs(len(e.split()) - len(gold.split())))
                distractors += options[:3 - len(distractors)]
                if len(distractors) == 3:
                    break
            choices = list(distractors)
            choices.insert(int(label), gold)
            rows.append((doc, i, doc.sentences[i], sent2, choices, int(label)))
        examples[split] = rows
    files = {"train": "train.csv", "dev": "val.csv", "test": "test.csv"}
    for split, filename in files.items():
        rows = []
        for doc, i, sent1, sent2, choices, label in examples[split]:
            row = [doc.name, i, f"{sent1} {sent2}", sent1, sent2, "gold", *choices]
            rows.append(row + [label] if split != "test" else row)
        writer.csv(filename, rows, SWAG_HEADER if split != "test" else SWAG_HEADER[:-1])
    writer.tsv("test_labels.tsv", [[k, ex[-1]] for k, ex in enumerate(examples["test"])], ["index", "label"])
    dev = examples["dev"]

    def accuracy(score):
        return float(np.mean([int(np.argmax([score(s1, c) for c in choices])) == label
                              for _, _, s1, _, choices, label in dev]))

    longest = accuracy(lambda s1, c: len(c.split()))
    shortest = accuracy(lambda s1, c: -len(c.split()))
    overlap = accuracy(lambda s1, c: jaccard(s1, c))
    writer.text("README.md", readme(
        "swag_next: which ending continues the next sentence? (SWAG layout)",
        "SWAG CSV: `train.csv`, `val.csv` with the header `" + ",".join(SWAG_HEADER) + "`; `test.csv` "
        "without `label`. video-id = `<file>:<document>`, fold-ind = the sentence number in the document, "
        "gold-source = `gold`, startphrase = sent1 + ' ' + sent2. Test labels are in `test_labels.tsv`.",
        f"sent1 is a sentence of 6-30 words whose successor in the same document also has 6-30 words; sent2 "
        f"is the successor's first {PREFIX_WORDS} words, and the correct ending the rest of it. The three "
        "distractors are the rests (after their first two words) of real sentences of *other* documents of "
        "the same split, never one that follows sent1 anywhere in the corpus: sentences that open with the "
        "same two words if there are enough, else the same first word, else any; among those, the ones closest in length to the correct ending. The correct "
        "ending's position (label) is uniform over 0-3.",
        "label = index (0-3) of the ending that completes sent2 as the corpus does.",
        [("split", "examples", "label 0", "label 1", "label 2", "label 3")] + [
            (s, len(examples[s]), *[sum(ex[-1] == v for ex in examples[s]) for v in range(4)]) for s in SPLITS],
        [("predictor", "accuracy"), ("chance / majority label", "0.250"),
         ("longest ending", f"{longest:.3f}"), ("shortest ending", f"{shortest:.3f}"),
         ("ending with the largest word overlap with sent1", f"{overlap:.3f}")],
        f"- Length: longest {longest:.3f}, shortest {shortest:.3f} (chance 0.25): distractors are length-matched.\n"
        "- Opening: every choice continues sent2's words; distractors come from sentences that start the same "
        "way where the split has them, so the first word of an ending is not a giveaway.\n"
        f"- Lexical overlap with sent1 picks the right ending {overlap:.3f} of the time: consecutive sentences "
        "share topic words, a genuine (learnable) cue.\n"))
    return {s: len(v) for s, v in examples.items()}


# --------------------------------------------------------------- SST-2 layout
SECTION_FILES = ("howto", "library")  # label 1, label 0 (the tutorial has too few dev documents)


def make_section(splits, rng, writer, sizes=(1800, 300, 300)):
    examples = {}
    for split, n in zip(SPLITS, sizes):
        rows = []
        for label, file in ((1, SECTION_FILES[0]), (0, SECTION_FILES[1])):
            pool = sorted({s for d in splits[split] if d.file == file for s in d.sentences if usable(s)})
            rows += [(pool[k], label) for k in rng.choice(len(pool), n // 2, replace=False)]
        examples[split] = [rows[k] for k in rng.permutation(len(rows))]
    for split in ("train", "dev"):
        writer.tsv(f"{split}.tsv", [[text, label] for text, label in examples[split]], ["sentence", "label"])
    writer.tsv("test.tsv", [[k, text] for k, (text, _) in enumerate(examples["test"])], ["index", "sentence"])
    writer.tsv("test_labels.tsv", [[k, label] for k, (_, label) in enumerate(examples["test"])],
               ["index", "label"])

    # Cues: length, and bag of words (the task is mostly lexical: a multinomial naive Bayes on
    # lower-cased words, fitted on train, is the strong surface baseline a fine-tuned model is measured by).
    tx, ty = [len(t.split()) for t, _ in examples["train"]], [lab for _, lab in examples["train"]]
    dx, dy = [len(t.split()) for t, _ in examples["dev"]], [lab for _, lab in examples["dev"]]
    length_acc = best_threshold_accuracy(tx, ty, dx, dy)
    counts = {0: collections.Counter(), 1: collections.Counter()}
    for text, label in examples["train"]:
        counts[label].update(words_lower(text))
    vocab = set(counts[0]) | set(counts[1])
    totals = {lab: sum(c.values()) + len(vocab) for lab, c in counts.items()}

    def nb(text):
        score = sum(np.log((counts[1][w] + 1) / totals[1]) - np.log((counts[0][w] + 1) / totals[0])
                    for w in words_lower(text) if w in vocab)
        return int(score > 0)

    nb_acc = float(np.mean([nb(t) == lab for t, lab in examples["dev"]]))
    train_texts = {t for t, _ in examples["train"]}
    assert not any(t in train_texts for split in ("dev", "test") for t, _ in examples[split])
    writer.text("README.md", readme(
        "glue_section: is a sentence from the Python HOWTOs or from the library reference? (SST-2 layout)",
        "GLUE SST-2: `train.tsv`, `dev.tsv` with header `sentence\tlabel`; `test.tsv` with header "
        "`index\tsentence`. The test labels, withheld from `test.tsv` as in GLUE, are in `test_labels.tsv` "
        "(`index\tlabel`) for offline scoring.",
        f"Sentences of 6-30 whitespace words, each used once, drawn without replacement from the split's "
        f"documents of `{SECTION_FILES[0]}.txt` (label 1) and `{SECTION_FILES[1]}.txt` (label 0), half and "
        "half, then shuffled. The sentences are unchanged.",
        f"1 = the sentence comes from the HOWTO guides ({SECTION_FILES[0]}.txt); 0 = from the library reference "
        f"({SECTION_FILES[1]}.txt).",
        [("split", "examples", "label 1", "label 0")] + [
            (s, len(examples[s]), sum(lab for _, lab in examples[s]), sum(1 - lab for _, lab in examples[s]))
            for s in SPLITS],
        [("predictor (fitted on train)", "accuracy"), ("majority class", "0.500"),
         ("length threshold", f"{length_acc:.3f}"),
         ("naive Bayes on lower-cased words (bag of words)", f"{nb_acc:.3f}")],
        f"- Length: the best length threshold reaches {length_acc:.3f} on dev (chance 0.5).\n"
        f"- Vocabulary *is* the main cue (the HOWTOs walk the reader through a topic; the library reference "
        f"describes functions and parameters): a bag-of-words naive Bayes reaches {nb_acc:.3f}. The "
        "set checks that single-sentence classification learns; it is not a test of sentiment.\n"))
    return {s: len(v) for s, v in examples.items()}


# --------------------------------------------------------------------- main
SETS = (
    ("glue_acceptability", make_acceptability),
    ("glue_nextsent", make_nextsent),
    ("glue_similarity", make_similarity),
    ("squad_cloze", make_squad),
    ("conll_docs", make_conll),
    ("swag_next", make_swag),
    ("glue_section", make_section),  # appended last: each set's RNG stream is fixed by its position
)


def derive(corpus_dir: str, output_dir: str, only: list[str] | None = None) -> dict:
    """Writes every set (or those in `only`) under `output_dir`; returns {set: {split: size}}."""
    docs = read_corpus(corpus_dir)
    splits = by_split(docs)
    # Consecutive sentence pairs anywhere in the corpus: a negative or distractor must not be one (a
    # sentence repeated in several documents can have several true successors).
    splits["pairs"] = {(a, b) for d in docs for a, b in zip(d.sentences, d.sentences[1:])}
    summary = {}
    for number, (name, make) in enumerate(SETS):
        if only and name not in only:
            continue
        rng = np.random.default_rng([SEED, number])
        summary[name] = make(splits, rng, Writer(output_dir, name))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default=os.path.join(ROOT, "data", "corpus"))
    parser.add_argument("--output", default=os.path.join(ROOT, "data", "tasks"))
    parser.add_argument("--only", nargs="*", choices=[name for name, _ in SETS], help="derive only these sets")
    args = parser.parse_args(argv)
    summary = derive(args.corpus, args.output, args.only)
    total = 0
    for name, sizes in summary.items():
        folder = os.path.join(args.output, name)
        size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
        total += size
        print(f"{name:20s} {size / 1e3:8.1f} kB  " + "  ".join(f"{s}={n}" for s, n in sizes.items()))
    print(f"{'total':20s} {total / 1e3:8.1f} kB -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
