"""Cost of one train step's dropout masks: ``flax.linen.Dropout`` beside ``bert_jax``'s Dropout.

The masks of one step of a given shape (per layer: the attention probabilities
``[batch, heads, seq, seq]`` and three hidden-state dropouts ``[batch, seq, hidden]``, plus
the embeddings'), drawn and applied under ``jax.jit``, timed over ``--draws`` calls with fresh
keys, the two implementations alternated round by round (best of ``--rounds``).

  python benchmarks/dropout.py                                  # the tiny recipe's shapes
  python benchmarks/dropout.py --batch 32 --seq 128 --hidden 256 --heads 4 --layers 4

One JSON line per implementation, then the ratio; each with the CPU model.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import flax.linen as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import machine  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bert_jax.modeling.layers import Dropout  # noqa: E402


def step_masks(layer_cls, shapes, rate):
    def apply(key, xs):
        keys = jax.random.split(key, len(xs))
        return [layer_cls(rate).apply({}, x, deterministic=False, rngs={"dropout": k}) for k, x in zip(keys, xs)]
    return jax.jit(apply)


def timed(fn, xs, draws):
    key = jax.random.key(0)
    jax.block_until_ready(fn(key, xs))  # compile
    start = time.perf_counter()
    for i in range(draws):
        jax.block_until_ready(fn(jax.random.fold_in(key, i), xs))
    return (time.perf_counter() - start) / draws


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=0.1)
    parser.add_argument("--draws", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    b, s, h = args.batch, args.seq, args.hidden
    shapes = [(b, s, h)] + args.layers * [(b, args.heads, s, s), (b, s, h), (b, s, h)]
    xs = [jnp.ones(shape, jnp.float32) for shape in shapes]
    impls = {"flax.linen.Dropout": nn.Dropout, "bert_jax Dropout": Dropout}
    fns = {name: step_masks(cls, shapes, args.rate) for name, cls in impls.items()}
    best = {name: float("inf") for name in impls}
    for _ in range(args.rounds):
        for name, fn in fns.items():
            best[name] = min(best[name], timed(fn, xs, args.draws))
    info = machine()
    shape = {"batch": b, "seq": s, "hidden": h, "heads": args.heads, "layers": args.layers, "rate": args.rate,
             "masks": len(shapes), "elements": sum(int(jnp.size(x)) for x in xs)}
    for name, seconds in best.items():
        print(json.dumps({"benchmark": "dropout_masks", "impl": name, "ms_per_step": round(1000 * seconds, 3),
                          **shape, **info}))
    print(json.dumps({"benchmark": "dropout_masks", "ratio_flax_over_bert_jax":
                      round(best["flax.linen.Dropout"] / best["bert_jax Dropout"], 3), **shape, **info}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
