"""Fine-tuning and evaluation of a registered task, as a mode of the one training loop.

  finetune_job(cfg, ...)      the ``TrainingJob`` of a fine-tuning config: the task's splits,
                              its head on the encoder, warm start from ``init_from``, and an
                              evaluation that predicts every row of the eval split(s) once and
                              post-processes them on the host into the task's official metrics
  run_finetuning(cfg, W)      one run, or one per seed (``seeds``) under ``W/seed_<s>`` with
                              mean and standard deviation in ``W/eval/summary.json``
  run_evaluation(cfg, W, ...) ``bert-jax evaluate`` / ``predict``: any step of a run, or the
                              ``init_from`` model itself, on dev (metrics) or test (predictions)

Results land in ``W/eval/<split>_results.json`` and prediction / submission files in
``W/eval/<split>/``.
"""

from __future__ import annotations

import json
import logging
import math
import os

import numpy as np

from bert_jax.run_config import (ConfigError, check, check_same_run, check_same_vocabulary, init_from_error,
                                 input_settings, recorded_defaults, recorded_run, seed_runs)
from bert_jax.tasks import registry

log = logging.getLogger("bert_jax")


def _tokenizer(cfg):
    from bert_jax.tokenization import BertTokenizerFast
    from bert_jax.warm_start import resolve_vocab_file
    scratch = cfg.init_from == "scratch"
    vocab_file = resolve_vocab_file(cfg.data.vocab_file, "" if scratch else cfg.init_from)
    if not isinstance(cfg.data.lowercase, bool):  # the entry points resolve None (warm_start.inherit_casing)
        raise ValueError(f"data.lowercase={cfg.data.lowercase!r}: give True or False.")
    return BertTokenizerFast(vocab_file, do_lower_case=cfg.data.lowercase), vocab_file


def _model_config(cfg, task_def, vocab_size_of_tokenizer: int, *, check_source: bool):
    """``BertConfig`` of the run: the vocabulary size comes from ``init_from`` (or, from scratch,
    the tokenizer), and the tokenizer may never produce an id the embedding lacks."""
    from bert_jax.config import SHAPE_FIELDS, BertConfig
    from bert_jax.run_config import INHERITED_MODEL_FIELDS
    from bert_jax.warm_start import check_architecture, source_architecture
    scratch = cfg.init_from == "scratch"
    fields = cfg.model.to_dict()
    unset = [k for k in SHAPE_FIELDS if k != "vocab_size" and fields.get(k, 0) == -1]
    inherited = [k for k, v in INHERITED_MODEL_FIELDS.items() if k in fields and fields[k] == v]
    if unset and scratch:
        raise ValueError(f"init_from=scratch needs the model shape: set {', '.join(f'--config.model.{k}' for k in unset)}.")
    if unset or inherited:
        # scratch: BertConfig's defaults (gelu, 1e-12); a source that does not say: the same
        arch = {**BertConfig().to_dict(), **({} if scratch else source_architecture(cfg.init_from))}
        fields.update({k: int(arch[k]) for k in unset})
        fields.update({k: arch[k] for k in inherited})
    vocab_size = fields["vocab_size"]
    if vocab_size <= 0:
        vocab_size = vocab_size_of_tokenizer if scratch else int(source_architecture(cfg.init_from)["vocab_size"])
    if vocab_size_of_tokenizer > vocab_size:
        where = "" if scratch else f" (the size of init_from={cfg.init_from})"
        raise ValueError(
            f"the vocabulary {cfg.data.vocab_file or '(found with init_from)'} has {vocab_size_of_tokenizer} tokens "
            f"but the model embeds {vocab_size}{where}; token ids past {vocab_size - 1} would have no embedding. "
            "Use the vocabulary the checkpoint was trained with: --config.data.vocab_file=<its vocab.txt>.")
    try:
        model_cfg = BertConfig(**{**fields, "vocab_size": vocab_size,
                                  "num_labels": task_def.num_labels(cfg)})
    except (TypeError, ValueError) as e:
        raise ValueError(f"model config: {e}") from None
    check(cfg.data.max_seq_length > 3,  # [CLS] A [SEP] B [SEP] needs at least a token of each
          f"data.max_seq_length={cfg.data.max_seq_length} leaves no room for text next to [CLS] and [SEP]; "
          f"give a length in 4..{model_cfg.max_position_embeddings} (the configs use 128).")
    check(cfg.data.max_seq_length <= model_cfg.max_position_embeddings,
          f"data.max_seq_length={cfg.data.max_seq_length} exceeds model.max_position_embeddings="
          f"{model_cfg.max_position_embeddings}; lower it.")
    if check_source and not scratch:
        check_architecture(cfg.init_from, model_cfg)
    return model_cfg


