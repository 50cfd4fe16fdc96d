"""In-memory sentence classification data: the "docs_section" set built from the
bundled corpus, tokenization to fixed-length arrays, and a resumable loader.

docs_section: which part of the Python documentation a sentence comes from.
Each corpus file (``tutorial.txt``, ``library.txt`` ...) is one label; documents
are separated by blank lines. Train/dev are split **by document** with a
stable hash of ``(label, document index)``, so dev sentences come from
documents the model never saw. Each label is capped to the same number of
sentences (``max_per_label``) so the classes are balanced; the majority-class
baseline is still measured and reported in ``info``.

``ClassificationLoader`` follows the ``PretrainingLoader`` interface used by
the training loop: ``__iter__`` yields this process's rows of each global batch
as numpy dicts, ``state()``/``restore()`` give exact resume, ``steps_per_epoch``
and ``manifest`` describe the data. No JAX import here.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

import numpy as np

IGNORE_LABEL = -100  # padding rows (eval pass over a set that is not a batch multiple)


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
    with open(path, encoding="utf-8") as f:
        for line in f:
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
                        max_per_label: int = 0, balance: bool = True, seed: int = 0) -> dict[str, LabelledText]:
    """``{"train": ..., "dev": ...}`` from ``corpus_dir/<label>.txt``.

    Args:
      corpus_dir: directory holding one BERT-format text file per label.
      label_names: file stems to use, e.g. ``("tutorial", "library", "reference", "whatsnew")``.
      dev_percent: share of *documents* (not sentences) held out for dev.
      max_per_label: cap on sentences per label and split (0 = no cap).
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
        if max_per_label:
            cap = min(cap or max_per_label, max_per_label)
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
    (truncated / padded), ``labels`` int32 ``[n]``, ``example_weight`` float32 ``[n]`` (all 1)."""
    enc = tokenizer(data.texts, padding="max_length", truncation=True, max_length=max_seq_length,
                    return_tensors="np")
    n = len(data.texts)
    return {"input_ids": enc["input_ids"].astype(np.int32),
            "attention_mask": enc["attention_mask"].astype(np.int32),
            "token_type_ids": enc["token_type_ids"].astype(np.int32),
            "labels": data.labels.astype(np.int32),
            "example_weight": np.ones((n,), np.float32)}


class ClassificationLoader:
    """Per-process batches over in-memory arrays (the ``PretrainingLoader`` interface).

    Global batch ``s`` of epoch ``e`` is ``perm_e[s * B : (s + 1) * B]`` with
    ``perm_e`` drawn from ``np.random.default_rng([seed, e])`` (or the identity
    when ``shuffle=False``); process ``p`` takes rows ``[p * B / P, (p + 1) * B / P)``.

    Args:
      arrays: ``{name: [num_examples, ...]}`` (see ``encode``).
      global_batch_size: rows per step over all processes (B).
      process_index, process_count: this host (p) and the number of hosts (P).
      seed: epoch permutations derive from it.
      shuffle: permute each epoch (training) or keep the order (evaluation).
      drop_remainder: drop the last partial batch of each epoch (training); otherwise it is
        padded with rows of ``example_weight`` 0 and label ``IGNORE_LABEL`` (evaluation).
      num_epochs: stop after this many epochs (None = forever).
      manifest: description of the data (counts, labels, vocabulary) kept for the run.
    """

    def __init__(self, arrays: dict[str, np.ndarray], global_batch_size: int, *, process_index: int = 0,
                 process_count: int = 1, seed: int = 0, shuffle: bool = True, drop_remainder: bool = True,
                 num_epochs: int | None = None, manifest: dict | None = None):
        self.num_examples = int(len(arrays["labels"]))
        if global_batch_size % process_count:
            raise ValueError(f"global_batch_size={global_batch_size} is not divisible by the "
                             f"{process_count} processes.")
        self.arrays, self.batch, self.seed = arrays, int(global_batch_size), int(seed)
        self.process_index, self.process_count = process_index, process_count
        self.shuffle, self.drop_remainder, self.num_epochs = shuffle, drop_remainder, num_epochs
        full, rest = divmod(self.num_examples, self.batch)
        self.steps_per_epoch = full if drop_remainder else full + (rest > 0)
        if self.steps_per_epoch == 0:
            raise ValueError(f"{self.num_examples} examples make no batch of global_batch_size="
                             f"{self.batch}; lower global_batch_size.")
        self.manifest = {**(manifest or {}), "num_examples": self.num_examples,
                         "steps_per_epoch": self.steps_per_epoch}
        self._step = 0

    def _permutation(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.num_examples)
        return np.random.default_rng([self.seed, epoch]).permutation(self.num_examples)

    def batch_at(self, step: int) -> dict[str, np.ndarray]:
        """This process's rows of global batch ``step`` (counted over epochs)."""
        epoch, s = divmod(step, self.steps_per_epoch)
        idx = self._permutation(epoch)[s * self.batch:(s + 1) * self.batch]
        local = self.batch // self.process_count
        rows = np.full((self.batch,), -1, np.int64)
        rows[:len(idx)] = idx
        rows = rows[self.process_index * local:(self.process_index + 1) * local]
        real = rows >= 0
        out = {k: v[np.where(real, rows, 0)] for k, v in self.arrays.items()}
        if not real.all():  # padding rows: present for the shapes, counted nowhere
            out["example_weight"] = np.where(real, out["example_weight"], 0).astype(np.float32)
            out["labels"] = np.where(real, out["labels"], IGNORE_LABEL).astype(out["labels"].dtype)
            out["attention_mask"] = np.where(real[:, None], out["attention_mask"], 0).astype(np.int32)
        return out

    def __iter__(self):
        end = None if self.num_epochs is None else self.num_epochs * self.steps_per_epoch
        while end is None or self._step < end:
            batch = self.batch_at(self._step)
            self._step += 1
            yield batch

    def state(self) -> dict:
        """The next step to yield (JSON-serialisable)."""
        return {"step": self._step, "seed": self.seed, "num_examples": self.num_examples}

    def restore(self, state: dict) -> None:
        if state.get("num_examples", self.num_examples) != self.num_examples:
            raise ValueError(f"the saved loader position is for {state['num_examples']} examples but the "
                             f"data now has {self.num_examples}; the data set changed since the checkpoint "
                             "(check data.* in the config), or use a new --workdir.")
        self._step = int(state["step"])
