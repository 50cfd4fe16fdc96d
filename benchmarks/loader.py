"""Loader throughput with dynamic masking vs Hugging Face ``DataCollatorForLanguageModeling``.

Usage::

    python benchmarks/loader.py [--batches 200] [--rounds 3]

Builds dynamic-masking shards from the bundled corpus (seq 128), then times,
on the same batches of 256 x 128, (a) ``PretrainingLoader`` producing full
batches (gather from the memory-mapped shards + vectorised masking + NSP
labels) in the calling thread (``prefetch=0``: the cost per core), and
(b) ``DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15,
return_tensors="np")`` masking those same unmasked rows. Each measurement runs
in a fresh subprocess (so ``ru_maxrss`` is its own peak), alternating ours /
theirs for ``--rounds`` rounds; the median of each is reported with the ratio.
One JSON line per result.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import machine  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
BATCH, SEQ = 256, 128


def prepare(tmp: str) -> str:
    import logging

    import tokenizers

    from data_pipeline import build

    logging.disable(logging.WARNING)
    corpus = sorted(glob.glob(str(ROOT / "data" / "corpus" / "*.txt")))
    tok = tokenizers.BertWordPieceTokenizer(lowercase=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"[unused{i}]" for i in range(100)]
    tok.train(corpus, vocab_size=8000, special_tokens=specials, show_progress=False)
    tok.save_model(tmp)
    out = os.path.join(tmp, "shards")
    opts = build.BuildOptions(inputs=tuple(corpus), vocab_file=os.path.join(tmp, "vocab.txt"), max_seq_length=SEQ,
                              dupe_factor=5, num_shards=2, dynamic_masking=True)
    build.build(opts, out)
    return out


def child(kind: str, shards_dir: str, batches: int) -> None:
    from data_pipeline.loader import PretrainingLoader

    loader = PretrainingLoader(shards_dir, BATCH, seed=0, prefetch=0)
    batches = min(batches, loader.steps_per_epoch)
    if kind == "ours":
        loader.batch_at(0)  # warm the page cache and the permutation
        start = time.perf_counter()
        for step in range(batches):
            batch = loader.batch_at(step)
        seconds = time.perf_counter() - start
        assert batch["input_ids"].shape == (BATCH, SEQ)
    else:
        from transformers import BertTokenizerFast, DataCollatorForLanguageModeling

        tok = BertTokenizerFast(vocab_file=os.path.join(shards_dir, "vocab.txt"))
        collator = DataCollatorForLanguageModeling(tok, mlm=True, mlm_probability=0.15, return_tensors="np")
        # The same unmasked rows our loader reads for these steps, as collator features.
        rows = [loader._gather(loader.local_indices(s), ["input_ids", "token_type_ids", "attention_mask"]) for s in range(batches)]
        # Plain lists of ids: the collator's fastest input form (arrays and extra fields are slower).
        feats = [[{"input_ids": r["input_ids"][i].tolist()} for i in range(BATCH)] for r in rows]
        collator(feats[0])
        start = time.perf_counter()
        for f in feats:
            out = collator(f)
        seconds = time.perf_counter() - start
        assert out["input_ids"].shape == (BATCH, SEQ)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"sequences_per_s": batches * BATCH / seconds, "peak_rss_mib": peak}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", choices=("ours", "hf"))
    parser.add_argument("--shards")
    parser.add_argument("--batches", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.shards, args.batches)
        return
    with tempfile.TemporaryDirectory() as tmp:
        shards_dir = prepare(tmp)
        results = {"ours": [], "hf": []}
        for _ in range(args.rounds):
            for kind in ("ours", "hf"):
                cmd = [sys.executable, __file__, "--child", kind, "--shards", shards_dir, "--batches", str(args.batches)]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
                results[kind].append(json.loads(out))
    med = {k: statistics.median(r["sequences_per_s"] for r in v) for k, v in results.items()}
    names = {"ours": "PretrainingLoader(dynamic_masking, prefetch=0)", "hf": "DataCollatorForLanguageModeling(np)"}
    for kind in ("ours", "hf"):
        print(json.dumps({
            "benchmark": "loader", "impl": names[kind], "batch": [BATCH, SEQ],
            "sequences_per_s": round(med[kind]), "runs": [round(r["sequences_per_s"]) for r in results[kind]],
            "peak_rss_mib": round(max(r["peak_rss_mib"] for r in results[kind])), **machine(),
        }))
    print(json.dumps({"benchmark": "loader", "ratio_ours_over_hf": round(med["ours"] / med["hf"], 2), **machine()}))


if __name__ == "__main__":
    main()
