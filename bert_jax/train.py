"""TrainState, the pure ``train_step``/``eval_step`` and the one ``fit()`` loop.

Everything task-specific (batch layout, head, loss, metrics) lives in a task
object (see ``bert_jax.tasks``); this module only knows how to:
  * create a sharded ``TrainState`` (``jax.eval_shape`` -> logical axes ->
    shardings -> jitted init with ``out_shardings``);
  * take one optimizer step, accumulating gradients over microbatches with
    ``jax.lax.scan`` (loss normalisers come from the *whole* batch, so the
    result equals one step on the full batch);
  * jit those steps with explicit shardings and buffer donation (the only
    place ``jax.jit`` is called for training);
  * drive the loop (``fit``) over global batches assembled from each
    process's loader (``GlobalBatches``), calling hooks (logging, checkpoints,
    evaluation, stop signals) after each step.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Iterable, Protocol

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding

from bert_jax import optim, partitioning


@flax.struct.dataclass
class TrainState:
    """``step`` int32 scalar; ``params``/``opt_state`` plain (unboxed) trees;
    ``dropout_key`` uint32[2] raw key, folded with the step each step."""

    step: jax.Array
    params: Any
    opt_state: Any
    dropout_key: jax.Array


# ----------------------------------------------------------------------------- state


def _names(path) -> tuple[str, ...]:
    out = []
    for e in path:
        for attr in ("key", "name", "idx"):
            if hasattr(e, attr):
                out.append(str(getattr(e, attr)))
                break
    return tuple(out)


def state_shardings(abstract_state: TrainState, param_axes, mesh: Mesh, rules) -> TrainState:
    """Shardings for every leaf of the state.

    Optimizer-state leaves that mirror a parameter (Adam moments, ...) take that
    parameter's sharding, found by matching the end of their tree path with the
    parameter's path; other leaves (counters) are replicated.
    """
    param_sh = partitioning.shardings_for(abstract_state.params, param_axes, mesh, rules)
    table = {}
    for path, (leaf, sh) in zip(
        [p for p, _ in jax.tree_util.tree_flatten_with_path(abstract_state.params)[0]],
        zip(jax.tree_util.tree_leaves(abstract_state.params), jax.tree_util.tree_leaves(param_sh)),
    ):
        table[_names(path)] = (tuple(leaf.shape), sh)
    rep = partitioning.replicated(mesh)

    def for_opt(path, leaf):
        names = _names(path)
        for k in range(len(names)):
            hit = table.get(names[k:])
            if hit is not None and hit[0] == tuple(getattr(leaf, "shape", ())):
                return hit[1]
        return rep

    opt_sh = jax.tree_util.tree_map_with_path(for_opt, abstract_state.opt_state)
    return TrainState(step=rep, params=param_sh, opt_state=opt_sh, dropout_key=rep)


def create_train_state(task, tx: optax.GradientTransformation, mesh: Mesh, rules,
                       params_key: jax.Array, dropout_key: jax.Array, params=None):
    """Initialise a sharded state directly on the mesh.

    Args:
      params: optional plain parameter tree to start from (``init_from``);
        otherwise parameters are freshly initialised from ``params_key``.
    Returns:
      ``(state, shardings, param_axes)``.
    """
    boxed = jax.eval_shape(task.init_params, params_key)
    param_axes = partitioning.logical_axes(boxed)

    def init(key, dkey, given):
        p = partitioning.unbox(task.init_params(key)) if given is None else given
        return TrainState(step=jnp.zeros((), jnp.int32), params=p, opt_state=tx.init(p),
                          dropout_key=dkey)

    abstract = jax.eval_shape(functools.partial(init, given=None), params_key, dropout_key)
    shardings = state_shardings(abstract, param_axes, mesh, rules)
    if params is None:
        state = jax.jit(functools.partial(init, given=None), out_shardings=shardings)(
            params_key, dropout_key)
    else:
        check_same_shapes(abstract.params, params, what="init_from parameters")
        params = jax.device_put(params, shardings.params)
        state = jax.jit(init, out_shardings=shardings)(params_key, dropout_key, params)
    return state, shardings, param_axes


def check_same_shapes(expected, got, what: str) -> None:
    """Raise a ValueError listing parameters whose presence or shape differs."""
    exp = {_names(p): tuple(x.shape) for p, x in jax.tree_util.tree_flatten_with_path(expected)[0]}
    have = {_names(p): tuple(x.shape) for p, x in jax.tree_util.tree_flatten_with_path(got)[0]}
    problems = [f"missing {'/'.join(k)}" for k in exp if k not in have]
    problems += [f"unexpected {'/'.join(k)}" for k in have if k not in exp]
    problems += [f"{'/'.join(k)}: {have[k]} but the model needs {exp[k]}"
                 for k in exp if k in have and have[k] != exp[k]]
    if problems:
        shown = "; ".join(problems[:8]) + (f"; ... ({len(problems)} in all)" if len(problems) > 8 else "")
        raise ValueError(f"{what} do not match the configured model: {shown}. "
                         "Make the model config match the checkpoint, or use another source.")


# ----------------------------------------------------------------------------- steps


def _split_microbatches(batch, n: int, mesh: Mesh | None):
    """``[batch, ...]`` -> ``[n, batch / n, ...]`` where microbatch ``i`` takes rows
    ``i, i + n, ...`` -- every device keeps its own rows, so no data moves."""
    def split(x):
        b = x.shape[0]
        y = x.reshape((b // n, n) + x.shape[1:]).swapaxes(0, 1)
        if mesh is not None:
            y = jax.lax.with_sharding_constraint(
                y, partitioning.batch_sharding(mesh, y.ndim, leading=1))
        return y
    return jax.tree_util.tree_map(split, batch)


def train_step(state: TrainState, batch, *, task, tx, schedule, num_microbatches: int = 1,
               mesh: Mesh | None = None):
    """One optimizer step on ``batch`` (``[global_batch, ...]`` arrays).

    Returns ``(new_state, metrics)`` with scalar metrics: ``loss``, the task's
    metrics, ``learning_rate``, ``grad_norm`` (before clipping), ``param_norm``.
    """
    step_key = jax.random.fold_in(state.dropout_key, state.step)
    denoms = task.denominators(batch)
    grad_fn = jax.value_and_grad(
        lambda p, mb, key: task.loss(p, mb, key, denoms, deterministic=False), has_aux=True)
    if num_microbatches == 1:
        (loss, sums), grads = grad_fn(state.params, batch, step_key)
    else:
        micro = _split_microbatches(batch, num_microbatches, mesh)

        def body(carry, xs):
            index, mb = xs
            (l, s), g = grad_fn(state.params, mb, jax.random.fold_in(step_key, index))
            return jax.tree_util.tree_map(jnp.add, carry, (l, s, g)), None

        first = jax.tree_util.tree_map(lambda x: x[0], micro)
        shapes = jax.eval_shape(grad_fn, state.params, first, step_key)
        (loss_shape, sums_shape), grads_shape = shapes
        zeros = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype),
                                       (loss_shape, sums_shape, grads_shape))
        (loss, sums, grads), _ = jax.lax.scan(
            body, zeros, (jnp.arange(num_microbatches), micro))
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {"loss": loss, **task.metrics_from_sums(sums),
               "learning_rate": schedule(state.step), "grad_norm": optim.global_norm(grads),
               "param_norm": optim.global_norm(params)}
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
    return new_state, metrics


def eval_step(params, batch, *, task):
    """Metric *sums* on one batch (deterministic); add across batches, then
    ``task.metrics_from_sums``."""
    denoms = task.denominators(batch)
    _, sums = task.loss(params, batch, jax.random.PRNGKey(0), denoms, deterministic=True)
    return sums


def predict_step(params, batch, *, task):
    """Per-row outputs of ``task.predict`` (deterministic): ``{name: [batch, ...]}``."""
    return task.predict(params, batch)


def batch_shardings(spec: dict, mesh: Mesh) -> dict[str, NamedSharding]:
    """Batch-dimension shardings for a ``{name: (dtype, trailing shape)}`` layout."""
    return {k: partitioning.batch_sharding(mesh, 1 + len(shape)) for k, (_, shape) in spec.items()}


@dataclasses.dataclass(frozen=True)
class Steps:
    """The jitted steps of one run.

    ``train(state, batch) -> (state, metrics)`` donates the old state;
    ``evaluate(params, batch) -> metric sums``;
    ``predict(params, batch) -> per-row outputs`` (None when the task has no ``predict``),
    its outputs split over the batch like its inputs.
    """

    train: Callable
    evaluate: Callable
    predict: Callable | None

    def __iter__(self):  # ``train_fn, eval_fn = jit_steps(...)`` unpacks the pair
        return iter((self.train, self.evaluate))


def jit_steps(task, tx, schedule, mesh: Mesh, shardings: TrainState, num_microbatches: int) -> Steps:
    """The jitted steps; the only place training, evaluation and prediction jit."""
    bsh = batch_shardings(task.batch_spec, mesh)
    rep = partitioning.replicated(mesh)
    train = jax.jit(
        functools.partial(train_step, task=task, tx=tx, schedule=schedule,
                          num_microbatches=num_microbatches, mesh=mesh),
        in_shardings=(shardings, bsh), out_shardings=(shardings, rep), donate_argnums=(0,))
    evaluate = jax.jit(functools.partial(eval_step, task=task),
                       in_shardings=(shardings.params, bsh), out_shardings=rep)
    predict = None
    if hasattr(task, "predict"):
        psh = batch_shardings(task.predict_spec, mesh)
        predict = jax.jit(functools.partial(predict_step, task=task), in_shardings=(shardings.params, psh))
    return Steps(train=train, evaluate=evaluate, predict=predict)


def trace_train_step(steps: Steps, state: TrainState, task, mesh: Mesh, global_batch_size: int) -> None:
    """Trace ``steps.train`` on abstract inputs of ``task.batch_spec``'s shapes.

    Errors that only tracing finds (e.g. ``layers.DropoutTooLarge``) then surface before a run
    writes anything. No compile and almost no cost: jit caches the trace, and the first real
    step with these shapes reuses it.
    """
    bsh = batch_shardings(task.batch_spec, mesh)
    batch = {k: jax.ShapeDtypeStruct((global_batch_size, *shape), dtype, sharding=bsh[k])
             for k, (dtype, shape) in task.batch_spec.items()}
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding), state)
    steps.train.eval_shape(abstract, batch)


# ----------------------------------------------------------------------------- loop


class GlobalBatches:
    """Endless global batches from a per-process loader; remembers the loader
    position after the most recent batch (saved with that step's checkpoint).

    ``keys``: the arrays the step reads (others the loader yields, e.g. ``row_id``, are dropped).
    ``seq_length``: positions per row of the most recent batch (``input_ids``' last axis), which
    length-bucketed loaders vary from batch to batch. ``counts``: what that batch holds besides
    its shape -- ``positions`` and ``real_tokens`` (all and non-padding positions, from
    ``attention_mask``; a multiple-choice example is ``choices`` rows) and, for packed rows,
    ``examples`` (instances, from ``next_sentence_weight``) -- counted in this process's rows
    and scaled by the process count (the throughput figures are logged by process 0).
    """

    def __init__(self, loader, mesh, keys=None):
        self.loader, self.mesh, self.position, self.seq_length = loader, mesh, None, None
        self.keys = None if keys is None else tuple(keys)
        self.counts: dict[str, int] = {}

    def __iter__(self):
        while True:
            produced = False
            for local in self.loader:
                produced = True
                self.position = self.loader.state()
                if "input_ids" in local:
                    self.seq_length = int(local["input_ids"].shape[-1])
                self.counts = _counts(local, jax.process_count())
                if self.keys is not None:
                    local = {k: local[k] for k in self.keys}
                yield partitioning.make_global_batch(local, self.mesh)
            if not produced:
                raise ValueError("the training data produced no batch; use more data or a smaller "
                                 "global_batch_size.")


def _counts(local: dict, processes: int) -> dict[str, int]:
    """``GlobalBatches.counts`` of one local batch (host arrays: a sum, no device sync)."""
    counts = {}
    if "attention_mask" in local:  # [batch, seq], or [batch, choices, seq]
        mask = local["attention_mask"]
        counts["positions"] = int(mask.size) * processes
        counts["real_tokens"] = int(np.count_nonzero(mask)) * processes
    if "next_sentence_weight" in local:  # packed rows: one weight per instance slot, 0 = empty
        counts["examples"] = int(np.count_nonzero(local["next_sentence_weight"])) * processes
    return counts


class Hook(Protocol):
    def __call__(self, step: int, state: TrainState, metrics: dict) -> None: ...


class StopTraining(Exception):
    """Raised by a hook to end the loop cleanly (e.g. after a SIGTERM save)."""


class NonFiniteLoss(RuntimeError):
    """A loss or norm became NaN or Inf; ``step`` is the first step where it did."""

    def __init__(self, step: int, key: str = "loss", value: float = float("nan")):
        self.step, self.key, self.value = int(step), key, value
        super().__init__(f"{key} is {value} at step {step}; stopping. Lower optim.learning_rate, raise "
                         "optim.warmup_steps, or enable optim.clip_grad_norm, then rerun: the run resumes "
                         "from the last good checkpoint.")


def fit(state: TrainState, step_fn: Callable, batches: Iterable, *, num_steps: int,
        hooks: Iterable[Hook] = (), end_hooks: Iterable[Callable] = ()) -> TrainState:
    """Run ``step_fn`` until ``state.step == num_steps`` or a hook raises ``StopTraining``.

    Args:
      state: the (possibly resumed) state; its ``step`` is where the loop starts.
      step_fn: jitted ``(state, global_batch) -> (state, metrics)``.
      batches: iterator of global batches (already on device or numpy).
      hooks: called as ``hook(step, state, metrics)`` after each step, where
        ``step`` is the number of completed steps; metrics stay on device
        unless a hook fetches them.
      end_hooks: called as ``hook(step, state)`` once when the loop ends.
    """
    step = int(state.step)
    iterator = iter(batches)
    try:
        while step < num_steps:
            try:
                batch = next(iterator)
            except StopIteration:
                break
            state, metrics = step_fn(state, batch)
            step += 1
            for hook in hooks:
                hook(step, state, metrics)
    except StopTraining:
        pass
    for hook in end_hooks:
        hook(step, state)
    return state
