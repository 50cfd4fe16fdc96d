"""Fine-tuning and evaluation throughput, and what the per-step host sync cost.

  python benchmarks/finetune.py                         # small and base, SST-2-like and MNLI-like
  python benchmarks/finetune.py --configs small --steps 10

Inputs are real sentences of the bundled corpus, tokenized with a vocabulary trained on
it: SST-2-like = one sentence per example, MNLI-like = a pair of consecutive sentences,
both padded to seq 128 (throughput does not depend on the words, only on the shapes).
For each (config, input): the fine-tuning train step (examples/s) and the jitted,
sharded ``predict`` step over an evaluation split (examples/s, host gathering included).

``--sync-check``: the same small train step run side by side with a device-to-host read
of the loss after every step (what a per-step NaN check did) and without it (metrics
fetched only at log steps), as a ratio.

One JSON line per result on stdout, each with the CPU model.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import machine  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {"small": (256, 4, 4, 1024, 32), "base": (768, 12, 12, 3072, 8)}  # hidden, layers, heads, inter, batch
SEQ = 128


def corpus_inputs(kind: str, n: int, vocab_file: str) -> dict[str, np.ndarray]:
    from bert_jax.tasks.text_classification_data import read_documents
    from bert_jax.tokenization import BertTokenizerFast
    docs = [d for f in sorted(glob.glob(os.path.join(ROOT, "data", "corpus", "*.txt"))) for d in read_documents(f)]
    pairs = [(d[i], d[i + 1]) for d in docs for i in range(len(d) - 1)][:n]
    tok = BertTokenizerFast(vocab_file, do_lower_case=True)
    first = [a for a, _ in pairs]
    second = None if kind == "sst2_like" else [b for _, b in pairs]
    enc = tok(first, second, padding="max_length", truncation=True, max_length=SEQ, return_tensors="np")
    arrays = {k: enc[k].astype(np.int32) for k in ("input_ids", "attention_mask", "token_type_ids")}
    arrays["labels"] = (np.arange(len(first)) % 2).astype(np.int32)
    return arrays


def setup(name: str, vocab_size: int):
    from bert_jax import optim, partitioning, train
    from bert_jax.config import BertConfig
    from bert_jax.tasks.heads import HeadTask
    from bert_jax.modeling import BertForSequenceClassificationModule
    hidden, layers, heads, inter, batch = CONFIGS[name]
    cfg = BertConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=inter, num_labels=3)
    task = HeadTask(BertForSequenceClassificationModule(cfg), "sequence_classification", SEQ, num_labels=3)
    ocfg = dict(name="adamw", learning_rate=2e-5, total_steps=10_000, warmup_steps=100, weight_decay=0.01)
    tx, schedule = optim.make_optimizer(ocfg), optim.make_schedule(ocfg)
    mesh = partitioning.make_mesh((1, 1, 1), jax.devices()[:1])
    state, shardings, _ = train.create_train_state(task, tx, mesh, partitioning.DEFAULT_RULES,
                                                   jax.random.PRNGKey(0), jax.random.PRNGKey(1))
    return cfg, task, mesh, state, train.jit_steps(task, tx, schedule, mesh, shardings, 1), batch


def bench(name: str, kind: str, steps: int, vocab_file: str, vocab_size: int) -> dict:
    from bert_jax import partitioning
    from bert_jax.evaluation import predict_rows
    cfg, task, mesh, state, fns, batch = setup(name, vocab_size)
    arrays = corpus_inputs(kind, batch * max(steps, 4), vocab_file)
    batches = []
    for i in range(2):
        rows = {k: v[i * batch:(i + 1) * batch] for k, v in arrays.items()}
        rows["row_weight"] = np.ones((batch,), np.float32)
        batches.append(partitioning.make_global_batch(rows, mesh))
    state, m = fns.train(state, batches[0])
    jax.block_until_ready(m)
    times = []
    for i in range(steps + 1):
        t = time.perf_counter()
        state, m = fns.train(state, batches[i % 2])
        jax.block_until_ready(m)
        times.append(time.perf_counter() - t)
    train_s = float(np.median(times[1:]))
    eval_arrays = {k: v for k, v in arrays.items() if k != "labels"}
    n_eval = len(eval_arrays["input_ids"]) - 3  # not a batch multiple: the padded path is timed too
    eval_arrays = {k: v[:n_eval] for k, v in eval_arrays.items()}
    predict_rows(fns.predict, state.params, eval_arrays, task.predict_spec, mesh, batch)  # compile
    t = time.perf_counter()
    predict_rows(fns.predict, state.params, eval_arrays, task.predict_spec, mesh, batch)
    eval_s = time.perf_counter() - t
    return {"benchmark": "finetune", "config": name, "input": kind, "seq_len": SEQ, "batch": batch,
            "train_examples_per_s": round(batch / train_s, 2), "eval_examples_per_s": round(n_eval / eval_s, 2),
            "eval_examples": n_eval, **machine()}


def sync_check(steps: int, vocab_file: str, vocab_size: int, rounds: int = 3) -> dict:
    """Per-step host read of the loss vs none, side by side (best of ``rounds`` each)."""
    from bert_jax import partitioning
    cfg, task, mesh, state, fns, batch = setup("small", vocab_size)
    arrays = corpus_inputs("sst2_like", batch * 2, vocab_file)
    arrays["row_weight"] = np.ones((len(arrays["labels"]),), np.float32)
    batches = [partitioning.make_global_batch({k: v[i * batch:(i + 1) * batch] for k, v in arrays.items()}, mesh)
               for i in range(2)]
    state, m = fns.train(state, batches[0])
    jax.block_until_ready(m)
    best = {"sync_every_step": float("inf"), "sync_at_log_steps": float("inf")}
    for _ in range(rounds):
        for mode in best:
            t = time.perf_counter()
            pending = []
            for i in range(steps):
                state, m = fns.train(state, batches[i % 2])
                if mode == "sync_every_step":
                    float(m["loss"])
                else:
                    pending.append(m)
            jax.device_get(pending)
            jax.block_until_ready(state.params)
            best[mode] = min(best[mode], time.perf_counter() - t)
    return {"benchmark": "finetune_host_sync", "config": "small", "steps": steps,
            **{f"{k}_steps_per_s": round(steps / v, 3) for k, v in best.items()},
            "gain": round(best["sync_every_step"] / best["sync_at_log_steps"], 3), **machine()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=["small", "base"], choices=sorted(CONFIGS))
    parser.add_argument("--inputs", nargs="+", default=["sst2_like", "mnli_like"], choices=["sst2_like", "mnli_like"])
    parser.add_argument("--steps", type=int, default=0, help="timed train steps (default: 8 small, 3 base)")
    parser.add_argument("--sync-check", action="store_true", help="only the per-step host sync comparison")
    parser.add_argument("--sync-steps", type=int, default=30)
    args = parser.parse_args(argv)
    from bert_jax.vocab import train_wordpiece
    with tempfile.TemporaryDirectory() as tmp:
        train_wordpiece(sorted(glob.glob(os.path.join(ROOT, "data", "corpus", "*.txt"))), 8000, lowercase=True,
                        output_dir=tmp)
        vocab_file = os.path.join(tmp, "vocab.txt")
        vocab_size = sum(1 for _ in open(vocab_file, encoding="utf-8"))
        if args.sync_check:
            print(json.dumps(sync_check(args.sync_steps, vocab_file, vocab_size)), flush=True)
            return 0
        for name in args.configs:
            for kind in args.inputs:
                steps = args.steps or (8 if name == "small" else 3)
                print(json.dumps(bench(name, kind, steps, vocab_file, vocab_size)), flush=True)
        print(json.dumps(sync_check(args.sync_steps, vocab_file, vocab_size)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
