"""``init_from``: the one loader of starting parameters, for every training mode.

A source is one of
  * a bert-jax run directory (``checkpoints/`` + ``config.json``): its latest checkpoint;
  * an Orbax checkpoint directory (step folders) of a bert-jax run;
  * a bert-jax export (``bert_jax_params.safetensors`` + ``config.json``);
  * a Hugging Face model directory (``config.json`` + ``model.safetensors`` / ``pytorch_model.bin``);
  * an original TensorFlow BERT folder (``bert_config.json`` + ``bert_model.ckpt.*``).
Every source goes through Hugging Face parameter names, so one set of checks
applies: the architecture must match the configured model (every field that
fixes a shape), the whole encoder must be present, and what is freshly
initialised (a new head) is listed once, in one warning.
"""

from __future__ import annotations

import logging
import os
import re

import numpy as np

from bert_jax.config import SHAPE_FIELDS
from bert_jax.run_config import read_recorded, recorded_vocab_file

log = logging.getLogger("bert_jax")



def source_kind(path: str) -> str:
    """``"workdir"``, ``"orbax"``, ``"native"``, ``"hf"`` or ``"tf"``; a ValueError says what a
    source must hold."""
    from bert_jax.convert import native, tf
    if not os.path.exists(path):
        raise ValueError(f"init_from={path!r} does not exist; give a bert-jax pretraining workdir, a bert-jax "
                         "or Hugging Face model directory, or init_from=scratch for a random encoder.")
    if not os.path.isdir(path):
        raise ValueError(f"init_from={path!r} is a file, not a directory; give the directory that holds it.")
    if os.path.isdir(os.path.join(path, "checkpoints")):
        return "workdir"
    if native.is_native_checkpoint(path):
        return "native"
    if tf.is_tf_checkpoint(path):
        return "tf"
    if os.path.isfile(os.path.join(path, "config.json")):
        return "hf"
    if any(name.isdigit() for name in os.listdir(path)):
        return "orbax"
    raise ValueError(f"init_from={path!r} holds no checkpoints/ folder, no bert_jax_params.safetensors, no "
                     "config.json, no TensorFlow checkpoint (*.index) and no checkpoint steps; point it at a "
                     "pretraining workdir or a model directory.")


def _checkpoint_itself(workdir: str) -> str:
    """Advice for an ``init_from`` run whose config.json is damaged: its checkpoints hold the model."""
    return (f"read the model from the checkpoint itself: --config.init_from={os.path.join(workdir, 'checkpoints')} "
            "with --config.data.vocab_file=<the vocab.txt it was pretrained with>")


def source_architecture(path: str) -> dict:
    """The model fields (``BertConfig`` names) of the checkpoint at ``path``, read without its weights."""
    from bert_jax import checkpointing
    from bert_jax.config import BertConfig
    kind = source_kind(path)
    if kind == "workdir":
        run = read_recorded(path, or_else=_checkpoint_itself(path))
        resolved = run.get("resolved", {})
        # a fine-tuning run's own "model" section may hold -1 ("the shape of its init_from")
        return {**run["model"], **resolved.get("model", {}),
                "vocab_size": resolved.get("vocab_size", run["model"]["vocab_size"])}
    if kind == "orbax":
        return (checkpointing.restore_params_to_cpu(path)[1] or {}).get("model", {})
    if kind == "tf":
        from bert_jax.convert import tf
        config = os.path.join(path, tf.TF_CONFIG)
        if not os.path.isfile(config):
            raise ValueError(f"init_from={path!r} has a TensorFlow checkpoint but no {tf.TF_CONFIG}; put the "
                             f"model's {tf.TF_CONFIG} next to it.")
        return tf.read_bert_config(config).to_dict()
    return BertConfig.from_pretrained(path).to_dict()


def run_lowercase(workdir: str) -> bool | None:
    """Whether the run in ``workdir`` read lower-cased text: a fine-tuning run's ``data.lowercase``,
    a pretraining run's shards' ``tokenizer.do_lower_case`` (their manifest); None if unknown."""
    import json
    from bert_jax.run_config import recorded_path
    try:
        run = read_recorded(workdir)
        data = run.get("data") or {}
        if run.get("mode") != "pretrain":
            return data.get("lowercase") if isinstance(data.get("lowercase"), bool) else None
        with open(os.path.join(recorded_path(run, data.get("train_dir") or ""), "manifest.json"), encoding="utf-8") as f:
            value = (json.load(f).get("tokenizer") or {}).get("do_lower_case")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, bool) else None


