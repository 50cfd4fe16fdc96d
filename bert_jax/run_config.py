"""Run configs as data: every field with its default, loading config files, overrides.

Imports no JAX: config files (``configs/**.py``) import this module, and so do
the CLI and the docs generator. A config file is a Python file whose
``get_config([arg])`` returns an ``ml_collections.ConfigDict``; ``--config.a.b=v``
overrides are applied on top, and an unknown field is an error listing close
matches.

  pretrain_defaults()        every pretraining field
  finetune_defaults(task)    every fine-tuning field, with the task's ``data.*`` block
                             and recipe defaults (``bert_jax.tasks.registry``)
  read_recorded(workdir)     the config a run recorded in ``workdir/config.json``
  recorded_run(workdir)      the same, or None when there is none readable
  check_same_run(cfg, W, ..) a config may resume or evaluate only a run of its own task
  recorded_defaults(c, run)  what a config leaves unset, from the run it records
  recorded_vocab_file(W)     the vocabulary that run was trained with
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import json
import os
import re
import shlex
from typing import NamedTuple

import ml_collections

from bert_jax.config import SHAPE_FIELDS

# Fine-tuning fields that default to "that of init_from" (like the shape fields' -1): the model's
# function, which a config should not restate for each checkpoint it starts from.
INHERITED_MODEL_FIELDS = {"hidden_act": "", "layer_norm_eps": -1.0}
# Fields whose default None means "that of init_from"; given, they take True/False.
_BOOL_OR_NONE = ("data.lowercase",)


class ConfigError(ValueError):
    """A setting that cannot work; the message says what to change."""


def common_defaults() -> ml_collections.ConfigDict:
    """The fields every training mode shares (model, optimizer, mesh, checkpoints, logging).

    Fields (all overridable as ``--config.<path>=<value>``):
      model.*                  BertConfig fields (Hugging Face names); vocab_size -1 = from the data
      model_dtype              compute dtype: "float32" or "bfloat16" (params stay float32)
      remat_policy             "none", "full", or a jax.checkpoint_policies name, e.g. "dots_saveable"
      scan_layers              scan over encoder layers (faster compiles for deep models)
      global_batch_size        sequences per optimizer step, over all hosts
      num_microbatches         gradient accumulation steps per optimizer step
      optim.*                  see bert_jax.optim (name, learning_rate, total_steps, warmup ...)
      mesh_shape               (data, fsdp, tensor); -1 = the remaining devices
      logical_axis_rules       () = bert_jax.partitioning.DEFAULT_RULES, else ((logical, mesh), ...)
      checkpoint.*             every_steps, keep (last K), keep_period (also keep every M), async_save
      log_every_steps          fetch, check (NaN/Inf) and write metrics every N steps
      eval_every_steps         evaluate every N steps (0 = only where the mode evaluates at the end)
      eval_steps               batches per pretraining evaluation
      stop_check_every_steps   multi-host: agree on a stop signal every N steps (0 = at log steps);
                               a single process checks its own signal flag every step for free
      init_from                a bert-jax workdir/checkpoint dir, a Hugging Face model dir or an original TF BERT folder ("" = none)
      distributed.*            coordinator_address, num_processes, process_id (-1 = from env);
                               initialize: "auto" (when the env says multi-host), "yes", "no"
      peak_flops_per_device    override the MFU peak (FLOP/s); 0 = from bert_jax.flops table
      compilation_cache_dir    persistent XLA compilation cache ("" = off; bert_jax.compile_cache)
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
    c.eval_at_start = False
    c.eval_steps = 20
    c.stop_check_every_steps = 0
    c.init_from = ""
    c.distributed = ml_collections.ConfigDict(dict(
        initialize="auto", coordinator_address="", num_processes=-1, process_id=-1))
    c.peak_flops_per_device = 0.0
    c.compilation_cache_dir = ""
    return c


def pretrain_defaults() -> ml_collections.ConfigDict:
    """Every pretraining config field with its default; recipes override a few.

    The shared fields are described in ``common_defaults``; pretraining adds:
      use_nsp                  add the next-sentence loss
      data.train_dir/eval_dir  shard directories from ``bert-jax data build``
      data.max_seq_length, data.max_predictions_per_seq  must equal the shards' manifest
      data.dynamic_masking, data.prefetch  loader options
      data.packing, data.max_instances_per_row, data.max_predictions_per_row  sequence packing
                               (docs/packing.md); 0 = the defaults of data_pipeline.packing
    model.vocab_size -1 takes the vocabulary size from the shards.
    """
    c = common_defaults()
    c.mode = "pretrain"
    c.use_nsp = True
    c.data = ml_collections.ConfigDict(dict(
        train_dir="", eval_dir="", max_seq_length=128, max_predictions_per_seq=20,
        dynamic_masking=False, prefetch=2))
    c.data.packing = False
    c.data.max_instances_per_row = 0
    c.data.max_predictions_per_row = 0
    return c


