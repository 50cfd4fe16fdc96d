"""``bert-jax pretrain`` / ``bert-jax finetune``: configs, overrides and the pretraining run.

The only module that reads command-line flags. It
  * loads ``--config FILE[:ARG]`` (a Python file whose ``get_config([arg])``
    returns an ``ml_collections.ConfigDict``) and applies ``--config.a.b=value``
    overrides; an unknown field is an error that lists close matches;
  * initialises ``jax.distributed`` from the config or the environment;
  * validates everything that can be checked before compute (mesh, batch,
    shards, existing checkpoints), then wires mesh, model, optimizer, loader
    and checkpoints into ``bert_jax.train.fit`` (``run_pretraining``).

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


def pretrain_defaults() -> ml_collections.ConfigDict:
    """Every pretraining config field with its default; recipes override a few.

    Fields (all overridable as ``--config.<path>=<value>``):
      model.*                  BertConfig fields (Hugging Face names); vocab_size -1 = from the shards
      model_dtype              compute dtype: "float32" or "bfloat16" (params stay float32)
      remat_policy             "none", "full", "dots" ... (see bert_jax.modeling.layers.remat_policy_fn)
      scan_layers              scan over encoder layers (faster compiles for deep models)
      use_nsp                  add the next-sentence loss
      data.train_dir/eval_dir  shard directories from ``bert-jax data build``
      data.max_seq_length, data.max_predictions_per_seq  must equal the shards' manifest
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
    c.use_nsp = True
    c.data = ml_collections.ConfigDict(dict(
        train_dir="", eval_dir="", max_seq_length=128, max_predictions_per_seq=20,
        dynamic_masking=False, prefetch=2))
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


# ----------------------------------------------------------------------------- config files


def load_config(path: str, overrides: list[str] = ()) -> ml_collections.ConfigDict:
    """Load ``path[:arg]`` and apply ``a.b=value`` overrides (values parsed as Python literals)."""
    arg = None
    if ":" in path and not os.path.exists(path):
        path, arg = path.rsplit(":", 1)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file {path!r} not found; pass e.g. --config configs/pretrain/tiny.py")
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
            hint = f" Did you mean {', '.join(close)}?" if close else " See bert_jax.launch.pretrain_defaults for all fields."
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