class SplitEvaluator:
    """Predicts every row of the eval split(s) once and turns them into the task's metrics."""

    def __init__(self, cfg, task_def, splits: list):
        self.cfg, self.task_def, self.splits = cfg, task_def, splits

    def __call__(self, context, params, step, *, write_predictions: bool = True, model: str | None = None) -> dict:
        """Metrics of ``params`` (the run's at ``step``) on each split; each ``<split>_results.json``
        names ``model`` when given (what ``evaluate`` scored: a checkpoint or ``init_from``)."""
        import jax
        from bert_jax.evaluation import predict_rows
        values = {}
        for split in self.splits:
            outputs = predict_rows(context.steps.predict, params, split.arrays, context.task.predict_spec,
                                   context.mesh, context.global_batch_size)
            predictions, metrics = self.task_def.postprocess(self.cfg, split, outputs)
            if split.has_labels:
                metrics = {**metrics, **{f"baseline_{k}": v for k, v in self.task_def.baselines(self.cfg, split).items()}}
            if jax.process_index() == 0:
                directory = os.path.join(context.workdir, "eval")
                os.makedirs(directory, exist_ok=True)
                files = self.task_def.write_predictions(self.cfg, split, predictions,
                                                        os.path.join(directory, split.name)) \
                    if write_predictions else []
                record = {"step": int(step), **({"model": model} if model else {}),
                          "task": self.cfg.task, "split": split.name,
                          "num_examples": len(split.examples) or split.num_rows, **metrics,
                          "prediction_files": [os.path.relpath(f, context.workdir) for f in files],
                          # how the inputs were made (max_seq_length, ...): a score is of these
                          "inputs": input_settings(self.cfg.data)}
                from bert_jax.trainer import atomic_write_text
                atomic_write_text(os.path.join(directory, f"{split.name}_results.json"),
                                  json.dumps(record, indent=2) + "\n")
            prefix = "" if len(self.splits) == 1 else f"{split.name}/"
            values.update({prefix + k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))})
        return values


def _load_splits(cfg, task_def, names, tokenizer):
    out = []
    for name in names:
        split = task_def.load_split(cfg, name, tokenizer)
        check(split.num_rows > 0, f"task {cfg.task}: the {name} split is empty; check data.* "
              f"({', '.join(f'{k}={v!r}' for k, v in cfg.data.items() if 'dir' in k or 'file' in k)}).")
        out.append(split)
    return out


def _train_loader(cfg, arrays, split_info, hosts):
    """The training split's loader, bucketed by length when ``data.bucket_lengths`` is set, and the
    training data's padding fraction (recorded under ``info["train"]["padding"]`` and logged): at
    ``max_seq_length`` and, when bucketed, as the first epoch's batches compute it."""
    from bert_jax.tasks import bucketing
    from bert_jax.tasks.arrays import ArrayLoader
    buckets = tuple(cfg.data.get("bucket_lengths", ()))
    common = dict(seed=int(cfg.seed), manifest=split_info, **hosts)
    if not buckets:
        loader, padding = ArrayLoader(arrays, cfg.global_batch_size, **common), {}
        if "attention_mask" in arrays:
            fraction = bucketing.padding_fraction(arrays["attention_mask"])
            padding = {"at_max_seq_length": round(fraction, 4)}
            log.info("training data: %.1f%% of positions are padding at data.max_seq_length=%d "
                     "(data.bucket_lengths=(): not bucketed)", 100 * fraction, cfg.data.max_seq_length)
        return loader, padding
    loader = bucketing.BucketedArrayLoader(arrays, cfg.global_batch_size, bucket_lengths=buckets,
                                           group_batches=cfg.data.bucket_group_batches, **common)
    report = loader.padding_report(0)
    log.info("training data: %.1f%% of positions are padding at data.max_seq_length=%d, %.1f%% in length-"
             "bucketed batches (data.bucket_lengths=%s, data.bucket_group_batches=%d; epoch 0 batches per "
             "length: %s)", 100 * report["at_max_seq_length"], cfg.data.max_seq_length, 100 * report["bucketed"],
             tuple(report["bucket_lengths"]), report["bucket_group_batches"],
             ", ".join(f"{k}: {v}" for k, v in report["batches_per_length"].items()))
    return loader, report


