"""Subprocess helper for multi-device tests: one training step of a tiny BERT on a
given mesh; the parameters after the step, the raw gradients of the step and a
single-device reference gradient (taken outside ``train_step``) written to ``.npz``
files, the loss, ``grad_norm`` and the shardings of the state to ``results.json``.

JAX fixes its device count at import, so tests that need 8 simulated CPU
devices (or 2 processes x 4) run this file with ``XLA_FLAGS`` set:

  python tests/train/worker.py step --meshes 1,1,1 8,1,1 --out DIR
  python tests/train/worker.py step --meshes 8,1,1 --out DIR --process-id 0 --num-processes 2 --port P
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


def store_gradients():
    """An optax transformation that passes updates through and keeps the last ones in
    its state, so a chain ``(store_gradients(), optimizer)`` exposes the raw gradient of
    a step (clipping and Adam's normalised first step would hide its scale)."""
    import jax
    import jax.numpy as jnp
    import optax
    return optax.GradientTransformation(
        init=lambda p: jax.tree_util.tree_map(jnp.zeros_like, p),
        update=lambda g, s, p=None: (g, g))


def build(mesh_shape, num_microbatches=1, optim_name="lamb", devices=None):
    """(task, tx, schedule, mesh, state, shardings, step_fn) for the tiny model; ``tx`` is
    ``chain(store_gradients(), optimizer)`` (``opt_state[0]`` = the last raw gradient)."""
    import jax
    import optax
    from bert_jax import optim, partitioning, train
    from bert_jax.modeling import BertForPreTrainingModule
    from bert_jax.tasks import PretrainingTask
    task = PretrainingTask(BertForPreTrainingModule(tiny_model_config()), SEQ, PRED)
    ocfg = dict(name=optim_name, learning_rate=1e-3, total_steps=100, warmup_steps=0, weight_decay=0.01,
                clip_grad_norm=1.0)
    tx, schedule = optax.chain(store_gradients(), optim.make_optimizer(ocfg)), optim.make_schedule(ocfg)
    mesh = partitioning.make_mesh(mesh_shape, devices)
    state, shardings, _ = train.create_train_state(
        task, tx, mesh, partitioning.DEFAULT_RULES, jax.random.PRNGKey(0), jax.random.PRNGKey(1))
    step_fn, _ = train.jit_steps(task, tx, schedule, mesh, shardings, num_microbatches)
    return task, tx, schedule, mesh, state, shardings, step_fn


def reference_gradients(batch):
    """Loss and gradient of step 0 on one device, straight from ``task.loss`` (no
    ``train_step``, no mesh): ``(loss, {path: gradient})``. Same parameters and dropout
    key as ``build`` (``fold_in(PRNGKey(1), 0)``)."""
    import jax
    import jax.numpy as jnp
    from bert_jax import partitioning
    from bert_jax.modeling import BertForPreTrainingModule
    from bert_jax.tasks import PretrainingTask
    task = PretrainingTask(BertForPreTrainingModule(tiny_model_config()), SEQ, PRED)
    params = partitioning.unbox(jax.jit(task.init_params)(jax.random.PRNGKey(0)))
    batch = {k: jnp.asarray(v) for k, v in batch.items()}
    key = jax.random.fold_in(jax.random.PRNGKey(1), 0)
    (loss, _), grads = jax.jit(jax.value_and_grad(
        lambda p: task.loss(p, batch, key, task.denominators(batch), deterministic=False), has_aux=True))(params)
    return float(loss), flat(grads)


def path_name(path) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def flat(tree) -> dict[str, np.ndarray]:
    return {path_name(p): np.asarray(v) for p, v in jax_flatten(tree)}


def jax_flatten(tree):
    import jax
    return jax.tree_util.tree_flatten_with_path(tree)[0]


def spec_of(array) -> list:
    """The array's ``PartitionSpec`` as a JSON list, one entry per dimension."""
    spec = list(array.sharding.spec) + [None] * (array.ndim - len(array.sharding.spec))
    return [list(a) if isinstance(a, tuple) else a for a in spec]


def state_specs(state) -> dict:
    """``params``: path -> spec; ``moments``: param path -> specs of the Adam ``mu``/``nu``
    leaves mirroring it (matched by the end of their tree path); ``shard_shapes``: path ->
    shape of one device's shard."""
    params = {path_name(p): x for p, x in jax_flatten(state.params)}
    moments = {k: [] for k in params}
    for p, x in jax_flatten(state.opt_state):
        name = path_name(p)
        if not any(getattr(k, "name", None) in ("mu", "nu") for k in p):
            continue
        for k in params:
            if name.endswith("/" + k) and x.shape == params[k].shape:
                moments[k].append(spec_of(x))
    return {"params": {k: spec_of(x) for k, x in params.items()}, "moments": moments,
            "shard_shapes": {k: list(x.sharding.shard_shape(x.shape)) for k, x in params.items()}}


def host_tree(tree) -> dict[str, np.ndarray]:
    """Path -> numpy array of a (possibly multi-process sharded) tree."""
    import jax
    from jax.experimental import multihost_utils
    if jax.process_count() > 1:
        tree = multihost_utils.process_allgather(tree, tiled=True)
    return flat(tree)


def run_step(args):
    import jax
    from bert_jax import partitioning
    results = {}
    batch = synthetic_batch()
    if jax.process_count() == 1:
        loss, grads = reference_gradients(batch)
        np.savez(os.path.join(args.out, "grads_reference.npz"), **grads)
        norm = float(np.sqrt(sum(np.sum(np.square(g, dtype=np.float64)) for g in grads.values())))
        results["reference"] = {"loss": loss, "grad_norm": norm}
    for text in args.meshes:
        shape = tuple(int(s) for s in text.split(","))
        n = int(np.prod(shape))
        devices = jax.devices()[:n] if jax.process_count() == 1 else jax.devices()
        _, _, _, mesh, state, _, step_fn = build(shape, devices=devices)
        rows = BATCH // jax.process_count()
        local = {k: v[jax.process_index() * rows:(jax.process_index() + 1) * rows] for k, v in batch.items()}
        state, metrics = step_fn(state, partitioning.make_global_batch(local, mesh))
        params, grads = host_tree(state.params), host_tree(state.opt_state[0])
        specs = state_specs(state)
        if jax.process_index() == 0:
            name = text.replace(",", "x")
            np.savez(os.path.join(args.out, f"params_{name}.npz"), **params)
            np.savez(os.path.join(args.out, f"grads_{name}.npz"), **grads)
            results[text] = {"loss": float(metrics["loss"]), "grad_norm": float(metrics["grad_norm"]),
                             "devices": n, "processes": jax.process_count(), "shardings": specs}
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
