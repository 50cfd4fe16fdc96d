"""In-memory sentence classification data: the "docs_section" set built from the
bundled corpus, tokenization to fixed-length arrays, and a resumable loader.

docs_section: which part of the Python documentation a sentence comes from.
Each corpus file (``tutorial.txt``, ``library.txt`` ...) is one label; documents
are separated by blank lines. Train/dev are split **by document** with a
stable hash of ``(label, document index)``, so dev sentences come from
documents the model never saw. Each label is capped to the same number of
sentences (``max_per_label``) so the classes are balanced; the majority-class
baseline is still measured and reported in ``info``.

Batches come from ``bert_jax.tasks.arrays.ArrayLoader``. No JAX import here.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field

import numpy as np

from bert_jax.text_files import read_utf8



@dataclass(frozen=True)
class LabelledText:
    """Sentences with integer labels and the document each came from."""

    texts: list[str]
    labels: np.ndarray  # int32 [num_examples]
    documents: np.ndarray  # int64 [num_examples], unique over (label, document)
    label_names: tuple[str, ...]
    info: dict = field(default_factory=dict)


def read_documents(path: str) -> list[list[str]]:
    """BERT corpus format: one sentence per line, a blank line between documents."""
    docs, current = [], []
    for line in io.StringIO(read_utf8(path, "corpus file"), newline=None):
        line = line.strip()
        if line:
            current.append(line)
        elif current:
            docs.append(current)
            current = []
    if current:
        docs.append(current)
    return docs


def _is_dev(label: str, doc_index: int, dev_percent: int) -> bool:
    # sha1 rather than hash(): Python's string hash changes per process.
    digest = hashlib.sha1(f"{label}:{doc_index}".encode()).digest()
    return int.from_bytes(digest[:4], "little") % 100 < dev_percent


def docs_section_splits(corpus_dir: str, label_names: tuple[str, ...], *, dev_percent: int = 15,
                        max_per_label: int = 0, max_train_per_label: int = 0, balance: bool = True,
                        seed: int = 0) -> dict[str, LabelledText]:
    """``{"train": ..., "dev": ...}`` from ``corpus_dir/<label>.txt``.

    Args:
      corpus_dir: directory holding one BERT-format text file per label.
      label_names: file stems to use, e.g. ``("tutorial", "library", "reference", "whatsnew")``.
      dev_percent: share of *documents* (not sentences) held out for dev.
      max_per_label: cap on sentences per label and split (0 = no cap).
      max_train_per_label: a further cap on train only (0 = none): the few-label regime
        with every dev sentence kept, so dev scores are less noisy.
      balance: also cap every label at the smallest label's count in each split, so
        the majority-class baseline is 1 / num_labels.
      seed: which sentences a cap keeps (a seeded random subset, the same in every
        process); the split itself depends on nothing but the text.
    """
    if not 0 < dev_percent < 100:
        raise ValueError(f"dev_percent={dev_percent} must be between 1 and 99.")
    if len(label_names) < 2 or len(set(label_names)) != len(label_names):
        raise ValueError(f"labels={label_names!r}: need at least two distinct corpus file names.")
    rows = {"train": [], "dev": []}
    for label, name in enumerate(label_names):
        path = os.path.join(corpus_dir, f"{name}.txt")
        if not os.path.isfile(path):
            have = sorted(f[:-4] for f in os.listdir(corpus_dir) if f.endswith(".txt")) \
                if os.path.isdir(corpus_dir) else []
            raise FileNotFoundError(f"label {name!r}: no file {path}; labels are corpus file names "
                                    f"without .txt (available in {corpus_dir}: {', '.join(have) or 'none'}).")
        per_split = {"train": [], "dev": []}
        for d, doc in enumerate(read_documents(path)):
            split = "dev" if _is_dev(name, d, dev_percent) else "train"
            per_split[split] += [(s, label, label * 1_000_000 + d) for s in doc]
        for split, items in per_split.items():
            if not items:
                raise ValueError(f"label {name!r} has no {split} sentences in {path}; "
                                 f"use a larger file or another dev_percent.")
            rows[split].append(items)
    for split, per_label in rows.items():
        cap = min(len(items) for items in per_label) if balance else None
        for limit in (max_per_label, max_train_per_label if split == "train" else 0):
            if limit:
                cap = min(cap or limit, limit)
        kept = []
        for label, items in enumerate(per_label):
            if cap and len(items) > cap:
                rng = np.random.default_rng([seed, label, split == "dev"])
                keep = np.sort(rng.choice(len(items), cap, replace=False))
                items = [items[i] for i in keep]
            kept += items
        rows[split] = kept
    out = {}
    for split, items in rows.items():
        labels = np.array([r[1] for r in items], np.int32)
        counts = np.bincount(labels, minlength=len(label_names))
        info = {"num_examples": len(items), "label_counts": dict(zip(label_names, counts.tolist())),
                "num_documents": int(len({r[2] for r in items})),
                "majority_baseline": float(counts.max() / counts.sum())}
        out[split] = LabelledText([r[0] for r in items], labels, np.array([r[2] for r in items], np.int64),
                                  tuple(label_names), info)
    return out


def encode(data: LabelledText, tokenizer, max_seq_length: int) -> dict[str, np.ndarray]:
    """Token arrays: ``input_ids, attention_mask, token_type_ids`` int32 ``[n, max_seq_length]``
    (truncated / padded), ``labels`` int32 ``[n]``, ``row_weight`` float32 ``[n]`` (all 1)."""
    enc = tokenizer(data.texts, padding="max_length", truncation=True, max_length=max_seq_length,
                    return_tensors="np")
    n = len(data.texts)
    return {"input_ids": enc["input_ids"].astype(np.int32),
            "attention_mask": enc["attention_mask"].astype(np.int32),
            "token_type_ids": enc["token_type_ids"].astype(np.int32),
            "labels": data.labels.astype(np.int32),
            "row_weight": np.ones((n,), np.float32)}