def finetune_job(cfg, params_key, *, resuming: bool, train: bool = True, eval_split: str | None = None):
    """The fine-tuning ``TrainingJob`` of a ``finetune_defaults`` config.

    Args:
      cfg: the (frozen) run config.
      params_key: PRNG key the fresh head (and, for ``init_from='scratch'``, the encoder) comes from.
      resuming: the workdir holds its own checkpoint, so ``init_from`` is not read for weights.
      train: read the training split (False for ``evaluate`` / ``predict``).
      eval_split: the split to evaluate (default ``cfg.eval_split``).
    Raises:
      ValueError: unknown task, bad data, missing vocabulary, unusable ``init_from``.
    """
    import jax
    from bert_jax import partitioning
    from bert_jax.tasks import TrainingJob
    from bert_jax.tasks.heads import MODULE_CLASSES, build_head_task

    task_def = registry.get(cfg.task)
    if train:  # before any data is read
        from bert_jax.tasks.bucketing import check_head
        check_head(cfg.task, task_def.head, cfg.data.get("bucket_lengths", ()))
    if not cfg.init_from:
        raise ValueError("init_from is empty: pass --config.init_from=PRETRAIN_WORKDIR_OR_MODEL_DIR "
                         "(or init_from=scratch for a randomly initialised baseline).")
    from data_pipeline.shards import vocab_hash
    from data_pipeline.tokens import vocab_tokens
    tokenizer, vocab_file = _tokenizer(cfg)
    model_cfg = _model_config(cfg, task_def, len(tokenizer.get_vocab()), check_source=not resuming)
    train_split = _load_splits(cfg, task_def, ["train"], tokenizer)[0] if train else None
    eval_names = task_def.eval_splits(cfg, eval_split or cfg.eval_split)
    eval_splits = _load_splits(cfg, task_def, eval_names, tokenizer)
    num_choices = int(eval_splits[0].arrays["input_ids"].shape[1]) if task_def.head == "multiple_choice" else 0
    head = build_head_task(task_def.head, model_cfg, cfg, num_labels=task_def.num_labels(cfg),
                           num_choices=num_choices)
    hosts = dict(process_index=jax.process_index(), process_count=jax.process_count())
    info = {"task": cfg.task, "vocab_file": vocab_file, "vocab_hash": vocab_hash(vocab_tokens(tokenizer.get_vocab())),
            "labels": task_def.label_names(cfg)}
    total_steps, loader = None, None
    if train_split is not None:
        arrays = {k: train_split.arrays[k] for k in head.batch_spec if k in train_split.arrays}
        loader, padding = _train_loader(cfg, arrays, train_split.info, hosts)
        info["train"] = {**train_split.info, **({"padding": padding} if padding else {})}
        if cfg.optim.total_steps <= 0:
            total_steps = max(1, math.ceil(cfg.num_epochs * loader.steps_per_epoch))
    for split in eval_splits:
        info[split.name] = split.info

    def init_params():
        if cfg.init_from == "scratch":
            log.warning("init_from=scratch: every parameter, the encoder included, is randomly initialised "
                        "(a from-scratch baseline, not a fine-tuned model).")
            return None
        from bert_jax.warm_start import load_init_params
        fresh = partitioning.unbox(jax.jit(head.init_params)(params_key))
        return load_init_params(cfg.init_from, model_cfg, MODULE_CLASSES[task_def.head], fresh,
                                scan_layers=cfg.scan_layers, training=train)[0]

    return TrainingJob(task=head, model_config=model_cfg, loader=loader,
                       evaluate=SplitEvaluator(cfg, task_def, eval_splits), init_params=init_params,
                       eval_at_end=True, total_steps=total_steps, info=info)


