"""Batch-encoding throughput: BertTokenizerFast vs raw `tokenizers` vs BertTokenizer.

Encodes corpus sentences to `[batch, max_length]` arrays (padding and
truncation to max_length) three ways and prints one JSON line per result:

  * `tokenizers` (raw): `Tokenizer.encode_batch` with truncation/padding set on
    the backend, ids / type ids / attention mask stacked into numpy arrays
    (the same output the wrapper returns);
  * `tokenizers.encode_batch` (raw, backend work only): the same call, results
    left as `Encoding` objects (no arrays): a lower bound for any wrapper;
  * `BertTokenizerFast.__call__(..., return_tensors="np")` on that backend;
  * `BertTokenizer` (pure Python) on fewer sentences (it is much slower).

Runs alternate between the fast variants so machine load affects both alike;
the median of `--repeats` runs is reported, and a last line gives the wrapper /
raw throughput ratios, each the median over repeats of the paired ratio
of adjacent runs (acceptance: >= 0.9).

    python benchmarks/tokenizer.py                 # trains an 8k vocab on data/corpus first
    python benchmarks/tokenizer.py --vocab DIR --sentences 10000 --max-length 128
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import platform
import statistics
import sys
import tempfile
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]


def corpus_sentences(count: int) -> list[str]:
    lines: list[str] = []
    for path in sorted((REPO / "data" / "corpus").glob("*.txt")):
        with open(path, encoding="utf-8") as handle:
            lines.extend(line.rstrip("\n") for line in handle if line.strip())
    if len(lines) < count:
        raise SystemExit(f"corpus has {len(lines)} sentences, fewer than --sentences {count}")
    return lines[:count]


def encode_raw(backend, sentences):
    encodings = backend.encode_batch(sentences)
    return (np.array([e.ids for e in encodings], dtype=np.int64),
            np.array([e.type_ids for e in encodings], dtype=np.int64),
            np.array([e.attention_mask for e in encodings], dtype=np.int64))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocab", help="tokenizer directory (default: train an 8k uncased vocab on data/corpus)")
    parser.add_argument("--sentences", type=int, default=10_000)
    parser.add_argument("--python-sentences", type=int, default=2_000, help="sentences for BertTokenizer")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)

    from tokenizers import Tokenizer

    from bert_jax.tokenization import BertTokenizer, BertTokenizerFast

    with tempfile.TemporaryDirectory() as tmp:
        vocab_dir = args.vocab
        if vocab_dir is None:
            from bert_jax.vocab import train_wordpiece

            vocab_dir = str(pathlib.Path(tmp) / "vocab")
            train_wordpiece(sorted(str(p) for p in (REPO / "data" / "corpus").glob("*.txt")), 8000,
                            output_dir=vocab_dir, progress=False)
        sentences = corpus_sentences(args.sentences)
        fast = BertTokenizerFast.from_pretrained(vocab_dir)
        slow = BertTokenizer.from_pretrained(vocab_dir)
        raw = Tokenizer.from_str(fast.backend_tokenizer.to_str())  # same pipeline, separate object
        raw.enable_truncation(max_length=args.max_length)
        raw.enable_padding(pad_id=fast.pad_token_id, pad_token=fast.pad_token, length=args.max_length)
        kwargs = dict(padding="max_length", truncation=True, max_length=args.max_length, return_tensors="np")

        # Same output from both before timing anything.
        ids, type_ids, mask = encode_raw(raw, sentences)
        out = fast(sentences, **kwargs)
        assert np.array_equal(ids, out["input_ids"]) and np.array_equal(mask, out["attention_mask"])
        assert np.array_equal(type_ids, out["token_type_ids"])

        variants = {
            "tokenizers": lambda: encode_raw(raw, sentences),
            "tokenizers.encode_batch": lambda: raw.encode_batch(sentences),
            "BertTokenizerFast": lambda: fast(sentences, **kwargs),
        }
        times = {name: [] for name in variants}
        for _ in range(args.repeats):
            for name, run in variants.items():
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
        python_sentences = sentences[: args.python_sentences]
        python_times = []
        for _ in range(max(1, args.repeats // 3)):
            slow._word_cache.clear()  # time tokenization, not a warm memo
            start = time.perf_counter()
            slow(python_sentences, **kwargs)
            python_times.append(time.perf_counter() - start)

    common = {"benchmark": "tokenizer_batch_encode", "max_length": args.max_length,
              "padding": "max_length", "truncation": True, "repeats": args.repeats,
              "machine": platform.machine(), "date": datetime.date.today().isoformat()}
    rates = {}
    for name, samples in (*times.items(), ("BertTokenizer", python_times)):
        count = len(python_sentences) if name == "BertTokenizer" else len(sentences)
        median = statistics.median(samples)
        rates[name] = count / median
        print(json.dumps({**common, "impl": name, "sentences": count, "median_s": round(median, 4),
                          "sentences_per_s": round(rates[name], 1)}))
    for baseline in ("tokenizers", "tokenizers.encode_batch"):
        ratio = statistics.median(b / f for b, f in zip(times[baseline], times["BertTokenizerFast"]))
        print(json.dumps({**common, "impl": f"BertTokenizerFast/{baseline}", "throughput_ratio": round(ratio, 3),
                          "within_10_percent": ratio >= 0.9}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