def finetune_defaults(task: str = "docs_section") -> ml_collections.ConfigDict:
    """Every fine-tuning config field with its default, for a registered ``task``.

    Fine-tuning adds to ``common_defaults``:
      task                     a registered task (``bert_jax.tasks.registry.task_names()``)
      seeds                    () = one run with ``seed``; (0, 1, 2) = one run per seed under
                               ``<workdir>/seed_<s>``, summarised in ``<workdir>/eval/summary.json``
      num_epochs               training epochs; turned into optim.total_steps when that is -1
      eval_split               the split evaluated during and after training ("dev")
      data.vocab_file          "" = the vocabulary that came with init_from
      data.lowercase           tokenizer lower-casing (uncased vocabularies); None = what init_from
                               declares (its tokenizer files, its run's config.json, an original
                               TensorFlow release's name), else True
      data.max_seq_length      tokens per example (truncated / padded)
      data.bucket_lengths, data.bucket_group_batches  length-bucketed training batches
                               (bert_jax.tasks.bucketing; () = off)
      model.<shape fields>     -1 = the shape of ``init_from`` (vocab_size, hidden_size, layers, heads, ...)
      model.hidden_act, model.layer_norm_eps  "" / -1 = those of ``init_from`` (scratch: gelu, 1e-12)
      data.*                   the task's own fields (see its module's ``config_defaults``)
    ``init_from`` is required ("scratch" = a randomly initialised encoder); the workdir's own
    checkpoint still wins over it on restart. The eval split is always evaluated at the end and
    written to ``<workdir>/eval/<split>_results.json``.
    """
    from bert_jax.tasks import registry
    c = common_defaults()
    c.mode = "finetune"
    c.task = task
    c.seeds = ()
    c.num_epochs = 3.0
    c.eval_split = "dev"
    # None = the casing init_from declares (its tokenizer files, its run), else True
    c.data = ml_collections.ConfigDict(dict(vocab_file="", lowercase=None, max_seq_length=128))
    # off by default: bucketing changes the batch composition, the steps per epoch (every example
    # once) and the dropout masks, so a run's results change when it is turned on
    c.data.bucket_lengths = ()
    c.data.bucket_group_batches = 16
    # -1 = the shape of init_from (a scratch run must set these)
    for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                 "max_position_embeddings"):
        c.model[name] = -1
    # the function of init_from too: an original TensorFlow model computes GELU by its tanh form
    # and was fine-tuned with the exact one, unsaid (INHERITED_MODEL_FIELDS)
    c.model.update(INHERITED_MODEL_FIELDS)
    c.model_dtype = "float32"
    c.global_batch_size = 32
    c.optim.update(learning_rate=2e-5, total_steps=-1, warmup_steps=-1, warmup_fraction=0.1)
    c.checkpoint.every_steps = 1000
    c.log_every_steps = 50
    c.eval_steps = 0
    registry.get(task).config_defaults(c)
    return c


# ----------------------------------------------------------------------------- config files