def _with_model_settings(config, workdir: str):
    """``config`` with what it leaves to the model resolved: a copy when anything was, so a
    caller's config is left as given. A run resumed (or evaluated) from its own checkpoint in
    ``workdir`` keeps the ``model.hidden_act`` / ``layer_norm_eps`` its config.json states (a run
    of an older bert-jax, which stated gelu, would have gone on with init_from's) and its
    ``data.lowercase``; a new run (a config.json with no checkpoint is not one to resume) takes the casing
    ``init_from`` declares (``warm_start.inherit_casing``)."""
    import ml_collections
    from bert_jax import checkpointing
    from bert_jax.run_config import INHERITED_MODEL_FIELDS
    from bert_jax.warm_start import inherit_casing
    own = workdir if workdir and checkpointing.saved_steps(os.path.join(workdir, "checkpoints")) else ""
    recorded = (recorded_run(own) if own else None) or {}
    # a run recorded by an older bert-jax states them (gelu, 1e-12); a run that left them to
    # init_from records "" / -1 and keeps its record as it is
    stated = recorded.get("model") if isinstance(recorded.get("model"), dict) else {}
    fill = {k: stated[k] for k, unset in INHERITED_MODEL_FIELDS.items()
            if config.model.get(k) == unset and isinstance(stated.get(k), type(unset)) and stated[k] != unset}
    if config.data.get("lowercase", False) is not None and not fill:
        return config
    config = ml_collections.ConfigDict(config.to_dict())
    config.model.update(fill)
    said = inherit_casing(config, own)
    if said and not own and not config.data.lowercase:  # the default, True, goes unsaid
        log.info("%s (a cased model; pass --config.data.lowercase=True to lower-case anyway)", said)
    return config


def run_finetuning(config, workdir: str) -> dict:
    """Fine-tune (or resume) in ``workdir``; with ``seeds``, one run per seed and a summary.

    Returns:
      One run: ``run_training``'s result (``eval`` = the final metrics). Several seeds:
      ``{"runs": {seed: result}, "summary": {metric: {"mean", "std", "values"}}, "exit_code", ...}``.
    """
    from bert_jax.trainer import atomic_write_text, check_workdir, run_training
    total = config.optim.total_steps
    # any other value <= 0 used to mean "num_epochs" silently (0 trained 129 steps)
    check(total == -1 or total > 0, f"optim.total_steps={total}: give a positive number of steps, or -1 "
                                    "(the default) to train num_epochs epochs.")
    check(total > 0 or config.num_epochs > 0, f"num_epochs={config.num_epochs} with optim.total_steps=-1: give a "
                                              "positive number of epochs (fractions such as 0.5 work), or "
                                              "a positive optim.total_steps.")
    config = _with_model_settings(config, workdir)
    if not config.seeds:
        return run_training(config, workdir, finetune_job)
    check_workdir(workdir)  # the runs go to workdir/seed_<s>, which run_training checks
    runs = {}
    for seed in config.seeds:
        one = config.copy_and_resolve_references()
        one.seed, one.seeds = int(seed), ()
        one = _with_model_settings(one, os.path.join(workdir, f"seed_{seed}"))
        log.info("seed %d -> %s", seed, os.path.join(workdir, f"seed_{seed}"))
        # a seed finished before a later one stopped on a NaN: the advised lower learning rate
        # reruns the command, and trains no step of the finished seed
        result = run_training(one, os.path.join(workdir, f"seed_{seed}"), finetune_job, finished_keeps_record=True)
        runs[int(seed)] = result
        if result.get("preempted"):
            return {"runs": runs, "preempted": True, "exit_code": result["exit_code"], "step": result["step"]}
    keys = sorted(set.intersection(*(set(r["eval"]) for r in runs.values())))
    summary = {}
    for k in keys:
        values = [float(runs[s]["eval"][k]) for s in runs]
        summary[k] = {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                      "values": values}
    import jax
    if jax.process_index() == 0:
        os.makedirs(os.path.join(workdir, "eval"), exist_ok=True)
        atomic_write_text(os.path.join(workdir, "eval", "summary.json"), json.dumps(
            {"task": config.task, "seeds": list(runs), "metrics": summary}, indent=2) + "\n")
    return {"runs": runs, "summary": summary, "preempted": False, "exit_code": 0,
            "step": max(r["step"] for r in runs.values())}