# The original TensorFlow releases say their casing only by name, as the original code reads it
# (``tokenization.validate_case_matches_checkpoint``): uncased_L-12_H-768_A-12, wwm_cased_L-24_...,
# multi_cased_L-12_...; the older multilingual and Chinese models are lower-cased.
_TF_RELEASE_CASING = re.compile(r"(?:^|_)(un)?cased_L-\d+_H-\d+_A-\d+$")
_TF_RELEASE_LOWER = re.compile(r"^(?:multilingual|chinese)_L-\d+_H-\d+_A-\d+$")


def source_lowercase(path: str) -> tuple[bool, str] | None:
    """Whether the model at ``path`` (an ``init_from``) was trained on lower-cased text, and what
    says so; None when nothing does."""
    from bert_jax.tokenization.vocab_file import declared_lowercase
    kind = source_kind(path)
    if kind in ("workdir", "orbax"):
        run = os.path.normpath(path)
        run = os.path.dirname(run) if kind == "orbax" and os.path.basename(run) == "checkpoints" else run
        value = run_lowercase(run)
        return None if value is None else (value, f"the run's config.json in {run}")
    value = declared_lowercase(path)
    if value is not None:
        return value, f"the tokenizer files in {path}"
    if kind == "tf":
        name = os.path.basename(os.path.normpath(os.path.abspath(path)))
        match = _TF_RELEASE_CASING.search(name)
        if match or _TF_RELEASE_LOWER.match(name):
            return (not match or bool(match.group(1))), f"the release name {name}"
    return None


def inherit_casing(config, workdir: str) -> str | None:
    """Resolve ``data.lowercase`` None ("that of the model"): the casing the run in ``workdir``
    recorded (a resume, or evaluating its checkpoint), else the one ``init_from`` declares, else
    True. A cased model fed lower-cased text reads other tokens than it learned, unsaid.

    Changes ``config`` (a mutable ConfigDict) in place; returns what said so, for the log (None
    when nothing did and it became True)."""
    if config.data.get("lowercase", False) is not None:
        return None
    found = None
    recorded = run_lowercase(workdir) if workdir and os.path.isfile(os.path.join(workdir, "config.json")) else None
    if recorded is not None:
        found = recorded, f"the run's config.json in {workdir}"
    init_from = config.get("init_from") or ""
    if found is None and init_from and init_from != "scratch" and os.path.exists(init_from):
        try:
            found = source_lowercase(init_from)
        except ValueError:
            found = None  # an unusable init_from is named by the job, with advice
    config.data.lowercase = True if found is None else found[0]
    return None if found is None else f"data.lowercase={found[0]}, as {found[1]} says"


def check_architecture(path: str, model_config) -> None:
    """ValueError naming every shape field where ``init_from`` and the config disagree."""
    have = source_architecture(path)
    diffs = [(k, have.get(k), getattr(model_config, k)) for k in SHAPE_FIELDS
             if have.get(k) is not None and have.get(k) != getattr(model_config, k)]
    if diffs:
        told = ", ".join(f"{k}={a} (config: {b})" for k, a, b in diffs)
        fix = " ".join(f"--config.model.{k}={a}" for k, a, _ in diffs)
        raise ValueError(f"init_from={path} is a model of another shape: {told}. Set {fix}, "
                         "or init from a checkpoint of the configured shape.")