def run_pretraining(config, workdir: str, *, module=None, make_loader=None) -> dict:
    """Build everything from ``config`` and train (or resume) in ``workdir``.

    Args:
      config: a pretraining ``ConfigDict`` (see ``pretrain_defaults``).
      workdir: run directory; an existing checkpoint there is resumed.
      module: optional Flax module to train instead of ``BertForPreTrainingModule``.
      make_loader: optional ``(shard_dir, config, seed) -> loader`` replacing
        ``open_loader`` (loaders follow the ``PretrainingLoader`` interface).
    Returns:
      The last logged metrics plus ``step`` and ``preempted``.
    """
    from bert_jax import partitioning as _p
    try:
        _p.maybe_initialize_distributed(config.distributed)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    import jax
    import jax.numpy as jnp
    from bert_jax import checkpointing, flops, metrics as metrics_lib, optim, partitioning, train
    from bert_jax.tasks import PretrainingTask
    from bert_jax.tasks.pretraining import open_loader

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
    _check(bool(cfg.data.train_dir) or make_loader is not None,
           "data.train_dir is empty; pass --config.data.train_dir=SHARD_DIR (from 'bert-jax data build').")
    root = jax.random.PRNGKey(cfg.seed)
    params_key, dropout_key = jax.random.split(root)
    data_seed = int(cfg.seed)
    opener = make_loader or (lambda d, c, seed: open_loader(d, c, seed=seed))
    try:
        loader = opener(cfg.data.train_dir, cfg, data_seed)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    vocab_size = cfg.model.vocab_size if cfg.model.vocab_size > 0 else int(loader.manifest["vocab_size"])
    from bert_jax.config import BertConfig
    _check(cfg.model_dtype in ("float32", "bfloat16"),
           f"model_dtype={cfg.model_dtype!r}; use 'float32' or 'bfloat16'.")
    _check(cfg.data.max_seq_length <= cfg.model.max_position_embeddings,
           f"data.max_seq_length={cfg.data.max_seq_length} exceeds model.max_position_embeddings="
           f"{cfg.model.max_position_embeddings}; raise the latter or use shorter shards.")
    try:
        model_cfg = BertConfig(**{**cfg.model.to_dict(), "vocab_size": vocab_size})
    except (TypeError, ValueError) as e:
        raise ConfigError(f"model config: {e}") from None
    if module is None:
        from bert_jax.modeling import BertForPreTrainingModule
        dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[cfg.model_dtype]
        module = BertForPreTrainingModule(model_cfg, dtype=dtype, param_dtype=jnp.float32,
                                          remat_policy=cfg.remat_policy, scan_layers=cfg.scan_layers)
    task = PretrainingTask(module, cfg.data.max_seq_length, cfg.data.max_predictions_per_seq,
                           use_nsp=cfg.use_nsp)
    try:
        tx, schedule = optim.make_optimizer(cfg.optim), optim.make_schedule(cfg.optim)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    rules = partitioning.rules_from_config(cfg.logical_axis_rules)
    manager = checkpointing.make_manager(os.path.join(workdir, "checkpoints"),
                                         keep=cfg.checkpoint.keep, keep_period=cfg.checkpoint.keep_period,
                                         async_save=cfg.checkpoint.async_save)
    latest = manager.latest_step()
    abstract_params = partitioning.unbox(jax.eval_shape(task.init_params, params_key))
    if latest is not None:
        try:
            checkpointing.check_compatible(checkpointing.read_meta(manager, latest), abstract_params,
                                           workdir, latest)
        except ValueError as e:
            raise ConfigError(str(e)) from None

    # --- state: own checkpoint -> init_from -> scratch
    init_params = _load_init_params(cfg.init_from, cfg.scan_layers) if (latest is None and cfg.init_from) else None
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
        resolved["resolved"] = {"mesh": dict(mesh.shape), "vocab_size": vocab_size,
                                "num_processes": jax.process_count(), "num_devices": jax.device_count()}
        _atomic_write_text(os.path.join(workdir, "config.json"), json.dumps(resolved, indent=2) + "\n")
    meta = {"param_shapes": checkpointing.param_shapes(state.params), "model": model_cfg.to_dict(),
            "mesh_shape": list(mesh.devices.shape)}
    step_fn, eval_fn = train.jit_steps(task, tx, schedule, mesh, shardings, nmb)

    # --- hooks
    total = int(cfg.optim.total_steps)
    writer = metrics_lib.MetricWriter(workdir, total, int(state.step))
    peak = cfg.peak_flops_per_device or flops.peak_flops_per_device(jax.devices()[0].device_kind)
    throughput = metrics_lib.Throughput(gbs, cfg.data.max_seq_length,
                                        task.flops_per_example(model_cfg) * gbs, jax.device_count(), peak)
    acc, last, stop = metrics_lib.Accumulator(), {}, {"flag": False}
    batches = train.GlobalBatches(loader, mesh)
    saved = {"step": latest}

    def save(step, state, force=False):
        if checkpointing.save(manager, step, state, batches.position, meta, force=force):
            saved["step"] = step

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
        if cfg.eval_every_steps and cfg.data.eval_dir and step % cfg.eval_every_steps == 0:
            writer.write(step, evaluate(state), prefix="eval")
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

    def evaluate(state):
        eval_loader = opener(cfg.data.eval_dir, cfg, data_seed + 1)
        sums = None
        for i, local in enumerate(eval_loader):
            if i >= cfg.eval_steps:
                break
            out = eval_fn(state.params, partitioning.make_global_batch(local, mesh))
            sums = out if sums is None else jax.tree_util.tree_map(jnp.add, sums, out)
        if hasattr(eval_loader, "close"):
            eval_loader.close()
        return metrics_lib.to_host(task.metrics_from_sums(sums)) if sums is not None else {}

    def on_end(step, state):
        if saved["step"] != step and step > 0:
            save(step, state, force=True)
        manager.wait_until_finished()

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
    return {**last, "step": int(state.step), "preempted": stop["flag"]}


def threading_main() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


# ----------------------------------------------------------------------------- entry points


def pretrain_main(argv: list[str]) -> int:
    """``bert-jax pretrain --config FILE --workdir W [--config.x=v ...]``."""
    args, overrides = _parse_args(argv, "bert-jax pretrain")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)  # Orbax logs every save step at INFO
    try:
        config = load_config(args.config, overrides)
    except (ValueError, FileNotFoundError) as e:
        print(f"bert-jax pretrain: {e}", file=sys.stderr)
        return 2
    from bert_jax.train import NonFiniteLoss
    try:
        result = run_pretraining(config, args.workdir)
    except ConfigError as e:
        print(f"bert-jax pretrain: {e}", file=sys.stderr)
        return 2
    except NonFiniteLoss as e:
        print(f"bert-jax pretrain: {e}", file=sys.stderr)
        return 3
    return PREEMPTED_EXIT_CODE if result.get("preempted") else 0


def finetune_main(argv: list[str]) -> int:
    """``bert-jax finetune``: fine-tuning tasks plug into the same loop; none is registered yet."""
    parser = argparse.ArgumentParser(prog="bert-jax finetune")
    parser.add_argument("--config")
    parser.add_argument("--workdir")
    parser.parse_known_args(argv)
    print("bert-jax finetune: no fine-tuning tasks are available yet in this version; "
          "use 'bert-jax pretrain'.", file=sys.stderr)
    return 2
