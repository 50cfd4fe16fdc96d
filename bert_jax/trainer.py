"""The one training wiring: mesh, state, checkpoints and hooks around a ``TrainingJob``.

``run_training(config, workdir, make_job)`` serves every mode; only ``make_job``
differs (``bert_jax.tasks.pretraining.pretraining_job``, ``bert_jax.finetuning.finetune_job``).
Order of work, so a refused run writes nothing:
  1. checks that need no compute (config ranges, mesh, batch arithmetic);
  2. the job (data, model, task) -- a ValueError there becomes a ``ConfigError``;
  3. the starting state: the workdir's own newest checkpoint -> ``init_from`` -> scratch;
  4. only then the workdir: ``config.json``, checkpoints, ``metrics.jsonl`` (rows past the
     restored step, left by a run that died after its last checkpoint, are dropped so the
     file reads as one run), TensorBoard;
  5. ``bert_jax.train.fit`` with the hooks of ``bert_jax.hooks``.
SIGTERM saves at the current step and exits 143, SIGINT (Ctrl-C) likewise with 130.
A non-finite loss stops the run naming the first bad step; checkpoints at or after the
step whose parameters produced it are moved aside, so a rerun resumes from a good one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from typing import Any, Callable

import ml_collections

from bert_jax.run_config import (ConfigError, check, check_local_path, check_same_run, check_same_vocabulary,
                                 init_from_error, recorded_run, validate)

log = logging.getLogger("bert_jax")


@dataclasses.dataclass
class RunContext:
    """What an evaluation needs from the run: the jitted steps, the mesh, where to write."""

    steps: Any
    mesh: Any
    workdir: str
    global_batch_size: int
    task: Any


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (never half-written)."""
    from data_pipeline.shards import atomic_write_bytes
    atomic_write_bytes(path, text.encode("utf-8"))


def check_workdir(workdir: str) -> None:
    """Refuse a ``--workdir`` that exists but is not a directory (a file, a broken link), or a URL."""
    check_local_path(workdir, "--workdir")
    check(not os.path.lexists(workdir) or os.path.isdir(workdir),
          f"--workdir {workdir} exists and is not a directory; pass a directory: a new one, or a run's to resume it.")