def results_table(summary_or_eval: dict, title: str) -> str:
    """A plain-text table of metrics (a single run's, or mean +- std over seeds), values as the
    task reports them (GLUE fractions, SQuAD percentages)."""
    lines = [title]
    for k, v in summary_or_eval.items():
        if isinstance(v, dict):
            lines.append(f"  {k:<32} {v['mean']:10.4f} +- {v['std']:.4f}  (n={len(v['values'])})")
        elif isinstance(v, (int, float)):
            lines.append(f"  {k:<32} {v:10.4f}")
    return "\n".join(lines)


def _scored_model(init_from: str) -> str:
    """What evaluating ``init_from`` scores: for a training run (or its ``checkpoints/``), the
    folder of its latest step, which stays what was scored when the run trains on; else the
    model directory."""
    from bert_jax import checkpointing
    path = os.path.abspath(init_from)
    ckpt_dir = os.path.join(path, "checkpoints") if os.path.isdir(os.path.join(path, "checkpoints")) else path
    steps = checkpointing.saved_steps(ckpt_dir)
    return os.path.join(ckpt_dir, str(max(steps))) if steps else path


def _init_from_run(init_from: str) -> str:
    """The run folder of ``init_from`` given as a run or as its ``checkpoints/`` folder."""
    path = os.path.normpath(init_from)
    return os.path.dirname(path) if os.path.basename(path) == "checkpoints" else path


def _check_init_from_task(cfg, recorded: dict | None) -> None:
    """Say so when ``init_from`` is a fine-tuning run (``recorded``: its config.json, None for a
    model directory) of another task: its head was scored on this task's data with nothing said
    (an RTE classifier has SST-2's shape). Scoring it is allowed: tasks that share their labels
    (QNLI and RTE) are scored across, zero-shot, on purpose."""
    if recorded is None:
        return
    task = recorded.get("task")
    if recorded.get("mode") == "finetune" and task and task != cfg.task:
        log.warning("init_from=%s is a task=%r fine-tuning run (its config.json): its %s head is scored on %s data "
                    "as it is; to fine-tune it on %s first, pass it as --config.init_from to bert-jax finetune.",
                    cfg.init_from, task, task, cfg.task, cfg.task)


def _no_checkpoint(workdir: str) -> str:
    """Why ``workdir`` (no checkpoint, no ``init_from``) has nothing to evaluate, and what instead."""
    if os.path.exists(os.path.join(workdir, "config.json")):
        return (f"{workdir} holds a run (its config.json) that has saved no checkpoint yet: a run still going "
                "saves one every checkpoint.every_steps steps and at its end; evaluate it then.")
    return (f"{workdir} holds no checkpoint and init_from is empty; evaluate a fine-tuning workdir, or pass "
            "--config.init_from=MODEL_DIR to evaluate a model directory as it is.")


