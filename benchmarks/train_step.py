"""Train-step throughput of bert-jax pretraining: sequences/s, tokens/s and MFU.

MFU is measured against the fp32 matmul peak timed in the same run on the same
machine: the best rate over square matmuls (512 to 4096) and the model's own
dense-layer products (so the figure means "fraction of what this machine's
matmul unit actually delivers"; a single 4096^2 matmul runs below the peak on
some CPUs, which would inflate MFU), using the model FLOP count of
``bert_jax.flops`` (MLM logits only at the masked positions).

  python benchmarks/train_step.py                      # small and base, fp32 and bf16
  python benchmarks/train_step.py --configs small --dtypes float32 --steps 20

One JSON line per result on stdout.
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import machine  # noqa: E402

CONFIGS = {
    # name: (hidden, layers, heads, intermediate, batch)
    "small": (256, 4, 4, 1024, 32),
    "base": (768, 12, 12, 3072, 8),
}
SEQ, PRED, VOCAB = 128, 20, 30522


def matmul_rate(m: int, k: int, n: int, dtype: str = "float32", repeats: int = 5) -> float:
    """Best FLOP/s of an ``[m, k] @ [k, n]`` matmul on ``dtype`` inputs, accumulated in float32
    (the model's bf16 mode multiplies this way)."""
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.standard_normal((m, k)), dtype)
    b = jnp.asarray(rng.standard_normal((k, n)), dtype)
    f = jax.jit(lambda x, y: jax.lax.dot(x, y, preferred_element_type=jnp.float32))
    f(a, b).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        f(a, b).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return 2 * m * k * n / best


def peak_shapes(configs) -> list[tuple[int, int, int]]:
    """Square matmuls and each config's dense-layer products ([tokens, hidden] x [hidden, inter]
    and back), the shapes whose best rate is taken as the machine's peak."""
    shapes = [(n, n, n) for n in (512, 1024, 2048, 4096)]
    for name in configs:
        hidden, _, _, inter, batch = CONFIGS[name]
        shapes += [(batch * SEQ, hidden, inter), (batch * SEQ, inter, hidden)]
    return list(dict.fromkeys(shapes))


def measure_matmul_peak(configs=("small", "base"), dtype: str = "float32") -> tuple[float, dict[str, float]]:
    """``(peak FLOP/s, {"MxKxN": GFLOP/s})``: the best rate over ``peak_shapes(configs)``."""
    rates = {f"{m}x{k}x{n}": matmul_rate(m, k, n, dtype) for m, k, n in peak_shapes(configs)}
    return max(rates.values()), {k: round(v / 1e9, 1) for k, v in rates.items()}


def synthetic_batch(batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random ids with the loader's layout (throughput does not depend on the text)."""
    return {
        "input_ids": rng.integers(1000, VOCAB, (batch, SEQ)).astype(np.int32),
        "attention_mask": np.ones((batch, SEQ), np.int32),
        "token_type_ids": (np.arange(SEQ) >= SEQ // 2).astype(np.int32)[None].repeat(batch, 0),
        "masked_lm_positions": np.sort(rng.choice(SEQ, (batch, PRED)), 1).astype(np.int32),
        "masked_lm_ids": rng.integers(1000, VOCAB, (batch, PRED)).astype(np.int32),
        "masked_lm_weights": np.ones((batch, PRED), np.float32),
        "next_sentence_label": rng.integers(0, 2, (batch,)).astype(np.int32),
    }


def bench(name: str, dtype: str, steps: int, peak: float) -> dict:
    from bert_jax import flops, optim, partitioning, train
    from bert_jax.config import BertConfig
    from bert_jax.modeling import BertForPreTrainingModule
    from bert_jax.tasks import PretrainingTask

    hidden, layers, heads, inter, batch = CONFIGS[name]
    cfg = BertConfig(vocab_size=VOCAB, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=inter)
    module = BertForPreTrainingModule(cfg, dtype=getattr(jnp, dtype), param_dtype=jnp.float32)
    task = PretrainingTask(module, SEQ, PRED)
    ocfg = dict(name="adamw", learning_rate=1e-4, total_steps=10_000, warmup_steps=100, weight_decay=0.01)
    tx, schedule = optim.make_optimizer(ocfg), optim.make_schedule(ocfg)
    mesh = partitioning.make_mesh((1, 1, 1), jax.devices()[:1])
    state, shardings, _ = train.create_train_state(task, tx, mesh, partitioning.DEFAULT_RULES,
                                                   jax.random.PRNGKey(0), jax.random.PRNGKey(1))
    step_fn, _ = train.jit_steps(task, tx, schedule, mesh, shardings, 1)
    rng = np.random.default_rng(0)
    batches = [partitioning.make_global_batch(synthetic_batch(batch, rng), mesh) for _ in range(2)]
    t0 = time.perf_counter()
    state, m = step_fn(state, batches[0])
    jax.block_until_ready(m)
    compile_s = time.perf_counter() - t0
    state, m = step_fn(state, batches[1])  # one more warm step
    jax.block_until_ready(m)
    times = []
    for i in range(steps):
        t = time.perf_counter()
        state, m = step_fn(state, batches[i % 2])
        jax.block_until_ready(m)
        times.append(time.perf_counter() - t)
    step_s = float(np.median(times))
    f = flops.bert_pretraining_flops(cfg, SEQ, PRED) * batch
    return {"benchmark": "train_step", "impl": "bert_jax", "config": name, "dtype": dtype, "batch": batch,
            "seq_len": SEQ, "masked_positions": PRED, "steps": steps, "step_time_s": round(step_s, 4),
            "seq_per_s": round(batch / step_s, 3), "tokens_per_s": round(batch * SEQ / step_s, 1),
            "model_tflops_per_step": round(f / 1e12, 4), "mfu_vs_fp32_matmul": round(f / step_s / peak, 4),
            "fp32_matmul_peak_gflops": round(peak / 1e9, 1), "compile_s": round(compile_s, 1),
            "loss": float(m["loss"]), **machine()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=["small", "base"], choices=sorted(CONFIGS))
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"])
    parser.add_argument("--steps", type=int, default=0, help="timed steps (default: 10 small, 4 base)")
    args = parser.parse_args(argv)
    peak, by_shape = measure_matmul_peak(args.configs)
    print(json.dumps({"benchmark": "fp32_matmul_peak", "gflops": round(peak / 1e9, 1),
                      "gflops_by_shape": by_shape, **machine()}), flush=True)
    if "bfloat16" in args.dtypes:  # what the hardware offers bf16, beside the step figures
        bf16, by_shape = measure_matmul_peak(args.configs, dtype="bfloat16")
        print(json.dumps({"benchmark": "bf16_matmul_peak", "gflops": round(bf16 / 1e9, 1),
                          "ratio_over_fp32": round(bf16 / peak, 2), "gflops_by_shape": by_shape,
                          **machine()}), flush=True)
    for name in args.configs:
        for dtype in args.dtypes:
            steps = args.steps or (10 if name == "small" else 4)
            print(json.dumps(bench(name, dtype, steps, peak)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