def load_config(path: str, overrides: list[str] = ()) -> ml_collections.ConfigDict:
    """Load ``path[:arg]`` and apply ``a.b=value`` overrides (values parsed as Python literals)."""
    arg = None
    if ":" in path and not os.path.exists(path):
        path, arg = path.rsplit(":", 1)
    if os.path.isdir(path):
        files = sorted(n for n in os.listdir(path) if n.endswith(".py") and not n.startswith("_"))
        example = f", e.g. --config {os.path.join(path, files[0])}" if files else ""
        raise ConfigError(f"config file {path!r} is a directory; pass one config file (a .py with a "
                          f"get_config()){example}")
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path!r} not found; pass e.g. --config configs/pretrain/tiny.py "
                          "or --config configs/glue/sst2.py")
    spec = importlib.util.spec_from_file_location(f"_bert_jax_config_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise ConfigError(f"config file {path}:{e.lineno}: {e.msg}; fix the Python syntax there.") from None
    except Exception as e:  # noqa: BLE001 -- the user's file: name it and where it failed, not a traceback
        raise ConfigError(f"config file {path} failed to run ({_where(e, path)}{type(e).__name__}: {e}); "
                          "fix it, or start from a bundled config in configs/.") from None
    if not hasattr(module, "get_config"):
        raise ConfigError(f"{path} defines no get_config(); a config file must return a ConfigDict from it.")
    try:
        config = module.get_config(arg) if arg is not None else module.get_config()
    except TypeError as e:
        at_call = e.__traceback__.tb_next is None  # raised by the call itself: its signature, not its body
        if at_call and arg is not None:
            raise ConfigError(f"{path}: get_config() takes no argument, but --config gave it {arg!r} "
                              f"(after the ':'); pass --config {path} alone.") from None
        if at_call:
            raise ConfigError(f"{path}: get_config() needs an argument ({e}); pass it after a colon, "
                              f"--config {path}:ARG.") from None
        raise ConfigError(f"config file {path}: get_config() failed ({_where(e, path)}TypeError: {e}); "
                          "fix it, or start from a bundled config in configs/.") from None
    except Exception as e:  # noqa: BLE001 -- as above
        raise ConfigError(f"config file {path}: get_config() failed ({_where(e, path)}{type(e).__name__}: {e}); "
                          "fix it, or start from a bundled config in configs/.") from None
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(f"{path}: get_config() returned a {type(config).__name__}, not an "
                          "ml_collections.ConfigDict; build it with run_config.pretrain_defaults() or "
                          "finetune_defaults(task) and return that.")
    for item in overrides:
        apply_override(config, item)
    return config


def _where(error: BaseException, path: str) -> str:
    """``"line N: "`` of the deepest traceback frame inside ``path``, or ""."""
    tb, line = error.__traceback__, None
    while tb is not None:
        if os.path.abspath(tb.tb_frame.f_code.co_filename) == os.path.abspath(path):
            line = tb.tb_lineno
        tb = tb.tb_next
    return f"line {line}: " if line else ""


def all_keys(config, prefix="") -> list[str]:
    """Every dotted field path of a (nested) config."""
    keys = []
    for k, v in config.items():
        keys.append(prefix + k)
        if isinstance(v, (ml_collections.ConfigDict, dict)):
            keys += all_keys(v, prefix + k + ".")
    return keys


def apply_override(config: ml_collections.ConfigDict, item: str) -> None:
    """Apply one ``a.b.c=value``; unknown fields and wrong types are errors."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} needs the form --config.field=value")
    key, raw = item.split("=", 1)
    parts = key.split(".")
    node = config
    for i, part in enumerate(parts):
        if not isinstance(node, (ml_collections.ConfigDict, dict)) or part not in node:
            close = difflib.get_close_matches(key, all_keys(config), n=3, cutoff=0.5)
            hint = (f" Did you mean {', '.join(close)}?" if close else
                    " See docs/config_reference.md for all fields.")
            raise ConfigError(f"unknown config field {key!r}.{hint}")
        if i < len(parts) - 1:
            node = node[part]
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw  # a bare string, e.g. --config.optim.name=lamb
    old = node[parts[-1]]
    if key in _BOOL_OR_NONE and value is not None and not isinstance(value, bool):
        raise ConfigError(f"config field {key} takes True/False (or None: that of init_from), got {raw!r}")
    if isinstance(old, bool) and not isinstance(value, bool):
        raise ConfigError(f"config field {key} takes True/False, got {raw!r}")
    if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(old, tuple) and isinstance(value, (list, int)) and not isinstance(value, bool):
        value = tuple(value) if isinstance(value, list) else (value,)
    if isinstance(old, tuple) and old and all(isinstance(x, str) for x in old) and isinstance(value, str):
        # a list of names given bare, e.g. --config.data.labels=O,B-PER,I-PER (numbers parse as a tuple)
        value = tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(old, str) and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = raw  # a string field given a numeric-looking value, e.g. a path "2024"
    if old is not None and isinstance(old, (int, float, str, tuple)) and type(value) is not type(old):
        raise ConfigError(f"config field {key} is {type(old).__name__} ({old!r}); got {raw!r}")
    node[parts[-1]] = value


def init_from_error(init_from: str, error: Exception) -> ConfigError:
    """``error`` from reading ``init_from`` as a ``ConfigError`` that names the path once (the
    warm-start checks name it themselves; a library's error does not)."""
    text = str(error)
    return ConfigError(text if text.startswith("init_from=") else f"init_from={init_from}: {text}")


def check(ok: bool, message: str) -> None:
    """Raise ``ConfigError(message)`` unless ``ok``."""
    if not ok:
        raise ConfigError(message)


def seed_runs(workdir: str) -> list[str]:
    """Names of the ``seed_<s>/`` runs of a multi-seed fine-tuning workdir, in seed order."""
    names = os.listdir(workdir) if os.path.isdir(workdir) else []
    return sorted((n for n in names if re.fullmatch(r"seed_-?\d+", n) and os.path.isdir(os.path.join(workdir, n))),
                  key=lambda n: int(n[5:]))


def read_recorded(workdir: str, *, or_else: str = "") -> dict:
    """``workdir/config.json``, the resolved config its run recorded when it started.

    Args:
      or_else: advice for the caller's own command, after "restore it from a copy, or".

    Raises:
      FileNotFoundError: there is none.
      ValueError: it is not a run config; the message names the file (and line) and what to do.
    """
    file = os.path.join(workdir, "config.json")
    try:
        with open(file, encoding="utf-8") as f:
            run = json.load(f)
        problem = recorded_shape_problem(run)
        if problem is None and not isinstance(run.get("model"), dict):
            problem = "it has no 'model' section"
        if problem:
            raise ValueError(problem)
        return run
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError, AttributeError) as e:
        where = f":{e.lineno}" if isinstance(e, json.JSONDecodeError) else ""
        raise ValueError(f"{file}{where}: not a bert-jax run config ({getattr(e, 'msg', e)}); restore it from a copy"
                         f"{', or ' + or_else if or_else else ''}.") from None


def recorded_shape_problem(run) -> str | None:
    """What makes ``run`` (a parsed config.json) not a run config, or None: its sections must be
    objects (valid JSON of another shape -- a list, ``"resolved": null`` -- was a traceback)."""
    if not isinstance(run, dict):
        return f"it is a JSON {type(run).__name__}, not an object"
    resolved = run.get("resolved", {})
    for name, value in (("model", run.get("model", {})), ("data", run.get("data", {})),
                        ("optim", run.get("optim", {})), ("resolved", resolved),
                        ("resolved.data", resolved.get("data", {}) if isinstance(resolved, dict) else {}),
                        ("resolved.model", resolved.get("model", {}) if isinstance(resolved, dict) else {})):
        if not isinstance(value, dict):
            return f"its {name!r} is {json.dumps(value)[:40]}, not an object"
    return None


def recorded_path(run: dict, path: str) -> str:
    """A path a run's config.json records, made absolute with the directory the run was started
    in (``resolved.cwd``), so that it names the same file from any directory; as recorded when
    already absolute, empty, the run recorded no directory, or nothing exists there (the project
    was moved or copied from another machine: then the current directory is the better guess)."""
    base = (run.get("resolved") or {}).get("cwd")
    if not path or not isinstance(path, str) or os.path.isabs(path) or not isinstance(base, str):
        return path
    joined = os.path.join(base, path)
    return joined if os.path.exists(joined) else path


def recorded_vocab_file(workdir: str, *, or_else: str = "") -> str | None:
    """The vocabulary the run in ``workdir`` was trained with, if it still exists: a ``vocab.txt``
    put beside it, else the one its fine-tuning resolved, else the pretraining shards' copy, else
    ``data.vocab_file``.

    Raises:
      FileNotFoundError, ValueError: as ``read_recorded`` (``or_else`` as there).
    """
    run = read_recorded(workdir, or_else=or_else)
    data, resolved = run.get("data") or {}, (run.get("resolved") or {}).get("data") or {}
    train_dir = recorded_path(run, data.get("train_dir") or "")
    for candidate in (os.path.join(workdir, "vocab.txt"), recorded_path(run, resolved.get("vocab_file")),
                      train_dir and os.path.join(train_dir, "vocab.txt"), recorded_path(run, data.get("vocab_file"))):
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


_SAME_RUN_ADVICE = {
    "resume": ("resuming would go on training that run on other data. Use a new --workdir, or resume it "
               "with the config it was started with."),
    "evaluate": ("evaluating would score that run's model on other data. Evaluate it with the config it was "
                 "trained with, or give this config's own fine-tuning workdir."),
}


# The data a run reads: an empty one in an evaluation config takes the run's (``recorded_defaults``).
_INPUT_PATHS = ("data_dir", "train_file", "dev_file", "test_file", "corpus_dir", "ax_dir", "train_dir", "eval_dir")
# Paths that are not the run's data: the vocabulary is filled from what the run resolved
# (``resolved.data.vocab_file``, not the config's, which may be empty), and a SQuAD v2 threshold
# file is an evaluation's own choice, never the run's.
_OTHER_PATHS = ("vocab_file", "null_threshold_file")
# What a resume may change: how long it trains, what it logs, evaluates and saves, where the files
# are and how they are laid out, and how the work is laid out on devices. Any other field is the
# recipe of the steps already taken (seed, optimizer, batch, input settings, ...): changing it on a
# resume trained the rest of the run with other settings while config.json (and the report)
# described all of it by the new.
_RESUME_MAY_CHANGE = re.compile(
    r"^(optim\.total_steps|num_epochs|seeds|eval_split|checkpoint\..*|log_every_steps|eval_every_steps|"
    r"eval_at_start|eval_steps|stop_check_every_steps|init_from|distributed\..*|peak_flops_per_device|"
    r"compilation_cache_dir|mesh_shape|logical_axis_rules|num_microbatches|remat_policy|data\.prefetch|"
    rf"data\.({'|'.join(_INPUT_PATHS + _OTHER_PATHS)})|data\.hub_name|data\.allow_skips|"
    r"data\.max_answer_length|data\.n_best_size|"
    r"data\.null_score_diff_threshold|data\.scheme|data\.mode|data\.num_columns|data\.label_column)$")
# What the advice of a non-finite stop changes ("lower optim.learning_rate, raise
# optim.warmup_steps, or enable optim.clip_grad_norm, then rerun"): allowed on a resume, said in a
# warning and recorded in config.json (resolved.resumed_with).
_RESUME_SAYS = re.compile(r"^optim\.(learning_rate|warmup_steps|warmup_fraction|clip_grad_norm)$")


def _flat(tree, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _as_json(value):
    """``value`` as config.json holds it (tuples as lists), so the two compare equal."""
    return json.loads(json.dumps(value))


class Change(NamedTuple):
    """A recorded setting and the value a config gives it; ``str``: ``"field before -> now"``."""

    field: str
    before: object
    now: object

    def __str__(self) -> str:
        return f"{self.field} {self.before!r} -> {self.now!r}"


def recipe_changes(recorded: dict, cfg, *, shapes: bool = False) -> list[Change]:
    """Each setting of the recorded run that ``cfg`` changes and a resume may not
    (``_RESUME_MAY_CHANGE``), by field name. Fields only one side knows are not compared, nor,
    unless ``shapes``, model sizes and ``scan_layers`` (the checkpoint's shapes and layout are
    checked on their own, with advice for each)."""
    before = _flat({k: v for k, v in recorded.items() if k != "resolved"})
    now = _flat(_as_json(cfg.to_dict()))
    built = ((recorded.get("resolved") or {}).get("model") or {}) if isinstance(recorded.get("resolved"), dict) else {}
    for name, unset in INHERITED_MODEL_FIELDS.items():  # what the run was built with, when it left them unset
        key = f"model.{name}"
        if key in before and before[key] == unset and isinstance(built.get(name), type(unset)):
            before[key] = built[name]
    changes = []
    for key in sorted(before.keys() & now.keys()):
        if _RESUME_MAY_CHANGE.match(key) or before[key] == now[key] or (key == "scan_layers" and not shapes):
            continue
        if key.startswith("model.") and (-1 in (before[key], now[key]) or "" in (before[key], now[key]) or
                                         (key[len("model."):] in SHAPE_FIELDS and not shapes)):
            continue  # left to the checkpoint, or refused by its shape check, which says how to match it
        changes.append(Change(key, before[key], now[key]))
    return changes


def _flag(change: Change) -> str:
    """The override that gives ``change.field`` its recorded value back, quoted for a shell."""
    v = change.before
    if isinstance(v, list):  # config.json's lists are the config's tuples; names quoted (bare, '(a' is a name)
        text = "(" + ",".join(map(repr, v)) + ("," if len(v) == 1 else "") + ")"
    else:
        text = v if isinstance(v, str) else repr(v)
    return shlex.quote(f"--config.{change.field}={text}")


def recorded_run(workdir: str) -> dict | None:
    """``read_recorded(workdir)``, or None when there is nothing readable to compare with or take
    settings from (the checkpoints' shapes are still checked on their own)."""
    try:
        return read_recorded(workdir)
    except (OSError, ValueError):
        return None


def check_same_run(cfg, workdir: str, doing: str, recorded: dict | None) -> list[Change]:
    """Refuse to ``doing`` (``"resume"`` or ``"evaluate"``) the checkpoints of ``workdir``, whose
    config.json is ``recorded`` (``recorded_run``), with a config of another mode or task: an RTE
    run resumed with the SST-2 config (the same 2-label head) went on training on SST-2 data, and
    evaluated with it scored the RTE model on SST-2. A resume is also refused with another recipe
    (``recipe_changes``), except the optimizer settings a non-finite stop advises changing: those
    are returned for the caller to say and record."""
    if recorded is None:
        return []
    for key in ("mode", "task"):
        before, now = recorded.get(key), cfg.get(key)
        if before is not None and now is not None and before != now:
            advice = _SAME_RUN_ADVICE[doing]
            if key == "mode" and before == "pretrain":
                advice = (f"a pretraining run is fine-tuned, not {doing}d, by a fine-tuning config: pass "
                          f"--config.init_from={workdir} with a new --workdir.")
            raise ConfigError(f"{workdir} holds a {key}={before!r} run (its config.json) and this config has "
                              f"{key}={now!r}: {advice}")
    before, now = recorded.get("data", {}).get("lowercase"), cfg.get("data", {}).get("lowercase")
    if isinstance(before, bool) and isinstance(now, bool) and before != now:
        # a cased model fed lower-cased text (or the reverse) scores far below itself, silently
        raise ConfigError(f"{workdir} was trained with data.lowercase={before} (its config.json) and this config "
                          f"has data.lowercase={now}: the model would read other tokens than it learned. Pass "
                          f"--config.data.lowercase={before}.")
    if doing != "resume":
        return []
    changes = recipe_changes(recorded, cfg)
    refused = [c for c in changes if not _RESUME_SAYS.match(c.field)]
    if refused:
        # the model's shape too, named here at once (its own check would refuse it on the next try)
        refused += [c for c in recipe_changes(recorded, cfg, shapes=True) if c not in changes]
        raise ConfigError(f"{workdir} holds a run started with other settings (its config.json): "
                          f"{'; '.join(map(str, refused))}. Resuming would train its remaining steps with other "
                          "settings than its first ones, and its record would describe them all by the new. Resume "
                          f"it with the settings it was started with ({' '.join(map(_flag, refused))}; a resume may "
                          "change optim.total_steps, the learning rate, warmup and clipping, and the logging, "
                          "evaluation and checkpoint intervals), or use a new --workdir.")
    return changes


def check_same_vocabulary(recorded: dict | None, info: dict | None, workdir: str, doing: str) -> None:
    """Refuse to ``doing`` (``"resume"`` or ``"evaluate"``) a run with a vocabulary of other tokens
    than its own (``vocab_hash``, as the shards' manifests: sha256 of the tokens in id order, of the
    job's ``info`` and of the recorded ``resolved.data``): a resume may move ``data.vocab_file``,
    but one of the same size with other tokens trained the rest of the run on other ids, or scored
    it on them, unsaid. Runs recorded before the digest existed are not compared."""
    before = ((recorded or {}).get("resolved") or {}).get("data") or {}
    now = info or {}
    if not (before.get("vocab_hash") and now.get("vocab_hash")) or before["vocab_hash"] == now["vocab_hash"]:
        return
    trained = recorded_path(recorded, before.get("vocab_file") or "")
    harm = ("the rest of the run would read other ids than its first steps" if doing == "resume"
            else "its model would read other ids than it learned")
    if trained and os.path.isfile(trained) and os.path.realpath(trained) != os.path.realpath(str(now.get("vocab_file"))):
        fix = f"{doing.capitalize()} it with --config.data.vocab_file={trained}"
    else:  # the file it recorded was rewritten in place, or is gone: naming it again cannot help
        fix = (f"The vocabulary it recorded ({trained or 'no path'}) has been rewritten or removed since: "
               f"restore the vocab.txt it was trained with and pass it as --config.data.vocab_file")
    tail = ", or use a new --workdir." if doing == "resume" else "."
    raise ConfigError(f"{workdir} was trained with the vocabulary {trained or '(path not recorded)'} (its config.json) "
                      f"and this config's vocabulary {now.get('vocab_file')} holds other tokens: {harm}. {fix}{tail}")


def input_settings(data) -> dict:
    """The ``data.*`` fields that decide how a split's inputs are made (lengths, strides, label
    lists, ...): not paths, nor what a resume or an evaluation may change (``_RESUME_MAY_CHANGE``)."""
    return {k: v for k, v in data.items() if not _RESUME_MAY_CHANGE.match(f"data.{k}")}


def recorded_defaults(config, recorded: dict | None, given=None) -> list[str]:
    """Fill what a config leaves unset -- ``init_from``, ``data.vocab_file``, ``model.*`` of -1,
    empty ``data.*`` paths -- from ``recorded``, a run's config.json (``recorded_run``), so a finished run
    is evaluated without repeating them. With ``given`` (the fields set on the command line), also
    take the run's own input settings (``input_settings``: lengths, strides, label lists, ...) for
    each ``data.*`` field not in it, so the run is scored on inputs made as it was trained on (an
    RTE run trained at seq 64 was scored at the config file's 128, unsaid). Python callers pass no
    ``given``: their config's settings stand.
    Changes ``config`` in place; returns the fields set (none if nothing is readable).
    """
    if recorded is None:
        return []
    resolved = recorded.get("resolved", {})
    filled = []
    if not config.get("init_from") and recorded.get("init_from"):
        init_from = str(recorded["init_from"])
        config.init_from = init_from if init_from == "scratch" else recorded_path(recorded, init_from)
        filled.append(f"init_from={config.init_from}")
    vocab = recorded_path(recorded, resolved.get("data", {}).get("vocab_file", ""))
    if not config.data.get("vocab_file") and vocab and os.path.isfile(vocab):
        config.data.vocab_file = vocab
        filled.append(f"data.vocab_file={vocab}")
    model = {**recorded.get("model", {}), **resolved.get("model", {})}
    for key, value in config.model.items():
        known = model.get(key)  # a number the run resolved a -1 to, or the name of its activation
        if ((value == -1 and isinstance(known, (int, float)) and not isinstance(known, bool) and known > 0)
                or (value == "" and isinstance(known, str) and known)):
            config.model[key] = known
            filled.append(f"model.{key}={known}")
    data = recorded.get("data", {}) if isinstance(recorded.get("data"), dict) else {}
    inputs = input_settings(config.data) if given is not None else {}
    for key, value in config.data.items():
        name, old = f"data.{key}", data.get(key)
        if old is None or _as_json(old) == _as_json(value) or name in (given or ()):
            continue
        if key in _INPUT_PATHS:
            path = recorded_path(recorded, old) if isinstance(old, str) and old else ""
            if not value and path and os.path.exists(path):  # an empty path: the run's
                config.data[key] = path
                filled.append(f"{name}={path}")
        elif key in inputs and key != "lowercase":  # (lowercase: check_same_run refuses another)
            try:
                config.data[key] = tuple(old) if isinstance(value, tuple) and isinstance(old, list) else old
            except (TypeError, ValueError):
                continue  # recorded as another type (an older bert-jax): the config's value stands
            filled.append(f"{name}={old!r}")
    return filled


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def check_local_path(value: str, flag: str) -> None:
    """Refuse a URL (``gs://bucket/run``): bert-jax reads and writes through ordinary file paths, and
    a URL became a local folder named ``gs:`` that failed at the first checkpoint save."""
    check(not _URL.match(str(value)),
          f"{flag}={value} is a URL; bert-jax reads and writes ordinary file paths. Mount the bucket (e.g. gcsfuse) "
          "or copy the files to a disk every process sees, and pass that path (docs/tpu_pod.md).")


def validate(cfg) -> None:
    """Checks of the shared fields that need no data, devices or JAX (ranges and choices)."""
    check_local_path(cfg.get("init_from", ""), "--config.init_from")
    for name in _INPUT_PATHS + _OTHER_PATHS:
        if name in cfg.get("data", {}):
            check_local_path(cfg.data[name], f"--config.data.{name}")
    check(cfg.model_dtype in ("float32", "bfloat16"), f"model_dtype={cfg.model_dtype!r}; use 'float32' or 'bfloat16'.")
    check(cfg.global_batch_size > 0, f"global_batch_size={cfg.global_batch_size} must be positive.")
    check(cfg.num_microbatches > 0, f"num_microbatches={cfg.num_microbatches} must be positive.")
    check(cfg.global_batch_size % cfg.num_microbatches == 0,
          f"global_batch_size={cfg.global_batch_size} is not divisible by num_microbatches={cfg.num_microbatches}.")
    for name in ("log_every_steps",):
        check(cfg[name] > 0, f"{name}={cfg[name]} must be positive.")
    for name in ("eval_every_steps", "eval_steps", "stop_check_every_steps"):
        check(cfg[name] >= 0, f"{name}={cfg[name]} must be >= 0 (0 = off / default).")
    check(cfg.checkpoint.every_steps >= 0, f"checkpoint.every_steps={cfg.checkpoint.every_steps} must be >= 0 "
          "(0 = only at the end).")
    check(cfg.checkpoint.keep >= 0 and cfg.checkpoint.keep_period >= 0,
          "checkpoint.keep and checkpoint.keep_period must be >= 0 (0 = keep all / no period).")
    if "seeds" in cfg:
        check(all(isinstance(s, int) and s >= 0 for s in cfg.seeds) and len(set(cfg.seeds)) == len(cfg.seeds),
              f"seeds={tuple(cfg.seeds)!r} must be distinct non-negative integers, e.g. --config.seeds=0,1,2.")
    if "num_epochs" in cfg:
        check(cfg.num_epochs > 0, f"num_epochs={cfg.num_epochs} must be positive.")


# What each field means: the configuration reference (docs/config_reference.md) is generated
# from this table and the defaults above by scripts/config_reference.py.
FIELD_HELP = {
    "seed": "root PRNG seed (parameters, dropout, data order)",
    "mode": "pretrain or finetune (set by the defaults; not to be overridden)",
    "model.*": "BertConfig fields (Hugging Face names); shape fields -1 = from the data (pretraining: the shards' "
               "vocabulary) or from init_from (fine-tuning, as are hidden_act '' and layer_norm_eps -1)",
    "model_dtype": "compute dtype: float32 or bfloat16 (parameters stay float32); measure per machine (docs/benchmarks.md)",
    "remat_policy": "activation rematerialisation: none, full, or a jax.checkpoint_policies name that takes no "
                    "arguments, e.g. dots_saveable (bert_jax.modeling.layers.remat_policy_fn)",
    "scan_layers": "scan over encoder layers (faster compiles for deep models; same outputs)",
    "global_batch_size": "sequences per optimizer step, over all hosts",
    "num_microbatches": "gradient accumulation steps per optimizer step (equal to one step on the whole batch)",
    "optim.name": "adamw or lamb",
    "optim.learning_rate": "peak learning rate (>= 0)",
    "optim.total_steps": "optimizer steps; fine-tuning: -1 = num_epochs x steps per epoch",
    "optim.warmup_steps": "linear warmup steps; -1 = warmup_fraction x total_steps",
    "optim.warmup_fraction": "share of total_steps used for warmup when warmup_steps is -1",
    "optim.schedule": "decay after warmup: linear or polynomial (decay_power)",
    "optim.decay_power": "exponent of the polynomial decay",
    "optim.end_learning_rate": "learning rate reached at total_steps",
    "optim.b1": "Adam/LAMB first-moment decay",
    "optim.b2": "Adam/LAMB second-moment decay",
    "optim.eps": "Adam/LAMB epsilon",
    "optim.weight_decay": "decoupled weight decay (biases and LayerNorm excluded)",
    "optim.clip_grad_norm": "clip the global gradient norm to this (0 = off)",
    "mesh_shape": "(data, fsdp, tensor) device mesh; -1 = the remaining devices",
    "logical_axis_rules": "() = bert_jax.partitioning.DEFAULT_RULES, else ((logical, mesh axis), ...)",
    "checkpoint.every_steps": "save every N steps (0 = only at the end); a SIGTERM/SIGINT also saves",
    "checkpoint.keep": "keep the last K checkpoints (0 = all)",
    "checkpoint.keep_period": "also keep every checkpoint whose step is a multiple of M (0 = none)",
    "checkpoint.async_save": "write checkpoints in the background",
    "log_every_steps": "fetch, check (NaN/Inf) and write metrics every N steps",
    "eval_every_steps": "evaluate every N steps (0 = only where the mode evaluates at the end)",
    "eval_steps": "pretraining: batches per evaluation (0 = one pass over the eval shards)",
    "eval_at_start": "also evaluate the starting parameters (step 0) of a fresh run, for a before/after comparison",
    "stop_check_every_steps": "multi-host: agree on a stop signal every N steps (0 = at log steps)",
    "init_from": "starting weights: a bert-jax workdir, a bert-jax export or a Hugging Face / TensorFlow model "
                 "directory; fine-tuning also takes 'scratch'",
    "distributed.initialize": "jax.distributed: auto (when the environment says multi-host), yes or no",
    "distributed.coordinator_address": "host:port of process 0 ('' = from the environment)",
    "distributed.num_processes": "number of processes (-1 = from the environment)",
    "distributed.process_id": "this process (-1 = from the environment)",
    "peak_flops_per_device": "MFU peak in FLOP/s (0 = bert_jax.flops table)",
    "compilation_cache_dir": "persistent XLA compilation cache ('' = off): a restarted or repeated run loads its "
                             "compiled steps from <dir>/<machine>/ instead of compiling; process 0 writes, all "
                             "read, so a folder every host reads (a shared filesystem, or gs://... read by JAX itself) serves a pod (docs/training.md)",
    "use_nsp": "add the next-sentence loss",
    "data.train_dir": "pretraining shards (bert-jax data build)",
    "data.eval_dir": "held-out shards for evaluation ('' = none)",
    "data.max_seq_length": "tokens per example; pretraining: must equal the shards'",
    "data.max_predictions_per_seq": "masked positions per example; must equal the shards'",
    "data.dynamic_masking": "re-mask every epoch in the loader instead of the shards' static masks",
    "data.prefetch": "batches the loader prepares ahead",
    "data.packing": "pack several instances per row with attention kept inside each (docs/packing.md)",
    "data.max_instances_per_row": "packing: instances per row; 0 = max(1, max_seq_length // 16)",
    "data.max_predictions_per_row": "packing: masked positions per row; 0 = a cap that never binds, "
                                    "min(ceil(masked_lm_prob x max_seq_length) + max_instances_per_row, "
                                    "max_instances_per_row x max_predictions_per_seq)",
    "task": "a registered fine-tuning task (docs/tasks.md)",
    "seeds": "() = one run with seed; (0, 1, 2) = one run per seed and a mean/std summary",
    "num_epochs": "fine-tuning epochs (used when optim.total_steps is -1)",
    "eval_split": "split evaluated during and after fine-tuning",
    "data.vocab_file": "'' = the vocabulary that came with init_from",
    "data.lowercase": "lower-case text (uncased vocabularies); None = what init_from declares (its tokenizer "
                      "files, its run, an original TF release's name), else True",
    "data.bucket_lengths": "training batches cut to the smallest of these lengths that holds their longest row, "
                           "rows grouped by length (() = off; max_seq_length is always the last bucket); "
                           "sequence classification / regression and multiple choice only (docs/tasks.md)",
    "data.bucket_group_batches": "bucketing: global batches per length-sorted chunk of the shuffled epoch",
}
