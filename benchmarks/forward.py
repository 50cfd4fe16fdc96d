"""Inference throughput of the encoder: one JSON line per model size.

    python benchmarks/forward.py                      # tiny, small, base; batch 8, seq 128
    python benchmarks/forward.py --configs base --batch-size 16 --dtype bfloat16
    python benchmarks/forward.py --configs base --scan-layers   # compare compile_s

Sizes: tiny = hidden 32 / 2 layers / 4 heads / intermediate 37; small = 256 / 4 / 4 / 1024;
base = 768 / 12 / 12 / 3072 (bert-base). Each line reports sequences per second of a
jitted ``BertModel`` forward pass (no dropout, fused attention path) with
compilation and one warm-up call excluded, timed with ``block_until_ready``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from bert_jax.config import BertConfig
from bert_jax.modeling import BertModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import machine  # noqa: E402

SIZES = {
    "tiny": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, vocab_size=99),
    "small": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
}


def run(size: str, batch_size: int, seq_len: int, dtype: str, min_seconds: float, min_iters: int,
        scan_layers: bool = False) -> dict:
    config = BertConfig(**SIZES[size], max_position_embeddings=max(512, seq_len))
    model = BertModel(config, seed=0, dtype=jnp.dtype(dtype), scan_layers=scan_layers)
    rng = np.random.default_rng(0)
    ids = jnp.asarray(rng.integers(1, config.vocab_size, size=(batch_size, seq_len)), jnp.int32)
    mask = jnp.ones_like(ids)
    forward = jax.jit(lambda p, i, m: model.module.apply({"params": p}, i, m).last_hidden_state)

    start = time.perf_counter()
    forward(model.params, ids, mask).block_until_ready()  # compile + first run
    compile_s = time.perf_counter() - start
    forward(model.params, ids, mask).block_until_ready()  # warm-up
    times = []
    while len(times) < min_iters or sum(times) < min_seconds:
        start = time.perf_counter()
        forward(model.params, ids, mask).block_until_ready()
        times.append(time.perf_counter() - start)
    median = float(np.median(times))
    return {
        "benchmark": "forward", "config": size, "params": model.num_parameters(), "batch_size": batch_size,
        "seq_len": seq_len, "dtype": dtype, "scan_layers": scan_layers, "iters": len(times), "ms_per_batch_median": round(median * 1e3, 2),
        "sequences_per_s": round(batch_size / median, 2), "compile_s": round(compile_s, 2),
        "num_devices_used": 1,  # the device kind comes with machine()
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="tiny,small,base", help="comma-separated subset of tiny,small,base")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--min-seconds", type=float, default=5.0, help="time at least this long per config")
    parser.add_argument("--min-iters", type=int, default=5)
    parser.add_argument("--scan-layers", action="store_true", help="scanned layer stack (faster compile)")
    args = parser.parse_args(argv)
    for size in args.configs.split(","):
        if size not in SIZES:
            parser.error(f"unknown config {size!r}; choose from {', '.join(SIZES)}")
        print(json.dumps(run(size, args.batch_size, args.seq_len, args.dtype, args.min_seconds, args.min_iters,
                             args.scan_layers) | machine()),
              flush=True)


if __name__ == "__main__":
    main()
