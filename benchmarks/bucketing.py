"""Length-bucketed fine-tuning batches: padding fraction and the train step's real tokens/s and
examples/s, bucketed vs unbucketed, side by side.

The GLUE-layout sets derived from the bundled corpus (``data/tasks/glue_section``: SST-2 layout,
single sentences; ``data/tasks/glue_nextsent``: RTE layout, sentence pairs) are read by the
registered tasks (``sst2``, ``rte``) at seq 128 with a WordPiece vocabulary trained on the corpus
(8,000 tokens, as the other benchmarks). For each set: the training data's padding fraction over
one epoch, unbucketed (every row at 128) and bucketed (``data.bucket_lengths``,
``data.bucket_group_batches``), then the train step of a small model (hidden 256, 4 layers,
batch 32, float32, dropout as in BERT) timed over each loader's whole epoch 0 (or its first
``--steps`` batches), the two loaders alternating over ``--rounds`` rounds (best round each).
Every shape is compiled before the clock starts; compile time is reported separately (the
bucketed step compiles once per bucket). Real tokens/s counts only positions with
``attention_mask`` 1.

  python benchmarks/bucketing.py                     # both sets, buckets (32, 64, 96, 128), K = 16
  python benchmarks/bucketing.py --steps 10 --rounds 2 --sets sst2
  python benchmarks/bucketing.py --padding-grid      # padding only: bucket sets x group sizes K

One JSON line per result on stdout (with the CPU model).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import machine  # noqa: E402

CORPUS = sorted(glob.glob(os.path.join(ROOT, "data", "corpus", "*.txt")))
SETS = {"sst2": "glue_section", "rte": "glue_nextsent"}
SEQ, BATCH = 128, 32
SMALL = dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024)


def train_arrays(task: str, vocab_file: str) -> dict[str, np.ndarray]:
    """The task's training split as the fine-tuning job reads it (the head's batch arrays)."""
    from bert_jax.run_config import finetune_defaults
    from bert_jax.tasks import registry
    from bert_jax.tokenization import BertTokenizerFast
    cfg = finetune_defaults(task)
    cfg.data.data_dir = os.path.join(ROOT, "data", "tasks", SETS[task])
    cfg.data.max_seq_length = SEQ
    split = registry.get(task).load_split(cfg, "train", BertTokenizerFast(vocab_file, do_lower_case=True))
    return {k: split.arrays[k] for k in ("input_ids", "attention_mask", "token_type_ids", "labels")}


def setup(vocab_size: int):
    import jax
    from bert_jax import optim, partitioning, train
    from bert_jax.config import BertConfig
    from bert_jax.modeling.modules import build_module
    from bert_jax.tasks.heads import HeadTask
    cfg = BertConfig(vocab_size=vocab_size, num_labels=2, **SMALL)
    task = HeadTask(build_module(cfg, "BertForSequenceClassification"), "sequence_classification", SEQ)
    ocfg = dict(name="adamw", learning_rate=2e-5, total_steps=10_000, warmup_steps=100, weight_decay=0.01)
    tx, schedule = optim.make_optimizer(ocfg), optim.make_schedule(ocfg)
    mesh = partitioning.make_mesh((1, 1, 1), jax.devices()[:1])
    state, shardings, _ = train.create_train_state(task, tx, mesh, partitioning.DEFAULT_RULES,
                                                   jax.random.PRNGKey(0), jax.random.PRNGKey(1))
    return task, mesh, state, train.jit_steps(task, tx, schedule, mesh, shardings, 1).train


def bench(task_name: str, vocab_file: str, vocab_size: int, buckets, group_batches: int, steps: int,
          rounds: int) -> list[dict]:
    import jax
    from bert_jax import partitioning
    from bert_jax.tasks.arrays import ArrayLoader
    from bert_jax.tasks.bucketing import BucketedArrayLoader, padding_fraction
    arrays = train_arrays(task_name, vocab_file)
    loaders = {"unbucketed": ArrayLoader(arrays, BATCH, seed=0),
               "bucketed": BucketedArrayLoader(arrays, BATCH, seed=0, bucket_lengths=buckets,
                                               group_batches=group_batches)}
    report = loaders["bucketed"].padding_report(0)
    _, mesh, state, step = setup(vocab_size)
    keys = ("input_ids", "attention_mask", "token_type_ids", "labels", "row_weight")
    timed, compile_s = {}, {}
    for mode, loader in loaders.items():
        local = [loader.batch_at(s) for s in range(steps or loader.steps_per_epoch)]
        timed[mode] = {"batches": [partitioning.make_global_batch({k: b[k] for k in keys}, mesh) for b in local],
                       "real_tokens": sum(int(b["attention_mask"][b["row_weight"] > 0].sum()) for b in local),
                       "examples": sum(int((b["row_weight"] > 0).sum()) for b in local),
                       "positions": sum(int(b["attention_mask"].size) for b in local),
                       "widths": sorted({int(b["input_ids"].shape[1]) for b in local})}
        # compile every shape the clock will see (a bucketed run compiles at most once per bucket)
        compile_s[mode] = 0.0
        for width in timed[mode]["widths"]:
            first = next(b for b in timed[mode]["batches"] if b["input_ids"].shape[1] == width)
            t = time.perf_counter()
            state, metrics = step(state, first)
            jax.block_until_ready(metrics)
            compile_s[mode] += time.perf_counter() - t
    best = {mode: float("inf") for mode in loaders}
    for _ in range(rounds):
        for mode in loaders:
            t = time.perf_counter()
            for batch in timed[mode]["batches"]:
                state, metrics = step(state, batch)
            jax.block_until_ready((state.params, metrics))
            best[mode] = min(best[mode], time.perf_counter() - t)
    out = []
    for mode in loaders:
        at = timed[mode]
        epoch_padding = report["bucketed"] if mode == "bucketed" else padding_fraction(arrays["attention_mask"])
        out.append({"benchmark": "finetune_bucketing", "task": task_name, "data": f"data/tasks/{SETS[task_name]}",
                    "mode": mode, "seq_len": SEQ, "batch": BATCH, "config": "small (h256 L4)",
                    **({"bucket_lengths": report["bucket_lengths"], "bucket_group_batches": group_batches}
                       if mode == "bucketed" else {}),
                    "train_examples": len(arrays["input_ids"]),
                    "epoch_padding_fraction": round(epoch_padding, 4),
                    "timed_steps": len(at["batches"]), "timed_padding_fraction": round(1 - at["real_tokens"] / at["positions"], 4),
                    "widths_timed": at["widths"], "compile_s": round(compile_s[mode], 2),
                    "step_s": round(best[mode] / len(at["batches"]), 4),
                    "real_tokens_per_s": round(at["real_tokens"] / best[mode], 1),
                    "examples_per_s": round(at["examples"] / best[mode], 2), **machine()})
    ratio = out[1]["examples_per_s"] / out[0]["examples_per_s"]
    out.append({"benchmark": "finetune_bucketing_speedup", "task": task_name, "examples_per_s_ratio": round(ratio, 3),
                "epoch_padding_fraction": [out[0]["epoch_padding_fraction"], out[1]["epoch_padding_fraction"]],
                **machine()})
    return out


def padding_grid(task_name: str, vocab_file: str) -> list[dict]:
    """Epoch-0 padding fraction for a few bucket sets and group sizes ``K`` (data only)."""
    from bert_jax.tasks.bucketing import BucketedArrayLoader, padding_fraction, row_lengths
    arrays = train_arrays(task_name, vocab_file)
    lengths = row_lengths(arrays["attention_mask"])
    out = [{"benchmark": "finetune_bucketing_padding", "task": task_name, "mode": "unbucketed", "seq_len": SEQ,
            "epoch_padding_fraction": round(padding_fraction(arrays["attention_mask"]), 4),
            "mean_row_length": round(float(lengths.mean()), 1), "max_row_length": int(lengths.max())}]
    for buckets in [(32, 64, 96, 128), (16, 32, 48, 64, 96, 128), tuple(range(8, SEQ + 1, 8))]:
        for k in (1, 4, 16, 64):
            report = BucketedArrayLoader(arrays, BATCH, seed=0, bucket_lengths=buckets, group_batches=k).padding_report(0)
            out.append({"benchmark": "finetune_bucketing_padding", "task": task_name, "mode": "bucketed",
                        "bucket_lengths": list(buckets), "bucket_group_batches": k,
                        "epoch_padding_fraction": report["bucketed"]})
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--buckets", type=int, nargs="+", default=[32, 64, 96, 128])
    parser.add_argument("--group-batches", type=int, default=16)
    parser.add_argument("--steps", type=int, default=0, help="timed train steps per mode and round (0 = an epoch)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--padding-grid", action="store_true", help="only the padding fractions of several "
                        "bucket sets and group sizes (no model)")
    args = parser.parse_args(argv)
    from bert_jax.vocab import train_wordpiece
    with tempfile.TemporaryDirectory() as tmp:
        train_wordpiece(CORPUS, 8000, lowercase=True, output_dir=tmp)
        vocab_file = os.path.join(tmp, "vocab.txt")
        vocab_size = sum(1 for _ in open(vocab_file, encoding="utf-8"))
        for name in args.sets:
            if args.padding_grid:
                for line in padding_grid(name, vocab_file):
                    print(json.dumps(line), flush=True)
                continue
            for line in bench(name, vocab_file, vocab_size, tuple(args.buckets), args.group_batches, args.steps,
                              args.rounds):
                print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
