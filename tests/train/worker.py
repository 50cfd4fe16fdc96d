"""Subprocess helper for multi-device tests: one training step of a tiny BERT on a
given mesh, parameters after the step written to an ``.npz``.

JAX fixes its device count at import, so tests that need 8 simulated CPU
devices (or 2 processes x 4) run this file with ``XLA_FLAGS`` set:

  python tests/train/worker.py step --meshes 1,1,1 8,1,1 --out DIR
  python tests/train/worker.py step --meshes 8,1,1 --out DIR --process-id 0 --num-processes 2 --port P
  python tests/train/worker.py resave --ckpt DIR ...   (see ``main``)
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

SEQ, PRED, BATCH, VOCAB = 32, 5, 16, 97


def tiny_model_config():
    from bert_jax.config import BertConfig
    return BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.1,
                      attention_probs_dropout_prob=0.1)


def synthetic_batch(seed: int = 0, batch: int = BATCH) -> dict[str, np.ndarray]:
    """Random token ids with the loader's layout (a numerical test input, not text)."""
    rng = np.random.default_rng(seed)
    mask = np.ones((batch, SEQ), np.int32)
    mask[:, SEQ - 4:] = 0  # some padding so attention masking is exercised
    return {
        "input_ids": rng.integers(5, VOCAB, (batch, SEQ)).astype(np.int32) * mask,
        "attention_mask": mask,
        "token_type_ids": (np.arange(SEQ)[None, :] >= SEQ // 2).astype(np.int32).repeat(batch, 0),
        "masked_lm_positions": np.sort(rng.choice(SEQ - 4, (batch, PRED)), axis=1).astype(np.int32),
        "masked_lm_ids": rng.integers(5, VOCAB, (batch, PRED)).astype(np.int32),
        "masked_lm_weights": (rng.random((batch, PRED)) < 0.9).astype(np.float32),
        "next_sentence_label": rng.integers(0, 2, (batch,)).astype(np.int32),
    }


def build(mesh_shape, num_microbatches=1, optim_name="lamb", devices=None):
    """(task, tx, schedule, mesh, state, shardings, step_fn) for the tiny model."""
    import jax
    from bert_jax import optim, partitioning, train
    from bert_jax.modeling import BertForPreTrainingModule
    from bert_jax.tasks import PretrainingTask
    task = PretrainingTask(BertForPreTrainingModule(tiny_model_config()), SEQ, PRED)
    ocfg = dict(name=optim_name, learning_rate=1e-3, total_steps=100, warmup_steps=0, weight_decay=0.01,
                clip_grad_norm=1.0)
    tx, schedule = optim.make_optimizer(ocfg), optim.make_schedule(ocfg)
    mesh = partitioning.make_mesh(mesh_shape, devices)
    state, shardings, _ = train.create_train_state(
        task, tx, mesh, partitioning.DEFAULT_RULES, jax.random.PRNGKey(0), jax.random.PRNGKey(1))
    step_fn, _ = train.jit_steps(task, tx, schedule, mesh, shardings, num_microbatches)
    return task, tx, schedule, mesh, state, shardings, step_fn


def host_params(state):
    import jax
    from jax.experimental import multihost_utils
    params = state.params
    if jax.process_count() > 1:
        params = multihost_utils.process_allgather(params, tiled=True)
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    return {"/".join(str(getattr(k, "key", k)) for k in path): np.asarray(v) for path, v in flat}


def run_step(args):
    import jax
    from bert_jax import partitioning
    results = {}
    batch = synthetic_batch()
    for text in args.meshes:
        shape = tuple(int(s) for s in text.split(","))
        n = int(np.prod(shape))
        devices = jax.devices()[:n] if jax.process_count() == 1 else jax.devices()
        _, _, _, mesh, state, _, step_fn = build(shape, devices=devices)
        rows = BATCH // jax.process_count()
        local = {k: v[jax.process_index() * rows:(jax.process_index() + 1) * rows] for k, v in batch.items()}
        state, metrics = step_fn(state, partitioning.make_global_batch(local, mesh))
        params = host_params(state)
        if jax.process_index() == 0:
            np.savez(os.path.join(args.out, f"params_{text.replace(',', 'x')}.npz"), **params)
            results[text] = {"loss": float(metrics["loss"]), "grad_norm": float(metrics["grad_norm"]),
                             "devices": n, "processes": jax.process_count()}
    if jax.process_index() == 0:
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump(results, f)


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["step"])
    parser.add_argument("--meshes", nargs="+", default=["1,1,1"])
    parser.add_argument("--out", required=True)
    parser.add_argument("--process-id", type=int, default=-1)
    parser.add_argument("--num-processes", type=int, default=1)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    import jax
    if args.num_processes > 1:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address=f"localhost:{args.port}",
                                   num_processes=args.num_processes, process_id=args.process_id)
    run_step(args)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    sys.exit(main())
