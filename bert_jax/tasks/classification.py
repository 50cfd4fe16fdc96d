"""Sequence classification: the task (head, batch layout, loss, accuracy), warm-starting
its encoder from ``init_from``, and the data of the registered fine-tuning tasks.

Batch (from ``ClassificationLoader``):
  ``input_ids, attention_mask, token_type_ids`` int32 ``[batch, length]``;
  ``labels`` int32 ``[batch]`` (float32 for regression, ``num_labels == 1``);
  ``example_weight`` float32 ``[batch]`` (0 = padding row of an evaluation pass).

Loss = sum(cross-entropy * weight) / sum(weight) over the *global* batch (mean
squared error for regression), built from ``bert_jax.losses`` ``(sum, weight)`` pairs.

Warm start: the encoder (embeddings + layers) must come entirely from
``init_from``; a missing or misshapen encoder weight is an error. The pooler is
taken when the source has one; what is freshly initialised (the classifier) is
listed in a warning.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bert_jax import losses
from bert_jax.tasks import text_classification_data as tcd

log = logging.getLogger("bert_jax")

# Fields that fix parameter shapes: init_from must agree with the config on all of them.
ARCHITECTURE_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                       "intermediate_size", "max_position_embeddings", "type_vocab_size")


@dataclass(frozen=True)
class SequenceClassificationTask:
    """Args:
      module: a Flax module with the ``BertForSequenceClassificationModule`` call signature.
      max_seq_length: the batch layout.
      num_labels: classes; 1 = regression on a float label.
    """

    module: Any
    max_seq_length: int
    num_labels: int

    @property
    def regression(self) -> bool:
        return self.num_labels == 1

    @property
    def batch_spec(self) -> dict[str, tuple[Any, tuple[int, ...]]]:
        seq = self.max_seq_length
        return {
            "input_ids": (np.int32, (seq,)),
            "attention_mask": (np.int32, (seq,)),
            "token_type_ids": (np.int32, (seq,)),
            "labels": (np.float32 if self.regression else np.int32, ()),
            "example_weight": (np.float32, ()),
        }

    def init_params(self, rng):
        """Boxed parameters (``nn.Partitioned`` with logical axis names)."""
        ids = jnp.zeros((1, self.max_seq_length), jnp.int32)
        variables = self.module.init({"params": rng, "dropout": rng}, ids, jnp.ones_like(ids), ids,
                                     deterministic=True)
        return variables["params"]

    def denominators(self, batch) -> dict[str, jax.Array]:
        return {"examples": jnp.maximum(jnp.sum(batch["example_weight"].astype(jnp.float32)), 1.0)}

    def loss(self, params, batch, rng, denominators, deterministic: bool = False):
        """Scalar loss (divided by the global denominator) and metric sums."""
        out = self.module.apply({"params": params}, batch["input_ids"], batch["attention_mask"],
                                batch["token_type_ids"], deterministic=deterministic,
                                rngs={"dropout": rng})
        logits = out.logits  # [batch, num_labels]
        weight = batch["example_weight"].astype(jnp.float32)
        if self.regression:
            error = logits[:, 0].astype(jnp.float32) - batch["labels"].astype(jnp.float32)
            pair = (jnp.sum(error * error * weight), jnp.sum(weight))
            sums = {"loss_sum": pair[0], "count": pair[1]}
        else:
            labels = jnp.where(weight > 0, batch["labels"], tcd.IGNORE_LABEL)
            pair = losses.cross_entropy_with_ignore(logits, labels, ignore_index=tcd.IGNORE_LABEL)
            correct, _ = losses.accuracy_with_ignore(logits, labels, ignore_index=tcd.IGNORE_LABEL)
            sums = {"loss_sum": pair[0], "count": pair[1], "correct": correct}
        return pair[0] / denominators["examples"], sums

    def metrics_from_sums(self, sums) -> dict[str, jax.Array]:
        out = {"loss": losses.mean((sums["loss_sum"], sums["count"]))}
        if "correct" in sums:
            out["accuracy"] = losses.mean((sums["correct"], sums["count"]))
        return out

    def flops_per_example(self, config) -> float:
        """Model FLOPs (forward + backward) for one example; see ``bert_jax.flops``."""
        from bert_jax.flops import bert_pretraining_flops
        # With no masked predictions the pretraining count is encoder + pooler + a 2-way
        # head; correct the head for num_labels.
        h = config.hidden_size
        return bert_pretraining_flops(config, self.max_seq_length, 0) + 6.0 * h * (self.num_labels - 2)


# ----------------------------------------------------------------------------- warm start


def _source_kind(path: str) -> str:
    from bert_jax.convert import native
    if not os.path.exists(path):
        raise ValueError(f"init_from={path!r} does not exist; give a bert-jax pretraining workdir, a bert-jax "
                         "or Hugging Face model directory, or init_from='scratch' for a random encoder.")
    if os.path.isdir(os.path.join(path, "checkpoints")):
        return "workdir"
    if native.is_native_checkpoint(path):
        return "native"
    if os.path.isfile(os.path.join(path, "config.json")):
        return "hf"
    raise ValueError(f"init_from={path!r} holds no checkpoints/ folder, no bert_jax_params.safetensors and "
                     "no config.json; point it at a pretraining workdir or a model directory.")


def source_architecture(path: str) -> dict:
    """The model fields (``BertConfig`` names) of the checkpoint at ``path``, read without its weights."""
    from bert_jax.config import BertConfig
    kind = _source_kind(path)
    if kind == "workdir":
        with open(os.path.join(path, "config.json"), encoding="utf-8") as f:
            run = json.load(f)
        return {**run["model"], "vocab_size": run.get("resolved", {}).get("vocab_size", run["model"]["vocab_size"])}
    return BertConfig.from_pretrained(path).to_dict()


def check_architecture(path: str, model_config) -> None:
    """ValueError naming every shape field where ``init_from`` and the config disagree."""
    have = source_architecture(path)
    diffs = [(k, have.get(k), getattr(model_config, k)) for k in ARCHITECTURE_FIELDS
             if have.get(k) is not None and have.get(k) != getattr(model_config, k)]
    if diffs:
        told = ", ".join(f"{k}={a} (config: {b})" for k, a, b in diffs)
        fix = " ".join(f"--config.model.{k}={a}" for k, a, _ in diffs)
        raise ValueError(f"init_from={path} is a model of another shape: {told}. Set {fix}, "
                         "or init from a checkpoint of the configured shape.")


def source_state_dict(path: str) -> dict[str, np.ndarray]:
    """Hugging Face-named weights of any supported ``init_from`` (``bert.encoder.layer.0...``)."""
    from bert_jax import checkpointing
    from bert_jax.convert import hf, native
    kind = _source_kind(path)
    if kind == "hf":
        return hf.load_hf_state_dict(path)
    if kind == "native":
        params, _, target = native.load_native_checkpoint(path)
    else:
        params, meta = checkpointing.restore_params_to_cpu(os.path.join(path, "checkpoints"))
        target = "BertModel" if "bert" not in params else "BertForPreTraining"
    return hf.params_to_hf_state_dict(params, None, target)


def warm_start_params(path: str, model_config, fresh_params, *, target: str = "BertForSequenceClassification",
                      scan_layers: bool = False):
    """Parameters of ``target`` with the encoder from ``path`` and fresh heads.

    Args:
      path: a bert-jax workdir, a bert-jax export or a Hugging Face model directory.
      model_config: the configured ``BertConfig`` (shapes are checked against it).
      fresh_params: plain parameter tree of ``target`` to take absent heads from.
      scan_layers: return the layers stacked for a ``scan_layers=True`` module.
    Returns:
      ``(params, fresh)``: the tree and the Hugging Face names of freshly initialised parameters.
    Raises:
      ValueError: the path holds no checkpoint, another shape, or an incomplete encoder.
    """
    from bert_jax.convert import hf
    check_architecture(path, model_config)
    state = source_state_dict(path)
    with warnings.catch_warnings():
        # hf_state_dict_to_params warns with the list; we re-issue it naming init_from.
        warnings.simplefilter("ignore")
        params, report = hf.hf_state_dict_to_params(
            state, model_config, target, init_params=hf.unstack_layers(jax.device_get(fresh_params)),
            scan_layers=scan_layers, ignore_mismatched_heads=True)
    if report.initialized:
        message = (f"init_from={path}: encoder restored ({len(report.loaded)} tensors); freshly initialised "
                   f"(trained from scratch by this run): {', '.join(report.initialized)}")
        warnings.warn(message, stacklevel=2)
        log.warning(message)
    if report.unused:
        log.info("init_from=%s: %d tensor(s) not used by %s: %s", path, len(report.unused), target,
                 ", ".join(sorted(report.unused)))
    return params, report.initialized


# ----------------------------------------------------------------------------- task data


def resolve_vocab_file(vocab_file: str, init_from: str) -> str:
    """``data.vocab_file`` if set, else the vocabulary that came with ``init_from`` (a model
    directory's ``vocab.txt``, or the pretraining shards' copy for a bert-jax workdir)."""
    if vocab_file:
        if not os.path.isfile(vocab_file):
            raise ValueError(f"data.vocab_file={vocab_file!r} does not exist.")
        return vocab_file
    if init_from and init_from != "scratch" and os.path.isdir(init_from):
        candidates = [os.path.join(init_from, "vocab.txt")]
        run_config = os.path.join(init_from, "config.json")
        if os.path.isdir(os.path.join(init_from, "checkpoints")) and os.path.isfile(run_config):
            with open(run_config, encoding="utf-8") as f:
                train_dir = json.load(f).get("data", {}).get("train_dir", "")
            candidates.append(os.path.join(train_dir, "vocab.txt"))
        for c in candidates:
            if os.path.isfile(c):
                return c
    raise ValueError("no vocabulary: set --config.data.vocab_file=VOCAB.txt (the one the encoder was "
                     "pretrained with); it is found automatically only in a model directory or a "
                     "pretraining workdir whose shards still exist.")


def docs_section_data(data_cfg, *, seed: int) -> tuple[dict, dict, dict]:
    """``(train_arrays, dev_arrays, info)`` of the docs_section task (see text_classification_data)."""
    from bert_jax.tokenization import BertTokenizerFast
    splits = tcd.docs_section_splits(data_cfg.corpus_dir, tuple(data_cfg.labels),
                                     dev_percent=data_cfg.dev_percent, max_per_label=data_cfg.max_per_label,
                                     balance=data_cfg.balance,
                                     seed=seed)
    tokenizer = BertTokenizerFast(data_cfg.vocab_file, do_lower_case=data_cfg.lowercase)
    arrays = {k: tcd.encode(v, tokenizer, data_cfg.max_seq_length) for k, v in splits.items()}
    info = {"labels": list(data_cfg.labels), "vocab_file": data_cfg.vocab_file,
            "vocab_size": len(tokenizer.get_vocab()), "train": splits["train"].info,
            "dev": splits["dev"].info}
    return arrays["train"], arrays["dev"], info


# name -> builder of (train_arrays, eval_arrays, info) from the config's ``data`` block.
FINETUNE_DATA = {"docs_section": docs_section_data}


# ----------------------------------------------------------------------------- the job


def build_finetune_job(cfg, params_key, *, resuming: bool):
    """The fine-tuning ``TrainingJob`` of a ``finetune_defaults`` config.

    Args:
      cfg: the (frozen) run config.
      params_key: PRNG key the fresh head (and, for ``init_from='scratch'``, the encoder) comes from.
      resuming: the workdir holds its own checkpoint, so ``init_from`` will not be read;
        otherwise it is validated here, before any compute.
    Raises:
      ValueError: unknown task, missing vocabulary or corpus, unusable ``init_from``.
    """
    import ml_collections
    from bert_jax import partitioning
    from bert_jax.config import BertConfig
    from bert_jax.modeling import BertForSequenceClassificationModule
    from bert_jax.tasks import TrainingJob

    if cfg.task not in FINETUNE_DATA:
        raise ValueError(f"task={cfg.task!r} is not a fine-tuning task; use one of {', '.join(FINETUNE_DATA)}.")
    if not cfg.init_from:
        raise ValueError("init_from is empty: pass --config.init_from=PRETRAIN_WORKDIR_OR_MODEL_DIR "
                         "(or init_from=scratch for a randomly initialised baseline).")
    scratch = cfg.init_from == "scratch"
    data_cfg = ml_collections.ConfigDict(cfg.data.to_dict())
    data_cfg.vocab_file = resolve_vocab_file(cfg.data.vocab_file, "" if scratch else cfg.init_from)
    train_arrays, eval_arrays, info = FINETUNE_DATA[cfg.task](data_cfg, seed=int(cfg.seed))
    num_labels = len(cfg.data.labels)
    vocab_size = cfg.model.vocab_size if cfg.model.vocab_size > 0 else info["vocab_size"]
    try:
        model_cfg = BertConfig(**{**cfg.model.to_dict(), "vocab_size": vocab_size, "num_labels": num_labels})
    except TypeError as e:
        raise ValueError(f"model config: {e}") from None
    if cfg.data.max_seq_length > model_cfg.max_position_embeddings:
        raise ValueError(f"data.max_seq_length={cfg.data.max_seq_length} exceeds model.max_position_embeddings="
                         f"{model_cfg.max_position_embeddings}; lower it.")
    if not (scratch or resuming):
        check_architecture(cfg.init_from, model_cfg)
    dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[cfg.model_dtype]
    module = BertForSequenceClassificationModule(model_cfg, dtype=dtype, param_dtype=jnp.float32,
                                                 remat_policy=cfg.remat_policy, scan_layers=cfg.scan_layers)
    task = SequenceClassificationTask(module, cfg.data.max_seq_length, num_labels)
    hosts = dict(process_index=jax.process_index(), process_count=jax.process_count())
    loader = tcd.ClassificationLoader(train_arrays, cfg.global_batch_size, seed=int(cfg.seed), manifest=info,
                                      **hosts)

    def eval_batches():
        return iter(tcd.ClassificationLoader(eval_arrays, cfg.global_batch_size, shuffle=False,
                                             drop_remainder=False, num_epochs=1, **hosts))

    def init_params():
        if scratch:
            log.warning("init_from=scratch: every parameter, the encoder included, is randomly initialised "
                        "(a from-scratch baseline, not a fine-tuned model).")
            return None
        fresh = partitioning.unbox(jax.jit(task.init_params)(params_key))
        return warm_start_params(cfg.init_from, model_cfg, fresh, scan_layers=cfg.scan_layers)[0]

    return TrainingJob(task=task, model_config=model_cfg, loader=loader, eval_batches=eval_batches,
                       init_params=init_params, eval_at_end=True, results_name="dev",
                       info={"task": cfg.task, **info})
