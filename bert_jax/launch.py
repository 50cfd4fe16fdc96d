"""``bert-jax pretrain`` / ``bert-jax finetune``: configs, overrides and the one training wiring.

The only module that reads command-line flags. It
  * loads ``--config FILE[:ARG]`` (a Python file whose ``get_config([arg])``
    returns an ``ml_collections.ConfigDict``) and applies ``--config.a.b=value``
    overrides; an unknown field is an error that lists close matches;
  * initialises ``jax.distributed`` from the config or the environment;
  * validates everything that can be checked before compute (mesh, batch,
    data, init_from, existing checkpoints), then wires mesh, model, optimizer,
    loader, checkpoints and hooks into ``bert_jax.train.fit`` (``run_training``).

Pretraining and fine-tuning are modes of that one wiring: each only supplies a
``bert_jax.tasks.TrainingJob`` (task, data, starting parameters) --
``pretraining_job`` here, ``bert_jax.tasks.classification.build_finetune_job``.

Resume order: the workdir's own latest checkpoint -> ``init_from`` -> scratch.
SIGTERM saves a checkpoint at the current step and exits with code 143.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import importlib.util
import json
import logging
import os
import signal
import sys

import ml_collections

log = logging.getLogger("bert_jax")
PREEMPTED_EXIT_CODE = 143  # 128 + SIGTERM, what schedulers expect of a terminated job


class ConfigError(ValueError):
    """A setting that cannot work; the message says what to change."""


def _common_defaults() -> ml_collections.ConfigDict:
    """The fields every training mode shares (model, optimizer, mesh, checkpoints, logging).

    Fields (all overridable as ``--config.<path>=<value>``):
      model.*                  BertConfig fields (Hugging Face names); vocab_size -1 = from the data
      model_dtype              compute dtype: "float32" or "bfloat16" (params stay float32)
      remat_policy             "none", "full", "dots" ... (see bert_jax.modeling.layers.remat_policy_fn)
      scan_layers              scan over encoder layers (faster compiles for deep models)
      global_batch_size        sequences per optimizer step, over all hosts
      num_microbatches         gradient accumulation steps per optimizer step
      optim.*                  see bert_jax.optim (name, learning_rate, total_steps, warmup ...)
      mesh_shape               (data, fsdp, tensor); -1 = the remaining devices
      logical_axis_rules       () = bert_jax.partitioning.DEFAULT_RULES, else ((logical, mesh), ...)
      checkpoint.*             every_steps, keep (last K), keep_period (also keep every M), async_save
      log_every_steps, eval_every_steps, eval_steps, nan_check_every_steps
      init_from                a bert-jax workdir/checkpoint dir or a Hugging Face model dir ("" = none)
      distributed.*            coordinator_address, num_processes, process_id (-1 = from env);
                               initialize: "auto" (when the env says multi-host), "yes", "no"
      peak_flops_per_device    override the MFU peak (FLOP/s); 0 = from bert_jax.flops table
    """
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.model = ml_collections.ConfigDict(dict(
        vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
        intermediate_size=3072, hidden_act="gelu", hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1, max_position_embeddings=512, type_vocab_size=2,
        initializer_range=0.02, layer_norm_eps=1e-12))
    c.model_dtype = "bfloat16"
    c.remat_policy = "none"
    c.scan_layers = False
    c.global_batch_size = 256
    c.num_microbatches = 1
    c.optim = ml_collections.ConfigDict(dict(
        name="adamw", learning_rate=1e-4, total_steps=1_000_000, warmup_steps=10_000,
        warmup_fraction=0.0, schedule="linear", decay_power=1.0, end_learning_rate=0.0,
        b1=0.9, b2=0.999, eps=1e-6, weight_decay=0.01, clip_grad_norm=1.0))
    c.mesh_shape = (-1, 1, 1)
    c.logical_axis_rules = ()
    c.checkpoint = ml_collections.ConfigDict(dict(
        every_steps=1000, keep=3, keep_period=0, async_save=True))
    c.log_every_steps = 100
    c.eval_every_steps = 0
    c.eval_steps = 20
    c.nan_check_every_steps = 1
    c.init_from = ""
    c.distributed = ml_collections.ConfigDict(dict(
        initialize="auto", coordinator_address="", num_processes=-1, process_id=-1))
    c.peak_flops_per_device = 0.0
    return c


def pretrain_defaults() -> ml_collections.ConfigDict:
    """Every pretraining config field with its default; recipes override a few.

    The shared fields are described in ``_common_defaults``; pretraining adds:
      use_nsp                  add the next-sentence loss
      data.train_dir/eval_dir  shard directories from ``bert-jax data build``
      data.max_seq_length, data.max_predictions_per_seq  must equal the shards' manifest
      data.dynamic_masking, data.prefetch  loader options
    model.vocab_size -1 takes the vocabulary size from the shards.
    """
    c = _common_defaults()
    c.use_nsp = True
    c.data = ml_collections.ConfigDict(dict(
        train_dir="", eval_dir="", max_seq_length=128, max_predictions_per_seq=20,
        dynamic_masking=False, prefetch=2))
    return c


def finetune_defaults() -> ml_collections.ConfigDict:
    """Every fine-tuning config field with its default (the shared ones from ``_common_defaults``).

    Fine-tuning adds:
      task                     a registered task (``bert_jax.tasks.classification.FINETUNE_DATA``)
      data.corpus_dir          the task's text (docs_section: one BERT-format file per label)
      data.labels              label names (docs_section: corpus file names without .txt)
      data.vocab_file          "" = the vocabulary that came with init_from
      data.lowercase           tokenizer lower-casing (uncased vocabularies)
      data.max_seq_length      tokens per example (truncated / padded)
      data.dev_percent         share of documents held out for the dev split
      data.balance             cap every label at the smallest label's count (baseline 1 / num_labels)
      data.max_per_label       cap on sentences per label and split (0 = all), to balance classes
    ``init_from`` is required ("scratch" = a randomly initialised encoder); the workdir's own
    checkpoint still wins over it on restart. ``eval_steps`` 0 = the whole dev split; it is
    always evaluated at the end and written to ``<workdir>/eval/dev_results.json``.
    """
    c = _common_defaults()
    c.task = "docs_section"
    c.data = ml_collections.ConfigDict(dict(
        corpus_dir="", labels=("tutorial", "library", "reference", "whatsnew"), vocab_file="",
        lowercase=True, max_seq_length=128, dev_percent=15, max_per_label=0, balance=True))
    c.model.vocab_size = -1
    c.global_batch_size = 32
    c.optim.update(learning_rate=5e-5, total_steps=1000, warmup_steps=-1, warmup_fraction=0.1)
    c.checkpoint.every_steps = 500
    c.log_every_steps = 50
    c.eval_steps = 0
    return c


# ----------------------------------------------------------------------------- config files


def load_config(path: str, overrides: list[str] = ()) -> ml_collections.ConfigDict:
    """Load ``path[:arg]`` and apply ``a.b=value`` overrides (values parsed as Python literals)."""
    arg = None
    if ":" in path and not os.path.exists(path):
        path, arg = path.rsplit(":", 1)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file {path!r} not found; pass e.g. --config configs/pretrain/tiny.py "
                                "or --config configs/finetune/docs_section.py")
    spec = importlib.util.spec_from_file_location(f"_bert_jax_config_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ValueError(f"{path} defines no get_config(); a config file must return a ConfigDict from it.")
    config = module.get_config(arg) if arg is not None else module.get_config()
    for item in overrides:
        apply_override(config, item)
    return config


def _all_keys(config, prefix="") -> list[str]:
    keys = []
    for k, v in config.items():
        keys.append(prefix + k)
        if isinstance(v, (ml_collections.ConfigDict, dict)):
            keys += _all_keys(v, prefix + k + ".")
    return keys


def apply_override(config: ml_collections.ConfigDict, item: str) -> None:
    """Apply one ``a.b.c=value``; unknown fields and wrong types are errors."""
    if "=" not in item:
        raise ValueError(f"override {item!r} needs the form --config.field=value")
    key, raw = item.split("=", 1)
    parts = key.split(".")
    node = config
    for i, part in enumerate(parts):
        if not isinstance(node, (ml_collections.ConfigDict, dict)) or part not in node:
            close = difflib.get_close_matches(key, _all_keys(config), n=3, cutoff=0.5)
            hint = (f" Did you mean {', '.join(close)}?" if close else
                    " See bert_jax.launch.pretrain_defaults / finetune_defaults for all fields.")
            raise ValueError(f"unknown config field {key!r}.{hint}")
        if i < len(parts) - 1:
            node = node[part]
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw  # a bare string, e.g. --config.optim.name=lamb
    old = node[parts[-1]]
    if isinstance(old, bool) and not isinstance(value, bool):
        raise ValueError(f"config field {key} takes True/False, got {raw!r}")
    if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(old, tuple) and isinstance(value, list):
        value = tuple(value)
    if old is not None and isinstance(old, (int, float, str, tuple)) and type(value) is not type(old):
        raise ValueError(f"config field {key} is {type(old).__name__} ({old!r}); got {raw!r}")
    node[parts[-1]] = value


def _parse_args(argv: list[str], prog: str):
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="config file, optionally FILE:ARG")
    parser.add_argument("--workdir", required=True, help="run directory (checkpoints, logs, config.json)")
    args, rest = parser.parse_known_args(argv)
    overrides = []
    for item in rest:
        if not item.startswith("--config."):
            parser.error(f"unrecognised argument {item!r}; overrides look like --config.optim.learning_rate=1e-4")
        overrides.append(item[len("--config."):])
    return args, overrides


# ----------------------------------------------------------------------------- the run


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _atomic_write_text(path: str, text: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _load_init_params(path: str, scan_layers: bool):
    """Plain parameter tree from a bert-jax workdir / Orbax checkpoint directory, a
    bert-jax export (``bert_jax_params.safetensors``) or a Hugging Face model directory."""
    from bert_jax import checkpointing
    from bert_jax.convert import hf, native
    if os.path.isdir(os.path.join(path, "checkpoints")):
        return checkpointing.restore_params_to_cpu(os.path.join(path, "checkpoints"))[0]
    if native.is_native_checkpoint(path):
        params, _, target = native.load_native_checkpoint(path)
        _check(target == "BertForPreTraining", f"init_from {path} holds a {target}; pretraining needs a "
               "BertForPreTraining checkpoint.")
        return hf.stack_layers(params) if scan_layers else params
    if os.path.isfile(os.path.join(path, "config.json")):
        state_dict, hf_config = hf.load_hf_checkpoint(path)
        params, report = hf.hf_state_dict_to_params(state_dict, hf_config, "BertForPreTraining",
                                                    scan_layers=scan_layers)
        log.info("init_from %s (Hugging Face): %s", path, report)
        return params
    if os.path.isdir(path):
        return checkpointing.restore_params_to_cpu(path)[0]
    raise ConfigError(f"init_from={path!r} is not a directory; give a bert-jax workdir, a bert-jax or "
                      "Hugging Face model directory, or '' to start from scratch.")


def pretraining_job(module=None, make_loader=None):
    """``make_job`` for ``run_training``: MLM(+NSP) on shards from ``bert-jax data build``.

    Args:
      module: optional Flax module to train instead of ``BertForPreTrainingModule``.
      make_loader: optional ``(shard_dir, config, seed) -> loader`` replacing ``open_loader``.
    """
    def make_job(cfg, params_key, *, resuming: bool):
        import itertools
        import jax.numpy as jnp
        from bert_jax.config import BertConfig
        from bert_jax.tasks import PretrainingTask, TrainingJob
        from bert_jax.tasks.pretraining import open_loader

        _check(bool(cfg.data.train_dir) or make_loader is not None,
               "data.train_dir is empty; pass --config.data.train_dir=SHARD_DIR (from 'bert-jax data build').")
        opener = make_loader or (lambda d, c, seed: open_loader(d, c, seed=seed))
        loader = opener(cfg.data.train_dir, cfg, int(cfg.seed))
        vocab_size = cfg.model.vocab_size if cfg.model.vocab_size > 0 else int(loader.manifest["vocab_size"])
        _check(cfg.data.max_seq_length <= cfg.model.max_position_embeddings,
               f"data.max_seq_length={cfg.data.max_seq_length} exceeds model.max_position_embeddings="
               f"{cfg.model.max_position_embeddings}; raise the latter or use shorter shards.")
        try:
            model_cfg = BertConfig(**{**cfg.model.to_dict(), "vocab_size": vocab_size})
        except (TypeError, ValueError) as e:
            raise ConfigError(f"model config: {e}") from None
        model = module
        if model is None:
            from bert_jax.modeling import BertForPreTrainingModule
            dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[cfg.model_dtype]
            model = BertForPreTrainingModule(model_cfg, dtype=dtype, param_dtype=jnp.float32,
                                             remat_policy=cfg.remat_policy, scan_layers=cfg.scan_layers)
        task = PretrainingTask(model, cfg.data.max_seq_length, cfg.data.max_predictions_per_seq,
                               use_nsp=cfg.use_nsp)

        def eval_batches():
            eval_loader = opener(cfg.data.eval_dir, cfg, int(cfg.seed) + 1)
            try:
                yield from itertools.islice(eval_loader, cfg.eval_steps)
            finally:
                if hasattr(eval_loader, "close"):
                    eval_loader.close()

        init = (lambda: _load_init_params(cfg.init_from, cfg.scan_layers)) if cfg.init_from else None
        return TrainingJob(task=task, model_config=model_cfg, loader=loader,
                           eval_batches=eval_batches if cfg.data.eval_dir else None, init_params=init)
    return make_job


def run_training(config, workdir: str, make_job) -> dict:
    """Build mesh, state, checkpoints and hooks around a job and train (or resume) in ``workdir``.

    The one wiring of every training mode; only ``make_job`` differs.

    Args:
      config: a ``ConfigDict`` with the ``_common_defaults`` fields plus the mode's own.
      workdir: run directory; an existing checkpoint there is resumed (it wins over ``init_from``).
      make_job: ``(frozen_config, params_key, *, resuming) -> bert_jax.tasks.TrainingJob``;
        a ValueError it raises becomes a ``ConfigError``.
    Returns:
      The last logged train metrics plus ``step``, ``start_step`` (where the loop started:
      the resumed checkpoint's step, else 0), ``preempted`` and ``eval`` (the last
      evaluation's metrics, ``{}`` when none ran).
    """
    from bert_jax import partitioning as _p
    try:
        _p.maybe_initialize_distributed(config.distributed)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    import jax
    import jax.numpy as jnp
    from bert_jax import checkpointing, flops, metrics as metrics_lib, optim, partitioning, train

    cfg = ml_collections.FrozenConfigDict(config)
    # --- checks that need no compute
    try:
        mesh = partitioning.make_mesh(cfg.mesh_shape)
    except ValueError as e:
        raise ConfigError(f"{e} (config field mesh_shape)") from None
    dp = partitioning.data_parallel_size(mesh)
    gbs, nmb = cfg.global_batch_size, cfg.num_microbatches
    _check(gbs % nmb == 0, f"global_batch_size={gbs} is not divisible by num_microbatches={nmb}.")
    _check((gbs // nmb) % dp == 0,
           f"global_batch_size={gbs} / num_microbatches={nmb} = {gbs // nmb} is not divisible by the "
           f"data-parallel size {dp} (mesh data x fsdp); make it a multiple of {dp * nmb}.")
    _check(gbs % jax.process_count() == 0,
           f"global_batch_size={gbs} is not divisible by the {jax.process_count()} processes.")
    _check(cfg.model_dtype in ("float32", "bfloat16"),
           f"model_dtype={cfg.model_dtype!r}; use 'float32' or 'bfloat16'.")
    root = jax.random.PRNGKey(cfg.seed)
    params_key, dropout_key = jax.random.split(root)
    ckpt_dir = os.path.join(workdir, "checkpoints")

    def open_manager():
        return checkpointing.make_manager(ckpt_dir, keep=cfg.checkpoint.keep,
                                          keep_period=cfg.checkpoint.keep_period,
                                          async_save=cfg.checkpoint.async_save)

    # The manager creates its directory: open it only once the job is known to be valid.
    manager = open_manager() if os.path.isdir(ckpt_dir) else None
    latest = manager.latest_step() if manager else None
    try:
        job = make_job(cfg, params_key, resuming=latest is not None)
        tx, schedule = optim.make_optimizer(cfg.optim), optim.make_schedule(cfg.optim)
    except (ValueError, FileNotFoundError) as e:
        raise ConfigError(str(e)) from None
    task, model_cfg, loader = job.task, job.model_config, job.loader
    manager = manager or open_manager()
    rules = partitioning.rules_from_config(cfg.logical_axis_rules)
    abstract_params = partitioning.unbox(jax.eval_shape(task.init_params, params_key))
    if latest is not None:
        try:
            checkpointing.check_compatible(checkpointing.read_meta(manager, latest), abstract_params,
                                           workdir, latest)
        except ValueError as e:
            raise ConfigError(str(e)) from None

    # --- state: own checkpoint -> init_from -> scratch
    try:
        init_params = job.init_params() if (latest is None and job.init_params) else None
    except (ValueError, FileNotFoundError) as e:
        raise ConfigError(f"init_from={cfg.init_from}: {e}") from None
    try:
        state, shardings, _ = train.create_train_state(task, tx, mesh, rules, params_key, dropout_key,
                                                       params=init_params)
    except ValueError as e:
        if init_params is None:
            raise
        raise ConfigError(f"init_from={cfg.init_from}: {e}") from None
    if latest is not None:
        abstract = jax.eval_shape(lambda s: s, state)
        state, loader_state, _ = checkpointing.restore(manager, abstract, shardings, latest)
        if loader_state:
            loader.restore(loader_state)
        log.info("resumed from %s at step %d", workdir, latest)
    if jax.process_index() == 0:
        os.makedirs(workdir, exist_ok=True)
        resolved = json.loads(config.to_json_best_effort())
        resolved["resolved"] = {"mesh": dict(mesh.shape), "vocab_size": model_cfg.vocab_size,
                                "num_processes": jax.process_count(), "num_devices": jax.device_count(),
                                **({"data": job.info} if job.info else {})}
        _atomic_write_text(os.path.join(workdir, "config.json"), json.dumps(resolved, indent=2) + "\n")
    meta = {"param_shapes": checkpointing.param_shapes(state.params), "model": model_cfg.to_dict(),
            "mesh_shape": list(mesh.devices.shape),
            # the user-facing class, so `bert-jax convert` can export any step
            "target": type(task.module).__name__.removesuffix("Module")}
    step_fn, eval_fn = train.jit_steps(task, tx, schedule, mesh, shardings, nmb)
    start_step = int(state.step)  # the checkpoint's step on a resume, else 0

    # --- hooks
    total = int(cfg.optim.total_steps)
    writer = metrics_lib.MetricWriter(workdir, total, int(state.step))
    peak = cfg.peak_flops_per_device or flops.peak_flops_per_device(jax.devices()[0].device_kind)
    throughput = metrics_lib.Throughput(gbs, task.max_seq_length,
                                        task.flops_per_example(model_cfg) * gbs, jax.device_count(), peak)
    acc, last, stop = metrics_lib.Accumulator(), {}, {"flag": False}
    batches = train.GlobalBatches(loader, mesh)
    saved, evaluated = {"step": latest}, {"step": None, "values": {}}

    def save(step, state, force=False):
        if checkpointing.save(manager, step, state, batches.position, meta, force=force):
            saved["step"] = step

    def evaluate(step, state):
        sums = None
        for local in job.eval_batches():
            out = eval_fn(state.params, partitioning.make_global_batch(local, mesh))
            sums = out if sums is None else jax.tree_util.tree_map(jnp.add, sums, out)
        values = metrics_lib.to_host(task.metrics_from_sums(sums)) if sums is not None else {}
        writer.write(step, values, prefix="eval")
        evaluated.update(step=step, values=values)
        if job.results_name and jax.process_index() == 0:
            directory = os.path.join(workdir, "eval")
            os.makedirs(directory, exist_ok=True)
            record = {"step": int(step), "split": job.results_name, **values,
                      **{k: v for k, v in job.info.items() if k in ("task", "labels")},
                      **{k: job.info[job.results_name][k] for k in ("num_examples", "majority_baseline")
                         if k in job.info.get(job.results_name, {})}}
            _atomic_write_text(os.path.join(directory, f"{job.results_name}_results.json"),
                               json.dumps(record, indent=2) + "\n")

    def on_step(step, state, m):
        throughput.tick()
        if cfg.nan_check_every_steps and step % cfg.nan_check_every_steps == 0:
            train.check_finite(step, m)
        acc.add(m)
        if step % cfg.log_every_steps == 0 or step == total:
            values = acc.mean()
            train.check_finite(step, values)
            values.update(throughput.read())
            acc.reset()
            writer.write(step, values)
            last.clear()
            last.update(values)
        writer.advance(step)
        if cfg.eval_every_steps and job.eval_batches and step % cfg.eval_every_steps == 0:
            evaluate(step, state)
        if cfg.checkpoint.every_steps and step % cfg.checkpoint.every_steps == 0:
            train.check_finite(step, m)
            save(step, state)
        flag = stop["flag"]
        if jax.process_count() > 1:  # every process must agree before a collective save
            from jax.experimental import multihost_utils
            flag = bool(multihost_utils.process_allgather(jnp.int32(flag)).max())
        if flag:
            log.warning("SIGTERM: saving a checkpoint at step %d and stopping", step)
            if saved["step"] != step:
                save(step, state, force=True)
            raise train.StopTraining

    def on_end(step, state):
        if saved["step"] != step and step > 0:
            save(step, state, force=True)
        manager.wait_until_finished()
        if job.eval_at_end and job.eval_batches and not stop["flag"] and evaluated["step"] != step:
            evaluate(step, state)

    previous = signal.getsignal(signal.SIGTERM)
    if threading_main():
        signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("flag", True))
    try:
        state = train.fit(state, step_fn, batches, num_steps=total, hooks=[on_step], end_hooks=[on_end])
    finally:
        manager.wait_until_finished()
        writer.close()
        if hasattr(loader, "close"):
            loader.close()
        if threading_main():
            signal.signal(signal.SIGTERM, previous)
    return {**last, "step": int(state.step), "start_step": start_step, "preempted": stop["flag"],
            "eval": evaluated["values"]}


def run_pretraining(config, workdir: str, *, module=None, make_loader=None) -> dict:
    """Pretrain (or resume) in ``workdir``: ``run_training`` with ``pretraining_job``.

    Args:
      config: a pretraining ``ConfigDict`` (see ``pretrain_defaults``).
      workdir: run directory; an existing checkpoint there is resumed.
      module: optional Flax module to train instead of ``BertForPreTrainingModule``.
      make_loader: optional ``(shard_dir, config, seed) -> loader`` replacing
        ``open_loader`` (loaders follow the ``PretrainingLoader`` interface).
    Returns:
      The last logged metrics plus ``step`` and ``preempted``.
    """
    return run_training(config, workdir, pretraining_job(module, make_loader))


def run_finetuning(config, workdir: str) -> dict:
    """Fine-tune (or resume) in ``workdir``: ``run_training`` with the classification job.

    Args:
      config: a fine-tuning ``ConfigDict`` (see ``finetune_defaults``).
      workdir: run directory; its own checkpoint wins over ``init_from``.
    Returns:
      The last logged train metrics plus ``step``, ``preempted`` and ``eval`` (the final
      dev metrics: ``loss``, ``accuracy``), as also written to ``workdir/eval/dev_results.json``.
    """
    from bert_jax.tasks.classification import build_finetune_job
    return run_training(config, workdir, build_finetune_job)


def threading_main() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


# ----------------------------------------------------------------------------- entry points


def _main(argv: list[str], prog: str, run) -> int:
    args, overrides = _parse_args(argv, prog)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)  # Orbax logs every save step at INFO
    try:
        config = load_config(args.config, overrides)
    except (ValueError, FileNotFoundError) as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    from bert_jax.train import NonFiniteLoss
    try:
        result = run(config, args.workdir)
    except ConfigError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    except NonFiniteLoss as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 3
    return PREEMPTED_EXIT_CODE if result.get("preempted") else 0


def pretrain_main(argv: list[str]) -> int:
    """``bert-jax pretrain --config FILE --workdir W [--config.x=v ...]``."""
    return _main(argv, "bert-jax pretrain", run_pretraining)


def finetune_main(argv: list[str]) -> int:
    """``bert-jax finetune --config configs/finetune/TASK.py --workdir W --config.init_from=SRC``."""
    return _main(argv, "bert-jax finetune", run_finetuning)