def source_state_dict(path: str) -> dict[str, np.ndarray]:
    """Hugging Face-named weights of any supported source (``bert.encoder.layer.0...``)."""
    from bert_jax import checkpointing
    from bert_jax.convert import hf, native
    kind = source_kind(path)
    if kind == "hf":
        return hf.load_hf_state_dict(path)
    if kind == "tf":
        from bert_jax.convert import tf
        return tf.load_tf_checkpoint(path)[0]  # its heads as they are (optimizer slots left out)
    if kind == "native":
        params, _, target = native.load_native_checkpoint(path)
    else:
        directory = os.path.join(path, "checkpoints") if kind == "workdir" else path
        params, meta = checkpointing.restore_params_to_cpu(directory)
        target = (meta or {}).get("target") or ("BertForPreTraining" if "cls" in params else "BertModel")
        if target != "BertModel" and "bert" not in params:
            target = "BertModel"
    return hf.params_to_hf_state_dict(params, None, target)


def load_init_params(path: str, model_config, target: str, fresh_params, *, scan_layers: bool = False,
                     training: bool = True):
    """Parameters of ``target`` with everything ``path`` has and fresh heads for the rest.

    Args:
      path: an ``init_from`` source (see the module docstring).
      model_config: the configured ``BertConfig`` (shapes are checked against it).
      target: the class being trained, e.g. ``"BertForSequenceClassification"``.
      fresh_params: plain parameter tree of ``target`` to take absent heads from.
      scan_layers: return the layers stacked for a ``scan_layers=True`` module.
      training: the parameters will be trained; when False (evaluation), a ``path`` that lacks any
        parameter of ``target`` is refused, since its fresh head would be scored untrained.
    Returns:
      ``(params, fresh)``: the tree and the Hugging Face names of freshly initialised parameters.
    Raises:
      ValueError: the path holds no checkpoint, another shape, or an incomplete encoder (this
        module's refusals name ``init_from``; ``run_config.init_from_error`` names it for the rest).
    """
    import jax
    from bert_jax.convert import hf
    check_architecture(path, model_config)
    state = source_state_dict(path)
    # Reported here, once, naming init_from (not by the converter as well).
    params, report = hf.hf_state_dict_to_params(
        state, model_config, target, init_params=hf.unstack_layers(jax.device_get(fresh_params)),
        scan_layers=scan_layers, ignore_mismatched_heads=True, report_to_user=False)
    # a head of another shape is there, but trained for another label set: say so, not "holds no"
    other = (f" (its head is for another number of labels: {'; '.join(report.mismatched)})"
             if report.mismatched else "")
    if report.initialized and not training:
        held = (f"holds a head of another shape{other}" if report.mismatched else
                f"holds no {', '.join(report.initialized)}")
        raise ValueError(f"init_from={path} {held}; evaluating it would score a randomly "
                         f"initialised head. Evaluate a fine-tuning workdir (its checkpoints/ holds the trained "
                         f"head; check the --workdir path), or pass --config.init_from=a model directory saved "
                         f"with this task's head.")
    if report.initialized:
        log.warning("init_from=%s: encoder restored (%d tensors); freshly initialised (trained from scratch by "
                    "this run): %s%s", path, len(report.loaded), ", ".join(report.initialized), other)
    if report.unused:
        log.info("init_from=%s: %d tensor(s) not used by %s: %s", path, len(report.unused), target,
                 ", ".join(sorted(report.unused)))
    return params, report.initialized


def resolve_vocab_file(vocab_file: str, init_from: str) -> str:
    """``data.vocab_file`` if set, else the vocabulary that came with ``init_from`` (a model
    directory's ``vocab.txt``, or the pretraining shards' copy for a bert-jax workdir)."""
    if vocab_file:
        if not os.path.isfile(vocab_file):
            raise ValueError(f"data.vocab_file={vocab_file!r} does not exist.")
        return vocab_file
    if init_from and init_from != "scratch":
        source_kind(init_from)  # a missing or unusable path is named as such, before the vocabulary
        if os.path.isdir(os.path.join(init_from, "checkpoints")) and os.path.isfile(os.path.join(init_from, "config.json")):
            # a run: the vocabulary it was trained with
            found = recorded_vocab_file(init_from, or_else=_checkpoint_itself(init_from))
        else:
            found = os.path.join(init_from, "vocab.txt")
        if found and os.path.isfile(found):
            return found
    raise ValueError("no vocabulary: set --config.data.vocab_file=VOCAB.txt (the one the encoder was "
                     "pretrained with); it is found automatically only in a model directory or a "
                     "pretraining workdir whose shards still exist.")