def trim_metrics(workdir: str, step: int, eval_again: bool = False) -> tuple[int, int]:
    """Drop ``metrics.jsonl`` rows logged after ``step`` (a resumed run re-trains those steps), and
    lines that do not read as JSON (cut by a kill mid-write). With ``eval_again`` (a finished run
    run again, whose final evaluation is redone), its evaluation rows at ``step`` go too.

    Returns ``(rows dropped, lines that do not read)``."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.isfile(path):
        return 0, 0
    with open(path, encoding="utf-8") as f:
        lines = [line for line in f if line.strip()]
    kept, after, cut = [], 0, 0
    for line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            cut += 1
            continue
        at = row.get("step") if isinstance(row, dict) else None
        if isinstance(at, (int, float)) and (at > step or (eval_again and at == step
                                                           and any(k.startswith("eval/") for k in row))):
            after += 1
        else:
            kept.append(line)
    if kept != lines:
        atomic_write_text(path, "".join(kept))
    return after, cut


def _resumed_with(recorded: dict | None, step: int | None, said: list) -> dict:
    """``{"resumed_with": [{"step", "changes"}, ...]}``: the settings changed on each resume so far
    (``check_same_run``; ``recorded`` is the run's config.json as the resume found it), so
    config.json's settings are read as those of the steps after the last."""
    history = []
    if step is not None and recorded is not None:
        history = recorded.get("resolved", {}).get("resumed_with", [])
        history = list(history) if isinstance(history, list) else []
    if said:
        history.append({"step": int(step), "changes": [str(c) for c in said]})
    return {"resumed_with": history} if history else {}


def _quarantine(ckpt_dir: str, first_bad_step: int) -> list[int]:
    """Move checkpoints of steps >= ``first_bad_step - 1`` (their parameters produced the
    non-finite value, or came after it) to ``<checkpoints>_nonfinite/``; returns their steps."""
    moved = []
    if not os.path.isdir(ckpt_dir):
        return moved
    for name in sorted(os.listdir(ckpt_dir)):
        if name.isdigit() and int(name) >= first_bad_step - 1:
            target = ckpt_dir.rstrip("/") + "_nonfinite"
            os.makedirs(target, exist_ok=True)
            shutil.move(os.path.join(ckpt_dir, name), os.path.join(target, name))
            moved.append(int(name))
    return moved


def run_training(config, workdir: str, make_job: Callable, *, finished_keeps_record: bool = False) -> dict:
    """Train (or resume) ``make_job``'s job in ``workdir``.

    Args:
      config: a ``ConfigDict`` with the ``run_config.common_defaults`` fields plus the mode's own.
      workdir: run directory; an existing checkpoint there is resumed (it wins over ``init_from``).
      make_job: ``(frozen_config, params_key, *, resuming) -> bert_jax.tasks.TrainingJob``.
      finished_keeps_record: a finished run given settings a resume may change (the learning
        rate...) redoes its final evaluation and keeps its own in config.json, instead of being
        refused (a multi-seed run: the seeds already finished when a later one is rerun).
    Returns:
      The last logged train metrics plus ``step``, ``start_step`` (where this invocation began),
      ``preempted``, ``exit_code`` (0, or 143 / 130 after SIGTERM / SIGINT) and ``eval``
      (the last evaluation's metrics, ``{}`` when none ran).
    Raises:
      ConfigError: a setting or input that cannot work (nothing was written).
      checkpointing.CheckpointError: the workdir's own step to resume from cannot be read (the
        message says what to do; a step of ``init_from`` that cannot be read is a ConfigError).
      NonFiniteLoss: the loss or a norm became NaN/Inf.
    """
    from bert_jax import partitioning as _p
    try:
        _p.maybe_initialize_distributed(config.distributed)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    import jax
    from bert_jax import partitioning
    from bert_jax.compile_cache import compilation_cache
    from bert_jax.modeling.layers import remat_policy_fn

    cfg = ml_collections.FrozenConfigDict(config)
    validate(cfg)
    try:  # before anything is built (it was a traceback from inside the model)
        remat_policy_fn(cfg.remat_policy)
    except ValueError as e:
        raise ConfigError(f"--config.remat_policy: {e}") from None
    try:
        mesh = partitioning.make_mesh(cfg.mesh_shape)
    except ValueError as e:
        raise ConfigError(f"{e} (config field mesh_shape)") from None
    dp = partitioning.data_parallel_size(mesh)
    gbs, nmb = cfg.global_batch_size, cfg.num_microbatches
    check((gbs // nmb) % dp == 0,
          f"global_batch_size={gbs} / num_microbatches={nmb} = {gbs // nmb} is not divisible by the "
          f"data-parallel size {dp} (mesh data x fsdp); make global_batch_size a multiple of {dp * nmb}.")
    check(gbs % jax.process_count() == 0,
          f"global_batch_size={gbs} is not divisible by the {jax.process_count()} processes.")
    check_workdir(workdir)
    root = jax.random.PRNGKey(cfg.seed)
    params_key, dropout_key = jax.random.split(root)
    # One run per workdir (process 0 holds the lock for the whole run). A refused run on a
    # workdir that did not exist leaves nothing behind, not even the lock file.
    lock, made = None, _first_missing(workdir)
    if jax.process_index() == 0:
        from bert_jax.workdir_lock import WorkdirLock, WorkdirLocked
        lock = WorkdirLock(workdir)
        try:
            lock.acquire()
        except WorkdirLocked as e:
            raise ConfigError(str(e)) from None
    try:
        with compilation_cache(cfg.compilation_cache_dir):
            return _run_locked(config, cfg, workdir, make_job, mesh, params_key, dropout_key, lock,
                               finished_keeps_record)
    except BaseException:
        if lock is not None:
            lock.release()
            lock = None
            if os.path.isdir(workdir) and set(os.listdir(workdir)) <= {".lock"}:
                # refused before anything was written: remove the lock file (and the folders we made)
                if made is None:
                    os.remove(os.path.join(workdir, ".lock"))
                else:
                    _remove_made(workdir, made)
        raise
    finally:
        if lock is not None:
            lock.release()


def _first_missing(path: str) -> str | None:
    """The outermost folder of ``path`` that does not exist yet (the run will make it and those
    inside it), or None when ``path`` exists."""
    path, top = os.path.abspath(path), None
    while not os.path.exists(path) and path != os.path.dirname(path):
        path, top = os.path.dirname(path), path
    return top


def _remove_made(workdir: str, made: str) -> None:
    """Remove ``workdir`` and the now empty folders above it up to ``made`` (``_first_missing``)."""
    shutil.rmtree(workdir, ignore_errors=True)
    path = os.path.dirname(os.path.abspath(workdir))
    while len(path) >= len(made) and path.startswith(made):
        try:
            os.rmdir(path)  # only if empty: another process may have put something there
        except OSError:
            return
        path = os.path.dirname(path)


def _open_checkpoints(cfg, workdir: str, ckpt_dir: str, open_manager):
    """``(manager or None, step to resume or None)``: the newest *intact* step; damaged newer
    steps are named and moved to ``<checkpoints>_damaged/`` so training can save those steps again."""
    import jax
    from bert_jax import checkpointing
    if not os.path.isdir(ckpt_dir):
        return None, None
    manager = open_manager()
    latest, skipped = checkpointing.latest_intact_step(manager)
    if latest is None and skipped:
        raise ConfigError(f"every checkpoint in {ckpt_dir} is damaged ({'; '.join(f'step {s}: {r}' for s, r in skipped)}). "
                          f"Move {ckpt_dir} aside to start this run over, or restore it from a copy.")
    if skipped:
        if jax.process_index() == 0:
            target = ckpt_dir.rstrip("/") + "_damaged"
            os.makedirs(target, exist_ok=True)
            for step, _ in skipped:
                shutil.move(os.path.join(ckpt_dir, str(step)), os.path.join(target, str(step)))
        log.warning("resuming from step %d: newer checkpoint(s) %s are damaged and were moved to %s_damaged/",
                    latest, ", ".join(str(s) for s, _ in skipped), ckpt_dir.rstrip("/"))
        manager.close()
        manager = open_manager()
    return manager, latest


def _run_locked(config, cfg, workdir, make_job, mesh, params_key, dropout_key, lock,
                finished_keeps_record=False) -> dict:
    import jax
    from bert_jax import checkpointing, flops, hooks as hooks_lib, optim, partitioning, train
    from bert_jax.modeling.layers import DropoutTooLarge
    from bert_jax.metrics import MetricWriter, Throughput
    gbs, nmb = cfg.global_batch_size, cfg.num_microbatches
    ckpt_dir = os.path.join(workdir, "checkpoints")

    def open_manager():
        return checkpointing.make_manager(ckpt_dir, keep=cfg.checkpoint.keep,
                                          keep_period=cfg.checkpoint.keep_period,
                                          async_save=cfg.checkpoint.async_save)

    # The manager creates its directory: open it only once the job and state are known to work.
    manager, latest = _open_checkpoints(cfg, workdir, ckpt_dir, open_manager)
    recorded = recorded_run(workdir) if latest is not None else None
    said = check_same_run(cfg, workdir, "resume", recorded)
    try:
        job = make_job(cfg, params_key, resuming=latest is not None)
        optim_cfg = ml_collections.ConfigDict(cfg.optim.to_dict())
        if job.total_steps is not None:
            optim_cfg.total_steps = int(job.total_steps)
        optim.validate_optim_config(optim_cfg)
        tx, schedule = optim.make_optimizer(optim_cfg), optim.make_schedule(optim_cfg)
    except (ValueError, FileNotFoundError) as e:
        raise ConfigError(str(e)) from None
    kept = []  # changes no step takes: config.json keeps the run's own values
    if said and latest >= int(optim_cfg.total_steps):
        # no step would take the new settings, yet config.json would describe the run by them
        if not finished_keeps_record:
            raise ConfigError(f"{workdir} is finished (step {latest} of {int(optim_cfg.total_steps)}): "
                              f"{'; '.join(map(str, said))} would change no step. Drop the change to run its final "
                              "evaluation again, or raise optim.total_steps (or num_epochs) to train on with it.")
        log.info("%s is finished (step %d): %s would change no step; its config.json keeps its own", workdir,
                 latest, "; ".join(map(str, said)))
        kept, said = said, []
    if said:  # what a non-finite stop advises changing: allowed, said, and recorded below
        log.warning("resuming at step %d with %s (config.json records the change under resolved.resumed_with)",
                    latest, "; ".join(map(str, said)))
    if latest is not None:
        check_same_vocabulary(recorded, job.info, workdir, "resume")
    task, model_cfg, loader = job.task, job.model_config, job.loader
    rules = partitioning.rules_from_config(cfg.logical_axis_rules)
    abstract_params = partitioning.unbox(jax.eval_shape(task.init_params, params_key))
    if latest is not None:
        meta = checkpointing.read_meta(manager, latest)
        try:
            checkpointing.check_compatible(meta, abstract_params, workdir, latest, model_cfg.to_dict())
        except ValueError as e:
            raise ConfigError(str(e)) from None

    # --- state: own checkpoint -> init_from -> scratch
    try:
        init_params = job.init_params() if (latest is None and job.init_params) else None
    except (ValueError, FileNotFoundError) as e:
        raise init_from_error(cfg.init_from, e) from None
    try:
        state, shardings, _ = train.create_train_state(task, tx, mesh, rules, params_key, dropout_key,
                                                       params=init_params)
    except ValueError as e:
        if init_params is None:
            raise
        raise init_from_error(cfg.init_from, e) from None
    if latest is not None:
        abstract = jax.eval_shape(lambda s: s, state)
        # An unverified step that fails to read raises CheckpointError (nothing is moved).
        state, loader_state, _ = checkpointing.restore(manager, abstract, shardings, latest, meta=meta)
        if loader_state:
            try:
                loader.restore(loader_state)
            except ValueError as e:  # the data changed since the checkpoint
                raise ConfigError(str(e)) from None
        log.info("resumed from %s at step %d", workdir, latest)
    start_step = int(state.step)
    total = int(optim_cfg.total_steps)
    steps = train.jit_steps(task, tx, schedule, mesh, shardings, nmb)
    try:
        train.trace_train_step(steps, state, task, mesh, gbs)
    except DropoutTooLarge as e:
        raise ConfigError(str(e)) from None

    # --- the workdir
    if jax.process_index() == 0:
        os.makedirs(workdir, exist_ok=True)
        resolved = json.loads(config.to_json_best_effort())
        for change in kept:
            *parents, leaf = change.field.split(".")
            node = resolved
            for key in parents:
                node = node[key]
            node[leaf] = change.before
        # the model as built (a fine-tuning config leaves its shape at -1, "that of init_from"), so
        # this run can itself be an init_from, or be evaluated without repeating init_from
        resolved["resolved"] = {"mesh": dict(mesh.shape), "vocab_size": model_cfg.vocab_size,
                                "model": {k: v for k, v in model_cfg.to_dict().items() if k in resolved["model"]},
                                "total_steps": total, "num_processes": jax.process_count(),
                                "num_devices": jax.device_count(), **({"data": job.info} if job.info else {}),
                                # what its relative paths (init_from, data dirs, vocab_file) are relative to:
                                # evaluate and convert may run from another directory
                                "cwd": os.getcwd(), **_resumed_with(recorded, latest, said)}
        atomic_write_text(os.path.join(workdir, "config.json"), json.dumps(resolved, indent=2) + "\n")
        after, cut = trim_metrics(workdir, start_step)
        if after:
            log.info("metrics.jsonl: dropped %d row(s) logged after step %d by the interrupted run", after,
                     start_step)
        if cut:
            log.info("metrics.jsonl: dropped %d line(s) that do not read as JSON (cut mid-write by the "
                     "interrupted run)", cut)
    manager = manager or open_manager()
    meta = {"param_shapes": checkpointing.param_shapes(state.params), "model": model_cfg.to_dict(),
            "mesh_shape": list(mesh.devices.shape),
            # the user-facing class, so `bert-jax convert` can export any step
            "target": type(task.module).__name__.removesuffix("Module")}
    context = RunContext(steps=steps, mesh=mesh, workdir=workdir, global_batch_size=gbs, task=task)
    writer = MetricWriter(workdir, total, start_step)
    peak = cfg.peak_flops_per_device or flops.peak_flops_per_device(jax.devices()[0].device_kind)
    throughput = Throughput(gbs, task.max_seq_length, task.flops_per_example(model_cfg) * gbs,
                            jax.device_count(), peak,
                            flops_at=lambda seq: task.flops_per_example(model_cfg, seq) * gbs)
    batches = train.GlobalBatches(loader, mesh, keys=task.batch_spec)

    def save(step, state, force):
        return checkpointing.save(manager, step, state, batches.position, meta, force=force)

    # A finished run run again redoes its final evaluation. Its earlier rows are replaced once the
    # new ones are computed, not before: an interrupted evaluation leaves them as they were.
    redo = [start_step == total and job.eval_at_end and job.evaluate is not None]

    def evaluate(step, state):
        # The training work dispatched before the evaluation finishes first, so the time left out
        # of the throughput figures is the evaluation's own.
        jax.block_until_ready(state.params)
        start = time.perf_counter()
        values = job.evaluate(context, state.params, step)
        if redo[0] and step == start_step and jax.process_index() == 0:
            redo[0] = False
            replaced, _ = trim_metrics(workdir, start_step, eval_again=True)
            if replaced:
                log.info("metrics.jsonl: replaced %d row(s) of the evaluation at step %d, which ran again",
                         replaced, start_step)
        writer.write(step, values, prefix="eval")
        throughput.exclude(time.perf_counter() - start)
        return values

    metrics_hook = hooks_lib.MetricsHook(writer, throughput, cfg.log_every_steps, total,
                                         seq_length=lambda: batches.seq_length, counts=lambda: batches.counts)
    ckpt_hook = hooks_lib.CheckpointHook(save, metrics_hook.verify, cfg.checkpoint.every_steps, latest)
    stop_hook = hooks_lib.StopHook(ckpt_hook, cfg.stop_check_every_steps or cfg.log_every_steps)
    eval_hook = hooks_lib.EvalHook(evaluate, cfg.eval_every_steps if job.evaluate else 0,
                                   at_end=job.eval_at_end and job.evaluate is not None,
                                   skip_end=lambda: stop_hook.stopped)
    if cfg.eval_at_start and job.evaluate is not None and start_step == 0:
        eval_hook.values, eval_hook.step = evaluate(0, state), 0
    # Order matters: metrics are checked before a checkpoint is written, and the stop
    # signal is honoured after this step's evaluation and checkpoint.
    hooks = [metrics_hook, eval_hook, ckpt_hook, stop_hook]
    stop_hook.install()
    try:
        def last_save_done(*_):
            # Once the last checkpoint is on disk, Ctrl-C ends the final evaluation at once (the
            # flag the stop hook sets was never read again, so the first Ctrl-C there was ignored).
            manager.wait_until_finished()
            stop_hook.release_ctrl_c()
        state = train.fit(state, steps.train, batches, num_steps=total, hooks=hooks,
                          end_hooks=[metrics_hook.end, ckpt_hook.end, last_save_done, eval_hook.end])
    except train.NonFiniteLoss as e:
        manager.wait_until_finished()
        moved = _quarantine(ckpt_dir, e.step) if jax.process_index() == 0 else []
        kept = checkpointing.saved_steps(ckpt_dir)
        note = (f" Checkpoint(s) of step(s) {', '.join(map(str, moved))} were written from parameters that "
                f"produced it and were moved to {ckpt_dir.rstrip('/')}_nonfinite/." if moved else "")
        good = (f" The newest kept checkpoint is step {kept[-1]}." if kept else
                " No checkpoint was kept; the rerun starts from the beginning.")
        raise _with_note(train.NonFiniteLoss(e.step, e.key, e.value), note + good) from None
    finally:
        stop_hook.uninstall()
        manager.wait_until_finished()
        writer.close()
        if hasattr(loader, "close"):
            loader.close()
        if job.close:
            job.close()
    return {**metrics_hook.last, "step": int(state.step), "start_step": start_step,
            "preempted": stop_hook.stopped, "exit_code": stop_hook.exit_code, "eval": eval_hook.values}


def _with_note(error: Exception, note: str) -> Exception:
    error.args = (str(error) + note,)
    return error
