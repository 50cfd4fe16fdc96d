"""Sequence packing: padding fraction and real (non-pad) tokens/s of the train step, packed vs unpacked.

Shards are built from the bundled corpus (``data/corpus``, dupe factor 1) at
128 and 512 tokens. For each length: the padding fraction of one full epoch
unpacked and packed, then the train step of a small model (hidden 256, 4
layers, float32, dropout as in BERT) timed on the loaders' own batches,
packed and unpacked in the same run, alternating. Real tokens/s counts only
positions with ``attention_mask`` 1.

  python benchmarks/packing.py                       # seq 128 and 512
  python benchmarks/packing.py --seqs 512 --steps 6

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

CORPUS = sorted(glob.glob(os.path.join(ROOT, "data", "corpus", "*.txt")))
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"[unused{i}]" for i in range(5)]
# seq -> (max_predictions_per_seq, rows per batch)
LAYOUT = {128: (20, 32), 512: (76, 8)}


def build_shards(tmp: str, seq: int) -> str:
    import tokenizers
    from data_pipeline import build
    vocab = os.path.join(tmp, "vocab.txt")
    if not os.path.exists(vocab):
        tok = tokenizers.BertWordPieceTokenizer(lowercase=True)
        tok.train(CORPUS, vocab_size=8000, special_tokens=SPECIALS, show_progress=False)
        tok.save_model(tmp)
    out = os.path.join(tmp, f"seq{seq}")
    build.build(build.BuildOptions(inputs=tuple(CORPUS), vocab_file=vocab, max_seq_length=seq,
                                   max_predictions_per_seq=LAYOUT[seq][0], dupe_factor=1, num_shards=2, seed=1,
                                   dynamic_masking=True), out)
    return out


def epoch(directory: str, rows: int, packing: bool) -> list[dict]:
    from data_pipeline.loader import PretrainingLoader
    with PretrainingLoader(directory, rows, seed=0, num_epochs=1, prefetch=0, packing=packing) as loader:
        return list(loader)


def padding(batches: list[dict]) -> float:
    return 1.0 - float(np.mean([b["attention_mask"].mean() for b in batches]))


def make_step(seq: int, pred: int, vocab_size: int, packed: dict | None):
    import jax
    from bert_jax import optim, partitioning, train
    from bert_jax.config import BertConfig
    from bert_jax.modeling import BertForPreTrainingModule
    from bert_jax.tasks import PretrainingTask

    cfg = BertConfig(vocab_size=vocab_size, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                     intermediate_size=1024, max_position_embeddings=512)
    module = BertForPreTrainingModule(cfg)
    if packed is None:
        task = PretrainingTask(module, seq, pred)
    else:
        task = PretrainingTask(module, seq, packed["max_predictions_per_row"], packing=True,
                               max_instances_per_row=packed["max_instances_per_row"])
    ocfg = dict(name="adamw", learning_rate=1e-4, total_steps=10_000, warmup_steps=100, weight_decay=0.01)
    tx, schedule = optim.make_optimizer(ocfg), optim.make_schedule(ocfg)
    mesh = partitioning.make_mesh((1, 1, 1), jax.devices()[:1])
    state, shardings, _ = train.create_train_state(task, tx, mesh, partitioning.DEFAULT_RULES,
                                                   jax.random.PRNGKey(0), jax.random.PRNGKey(1))
    step_fn, _ = train.jit_steps(task, tx, schedule, mesh, shardings, 1)
    return task, state, step_fn, mesh


def bench_seq(tmp: str, seq: int, steps: int, machine: dict) -> list[dict]:
    import jax
    from bert_jax import partitioning
    from data_pipeline.loader import PretrainingLoader

    pred, rows = LAYOUT[seq]
    directory = build_shards(tmp, seq)
    unpacked, packed = epoch(directory, rows, False), epoch(directory, rows, True)
    probe = PretrainingLoader(directory, rows, packing=True, prefetch=0)
    layout = {"max_instances_per_row": probe.packing.max_instances_per_row,
              "max_predictions_per_row": probe.packing.max_predictions_per_row}
    vocab_size = probe.manifest["vocab_size"]
    base = {"benchmark": "packing", "seq_len": seq, "rows_per_batch": rows, **machine}
    out = [{**base, "result": "padding", "examples": probe.num_examples,
            "padding_fraction_unpacked": round(padding(unpacked), 4),
            "padding_fraction_packed": round(padding(packed), 4),
            "steps_per_epoch_unpacked": len(unpacked), "steps_per_epoch_packed": len(packed),
            "instances_per_row_packed": round(float(np.mean([b["next_sentence_weight"].sum(1).mean()
                                                             for b in packed])), 3), **layout}]
    probe.close()

    runs = {}
    for name, batches, packing in (("unpacked", unpacked, None), ("packed", packed, layout)):
        task, state, step_fn, mesh = make_step(seq, pred, vocab_size, packing)
        chosen = batches[: steps + 1]
        device = [partitioning.make_global_batch({k: b[k] for k in task.batch_spec}, mesh) for b in chosen]
        t0 = time.perf_counter()
        state, m = step_fn(state, device[0])  # compile + first step
        jax.block_until_ready(m)
        runs[name] = {"state": state, "step": step_fn, "batches": device[1:], "compile_s": time.perf_counter() - t0,
                      "real_tokens": [int(b["attention_mask"].sum()) for b in chosen[1:]], "times": []}
    # Alternate packed and unpacked steps so machine load affects both alike.
    for i in range(steps):
        for name, run in runs.items():
            t = time.perf_counter()
            run["state"], m = run["step"](run["state"], run["batches"][i])
            jax.block_until_ready(m)
            run["times"].append(time.perf_counter() - t)
    rates = {}
    for name, run in runs.items():
        total_s = float(np.sum(run["times"]))
        rates[name] = sum(run["real_tokens"]) / total_s
        out.append({**base, "result": "train_step", "layout": name, "steps": steps,
                    "median_step_s": round(float(np.median(run["times"])), 4),
                    "real_tokens_per_step": round(float(np.mean(run["real_tokens"])), 1),
                    "real_tokens_per_s": round(rates[name], 1), "compile_s": round(run["compile_s"], 1),
                    "model": "hidden 256, 4 layers, 4 heads, intermediate 1024, float32"})
    out.append({**base, "result": "speedup", "real_tokens_per_s_packed_over_unpacked":
                round(rates["packed"] / rates["unpacked"], 3)})
    return out


def main(argv=None) -> int:
    from machine import machine
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seqs", nargs="+", type=int, default=[128, 512], choices=sorted(LAYOUT))
    parser.add_argument("--steps", type=int, default=8, help="timed steps per layout")
    args = parser.parse_args(argv)
    info = machine()
    with tempfile.TemporaryDirectory() as tmp:
        for seq in args.seqs:
            for line in bench_seq(tmp, seq, args.steps, info):
                print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
