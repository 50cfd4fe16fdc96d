"""Reference: Hugging Face's Flax BERT (transformers 4.x ``FlaxBertForPreTraining``)
train step with optax AdamW, same configs and batches as ``train_step.py``.

Runs in its own environment (transformers 4.x needs flax<0.11 and an older jax):

  bash benchmarks/setup_hf_flax_env.sh                    # creates /tmp/bert_jax_hf_flax_venv
  /tmp/bert_jax_hf_flax_venv/bin/python benchmarks/hf_flax_train_step.py --configs small base

The step follows Hugging Face's pretraining example: the MLM head produces
logits for every position (``[batch, length, vocab]``), the loss keeps the
masked ones. Imports nothing from bert_jax. One JSON line per result.
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
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import machine  # noqa: E402

CONFIGS = {"small": (256, 4, 4, 1024, 32), "base": (768, 12, 12, 3072, 8)}
SEQ, PRED, VOCAB = 128, 20, 30522


def own_flops(hidden, layers, inter, batch):
    """Training FLOPs of this implementation (full-vocabulary logits at all positions)."""
    s = SEQ
    layer = 8 * s * hidden ** 2 + 4 * s * hidden * inter + 4 * s * s * hidden
    head = 2 * s * hidden ** 2 + 2 * s * hidden * VOCAB
    return 3.0 * batch * (layers * layer + head + 2 * hidden ** 2 + 4 * hidden)


def main(argv=None) -> int:
    from transformers import BertConfig, FlaxBertForPreTraining
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=["small", "base"], choices=sorted(CONFIGS))
    parser.add_argument("--steps", type=int, default=0)
    parser.add_argument("--peak-gflops", type=float, default=0.0, help="fp32 matmul peak for MFU in GFLOP/s (0 = measure as train_step.py does)")
    args = parser.parse_args(argv)
    peak = args.peak_gflops * 1e9
    if not peak:  # the same peak as train_step.py (plain jax, no bert_jax import)
        from train_step import measure_matmul_peak
        peak = measure_matmul_peak(args.configs)[0]
    for name in args.configs:
        hidden, layers, heads, inter, batch = CONFIGS[name]
        config = BertConfig(vocab_size=VOCAB, hidden_size=hidden, num_hidden_layers=layers,
                            num_attention_heads=heads, intermediate_size=inter)
        model = FlaxBertForPreTraining(config, seed=0, dtype=jnp.float32)
        tx = optax.adamw(optax.linear_schedule(0.0, 1e-4, 100), b1=0.9, b2=0.999, eps=1e-6, weight_decay=0.01)
        params = model.params
        opt_state = tx.init(params)
        rng = np.random.default_rng(0)

        def make_batch():
            pos = np.sort(rng.choice(SEQ, (batch, PRED)), 1)
            labels = np.full((batch, SEQ), -100, np.int32)
            np.put_along_axis(labels, pos, rng.integers(1000, VOCAB, (batch, PRED)), 1)
            return {"input_ids": rng.integers(1000, VOCAB, (batch, SEQ)).astype(np.int32),
                    "attention_mask": np.ones((batch, SEQ), np.int32),
                    "token_type_ids": (np.arange(SEQ) >= SEQ // 2).astype(np.int32)[None].repeat(batch, 0),
                    "labels": labels, "next_sentence_label": rng.integers(0, 2, (batch,)).astype(np.int32)}

        def train_step(params, opt_state, batch, dropout_rng):
            def loss_fn(p):
                out = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], params=p,
                            dropout_rng=dropout_rng, train=True)
                logits = out.prediction_logits  # [batch, length, vocab]
                labels = batch["labels"]
                w = (labels >= 0).astype(jnp.float32)
                xent = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.maximum(labels, 0))
                mlm = jnp.sum(xent * w) / jnp.sum(w)
                nsp = optax.softmax_cross_entropy_with_integer_labels(
                    out.seq_relationship_logits, batch["next_sentence_label"]).mean()
                return mlm + nsp
            loss, grads = jax.value_and_grad(loss_fn)(params)
            updates, opt_state = tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss

        step = jax.jit(train_step, donate_argnums=(0, 1))
        batches = [make_batch() for _ in range(2)]
        key = jax.random.PRNGKey(0)
        t0 = time.perf_counter()
        params, opt_state, loss = step(params, opt_state, batches[0], key)
        loss.block_until_ready()
        compile_s = time.perf_counter() - t0
        params, opt_state, loss = step(params, opt_state, batches[1], key)
        loss.block_until_ready()
        steps = args.steps or (10 if name == "small" else 4)
        times = []
        for i in range(steps):
            t = time.perf_counter()
            params, opt_state, loss = step(params, opt_state, batches[i % 2], jax.random.fold_in(key, i))
            loss.block_until_ready()
            times.append(time.perf_counter() - t)
        step_s = float(np.median(times))
        f_own = own_flops(hidden, layers, inter, batch)
        print(json.dumps({
            "benchmark": "train_step", "impl": "hf_flax", "config": name, "dtype": "float32", "batch": batch,
            "seq_len": SEQ, "masked_positions": PRED, "steps": steps, "step_time_s": round(step_s, 4),
            "seq_per_s": round(batch / step_s, 3), "tokens_per_s": round(batch * SEQ / step_s, 1),
            "own_tflops_per_step": round(f_own / 1e12, 4), "mfu_own_flops_vs_fp32_matmul": round(f_own / step_s / peak, 4),
            "fp32_matmul_peak_gflops": round(peak / 1e9, 1), "compile_s": round(compile_s, 1),
            "loss": float(loss), "versions": {"jax": jax.__version__, "transformers": __import__("transformers").__version__,
                                               "flax": __import__("flax").__version__}, **machine()}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