def run_evaluation(config, workdir: str, *, split: str = "dev", step: int | None = None,
                   write_predictions: bool = True, given=None) -> dict:
    """Evaluate (or predict) the model of ``workdir`` -- its checkpoint at ``step`` (default the
    latest), or ``init_from`` itself when the workdir has no checkpoint -- on ``split``.

    A run's own data paths are used for empty ones, and with ``given`` (the fields set on the
    command line) its input settings for the ``data.*`` fields not in it
    (``run_config.recorded_defaults``).

    Returns ``{split_name/metric: value}`` (metrics only for labelled splits); writes
    ``W/eval/<split>_results.json`` and the task's prediction files under ``W/eval/<split>/``.
    """
    import ml_collections
    from bert_jax import partitioning as _p
    try:
        _p.maybe_initialize_distributed(config.distributed)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    import jax
    from bert_jax import checkpointing, optim, partitioning, train
    from bert_jax.trainer import RunContext, check_workdir

    check_workdir(workdir)
    ckpt_dir = os.path.join(workdir, "checkpoints")
    has_ckpt = bool(checkpointing.saved_steps(ckpt_dir))
    if has_ckpt:
        recorded = recorded_run(workdir)
        check_same_run(config, workdir, "evaluate", recorded)  # before anything is taken from that run
        config = ml_collections.ConfigDict(config.to_dict())
        filled = recorded_defaults(config, recorded, given)
        if filled:
            log.info("as %s records them: %s", os.path.join(workdir, "config.json"), ", ".join(filled))
    # a checkpoint's casing is its run's; a model scored as it is: the one init_from declares
    config = _with_model_settings(config, workdir)
    cfg = ml_collections.FrozenConfigDict(config)
    if not has_ckpt:
        seeds = seed_runs(workdir)  # a multi-seed run: its checkpoints are in its seed runs
        if seeds:
            raise ConfigError(f"{workdir} is a multi-seed run: each of its runs ({', '.join(seeds)}) has its own "
                              f"checkpoints; evaluate one with --workdir {os.path.join(workdir, seeds[0])} "
                              "(and so on for the others).")
        check(cfg.init_from and cfg.init_from != "scratch", _no_checkpoint(workdir))
        scored_run = _init_from_run(cfg.init_from)
        recorded = recorded_run(scored_run)  # None for a model directory
        _check_init_from_task(cfg, recorded)
    try:
        mesh = partitioning.make_mesh(cfg.mesh_shape)
        root = jax.random.PRNGKey(cfg.seed)
        params_key, dropout_key = jax.random.split(root)
        job = finetune_job(cfg, params_key, resuming=has_ckpt, train=False, eval_split=split)
    except (ValueError, FileNotFoundError) as e:
        raise ConfigError(str(e)) from None
    check_same_vocabulary(recorded, job.info, workdir if has_ckpt else scored_run, "evaluate")
    check(cfg.global_batch_size % partitioning.data_parallel_size(mesh) == 0,
          f"global_batch_size={cfg.global_batch_size} is not divisible by the data-parallel size "
          f"{partitioning.data_parallel_size(mesh)}.")
    rules = partitioning.rules_from_config(cfg.logical_axis_rules)
    tx = optim.make_optimizer(ml_collections.ConfigDict({**cfg.optim.to_dict(), "total_steps": 1}))
    if has_ckpt:
        state, shardings, _ = train.create_train_state(job.task, tx, mesh, rules, params_key, dropout_key)
        manager = checkpointing.make_manager(ckpt_dir)
        chosen = manager.latest_step() if step is None else int(step)
        if chosen not in manager.all_steps():
            raise checkpointing.missing_step(ckpt_dir, step, manager.all_steps())
        try:
            state, _, _ = checkpointing.restore(manager, jax.eval_shape(lambda s: s, state), shardings, chosen,
                                                 job.model_config.to_dict())
        except checkpointing.CheckpointError:
            raise  # damaged or unreadable: reported by the launcher, like the trainer's
        except ValueError as e:  # a checkpoint of another model shape
            raise ConfigError(str(e)) from None
        manager.close()
        model = os.path.abspath(os.path.join(ckpt_dir, str(chosen)))
    else:
        try:
            params = job.init_params()
        except ValueError as e:
            raise init_from_error(cfg.init_from, e) from None
        state, shardings, _ = train.create_train_state(job.task, tx, mesh, rules, params_key, dropout_key,
                                                       params=params)
        chosen, model = 0, _scored_model(cfg.init_from)
    log.info("scoring %s on the %s split", model, split)
    steps = train.jit_steps(job.task, tx, lambda s: 0.0, mesh, shardings, 1)
    context = RunContext(steps=steps, mesh=mesh, workdir=workdir, global_batch_size=cfg.global_batch_size,
                         task=job.task)
    return job.evaluate(context, state.params, chosen, write_predictions=write_predictions, model=model)
