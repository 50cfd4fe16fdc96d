"""Helpers shared by the data-pipeline tests (real-text corpora, options, byte snapshots)."""

from __future__ import annotations

import glob
import os
import pathlib

import numpy as np

from data_pipeline import build

CORPUS_DIR = pathlib.Path(__file__).resolve().parents[2] / "data" / "corpus"
CORPUS_FILES = sorted(glob.glob(str(CORPUS_DIR / "*.txt")))
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"[unused{i}]" for i in range(5)]


def read_documents(path: str, limit: int) -> list[list[str]]:
    """The first ``limit`` documents (lists of sentence lines) of a corpus file."""
    text = pathlib.Path(path).read_text(encoding="utf-8")
    docs = [d.strip().split("\n") for d in text.split("\n\n") if d.strip()]
    return docs[:limit]


def write_corpus(path: pathlib.Path, docs: list[list[str]]) -> str:
    path.write_text("\n\n".join("\n".join(d) for d in docs) + "\n", encoding="utf-8")
    return str(path)


def make_options(inputs, vocab_file, **kw) -> build.BuildOptions:
    defaults = dict(max_seq_length=64, max_predictions_per_seq=10, dupe_factor=2, num_shards=3, seed=7)
    defaults.update(kw)
    return build.BuildOptions(inputs=tuple(inputs), vocab_file=vocab_file, **defaults)


def dir_bytes(directory: str) -> dict[str, bytes]:
    """Every file of a built directory, by name (the data a byte-identity test compares)."""
    return {
        name: pathlib.Path(directory, name).read_bytes()
        for name in sorted(os.listdir(directory))
        if os.path.isfile(os.path.join(directory, name))
    }


def masked_fraction_estimate(num_candidates: np.ndarray, num_masked: np.ndarray, p: float, max_predictions: int):
    """(observed, expected, sd) of the masked fraction over the examples where neither the floor of 1
    nor the cap binds.

    An example with ``c`` maskable tokens masks ``floor(c p) + Bernoulli(frac(c p))`` of them, so
    over those examples ``sum(masked) / sum(c)`` has mean exactly ``p`` and variance
    ``sum(f (1 - f)) / sum(c)^2`` with ``f = frac(c p)``. Also returns the share of free examples.
    """
    c = np.asarray(num_candidates, np.float64)
    free = (c * p >= 1) & (np.ceil(c * p) <= max_predictions)
    f = c[free] * p - np.floor(c[free] * p)
    sd = float(np.sqrt(np.sum(f * (1 - f))) / c[free].sum())
    observed = float(np.asarray(num_masked)[free].sum() / c[free].sum())
    return observed, p, sd, float(free.mean())
