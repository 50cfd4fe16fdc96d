"""The pretraining task: masked-LM at the masked positions only, plus optional NSP.

Batch (from ``data_pipeline.loader.PretrainingLoader``):
  ``input_ids, attention_mask, token_type_ids`` int32 ``[batch, length]``;
  ``masked_lm_positions, masked_lm_ids`` int32 ``[batch, max_predictions]``;
  ``masked_lm_weights`` float32 ``[batch, max_predictions]`` (0 = padding);
  ``next_sentence_label`` int32 ``[batch]``.
Packed (``packing=True``, several instances per row, ``data_pipeline.packing``): also
  ``segment_ids, position_ids`` int32 ``[batch, length]``; ``next_sentence_positions,
  next_sentence_label`` int32 and ``next_sentence_weight`` float32 ``[batch, max_instances]``;
  ``max_predictions`` is then per packed row.

Loss = sum(MLM cross-entropy * weight) / sum(weight)
     + [use_nsp] * sum(NSP cross-entropy * instance weight) / number of instances,
both denominators over the global batch, so a packed batch's loss and gradients equal
those of the same instances unpacked (there every row is one instance).
The model gathers the masked positions before the vocabulary projection, so
no ``[batch, length, vocab]`` logits are ever formed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bert_jax import losses


def _cross_entropy_and_hits(logits, labels):
    """Per-example cross-entropy in float32 and whether the argmax is the label (float32 0/1);
    ``logits [..., classes]``, ``labels [...]``. One max serves both."""
    logits = logits.astype(jnp.float32)
    m = jax.lax.stop_gradient(jnp.max(logits, axis=-1))
    logz = m + jnp.log(jnp.sum(jnp.exp(logits - m[..., None]), axis=-1))
    picked = jnp.take_along_axis(logits, labels[..., None], axis=-1)[..., 0]
    hits = losses.is_argmax(logits, labels, max_logits=m).astype(jnp.float32)
    return logz - picked, hits


@dataclass(frozen=True)
class PretrainingTask:
    """Args:
      module: a Flax module with the ``BertForPreTrainingModule`` call signature.
      max_seq_length, max_predictions_per_seq: the batch layout (predictions per row).
      use_nsp: add the next-sentence loss (RoBERTa-style runs turn it off).
      packing: rows hold up to ``max_instances_per_row`` packed instances.
    """

    module: Any
    max_seq_length: int
    max_predictions_per_seq: int
    use_nsp: bool = True
    packing: bool = False
    max_instances_per_row: int = 1

    @property
    def batch_spec(self) -> dict[str, tuple[Any, tuple[int, ...]]]:
        seq, pred = self.max_seq_length, self.max_predictions_per_seq
        spec = {
            "input_ids": (np.int32, (seq,)),
            "attention_mask": (np.int32, (seq,)),
            "token_type_ids": (np.int32, (seq,)),
            "masked_lm_positions": (np.int32, (pred,)),
            "masked_lm_ids": (np.int32, (pred,)),
            "masked_lm_weights": (np.float32, (pred,)),
            "next_sentence_label": (np.int32, ()),
        }
        if self.packing:
            k = (self.max_instances_per_row,)
            spec.update({
                "segment_ids": (np.int32, (seq,)),
                "position_ids": (np.int32, (seq,)),
                "next_sentence_positions": (np.int32, k),
                "next_sentence_label": (np.int32, k),
                "next_sentence_weight": (np.float32, k),
            })
        return spec

    def init_params(self, rng):
        """Boxed parameters (``nn.Partitioned`` with logical axis names)."""
        seq = self.max_seq_length
        ids = jnp.zeros((1, seq), jnp.int32)
        pos = jnp.zeros((1, self.max_predictions_per_seq), jnp.int32)
        variables = self.module.init({"params": rng, "dropout": rng}, ids, jnp.ones_like(ids),
                                     ids, deterministic=True, masked_lm_positions=pos)
        return variables["params"]

    def denominators(self, batch) -> dict[str, jax.Array]:
        mlm = jnp.maximum(jnp.sum(batch["masked_lm_weights"].astype(jnp.float32)), 1.0)
        if self.packing:
            nsp = jnp.maximum(jnp.sum(batch["next_sentence_weight"].astype(jnp.float32)), 1.0)
        else:
            nsp = jnp.asarray(batch["next_sentence_label"].shape[0], jnp.float32)
        return {"mlm": mlm, "nsp": nsp}

    def loss(self, params, batch, rng, denominators, deterministic: bool = False):
        """Scalar loss (already divided by the global denominators) and metric sums."""
        packed = {}
        if self.packing:
            packed = {"position_ids": batch["position_ids"], "segment_ids": batch["segment_ids"],
                      "next_sentence_positions": batch["next_sentence_positions"]}
        out = self.module.apply(
            {"params": params}, batch["input_ids"], batch["attention_mask"],
            batch["token_type_ids"], deterministic=deterministic,
            masked_lm_positions=batch["masked_lm_positions"], rngs={"dropout": rng}, **packed)
        logits = out.prediction_logits  # [batch, max_predictions, vocab]
        weights = batch["masked_lm_weights"].astype(jnp.float32)
        labels = batch["masked_lm_ids"]
        mlm_xent, mlm_hits = _cross_entropy_and_hits(logits, labels)
        mlm_sum = jnp.sum(mlm_xent * weights)
        mlm_correct = jnp.sum(mlm_hits * weights)
        loss = mlm_sum / denominators["mlm"]
        sums = {"mlm_loss": mlm_sum, "mlm_correct": mlm_correct, "mlm_weight": jnp.sum(weights)}
        nsp_logits = out.seq_relationship_logits  # [batch, 2]; packed: [batch, max_instances, 2]
        nsp_labels = batch["next_sentence_label"]
        nsp_xent, nsp_right = _cross_entropy_and_hits(nsp_logits, nsp_labels)
        if self.packing:
            nsp_weight = batch["next_sentence_weight"].astype(jnp.float32)
            sums["nsp_loss"] = jnp.sum(nsp_xent * nsp_weight)
            sums["nsp_correct"] = jnp.sum(nsp_right * nsp_weight)
            sums["nsp_count"] = jnp.sum(nsp_weight)
        else:
            sums["nsp_loss"] = jnp.sum(nsp_xent)
            sums["nsp_correct"] = jnp.sum(nsp_right)
            sums["nsp_count"] = jnp.asarray(nsp_labels.shape[0], jnp.float32)
        if self.use_nsp:
            loss = loss + sums["nsp_loss"] / denominators["nsp"]
        return loss, sums

    def metrics_from_sums(self, sums) -> dict[str, jax.Array]:
        mlm_w = jnp.maximum(sums["mlm_weight"], 1.0)
        nsp_n = jnp.maximum(sums["nsp_count"], 1.0)
        return {
            "mlm_loss": sums["mlm_loss"] / mlm_w,
            "mlm_accuracy": sums["mlm_correct"] / mlm_w,
            "nsp_loss": sums["nsp_loss"] / nsp_n,
            "nsp_accuracy": sums["nsp_correct"] / nsp_n,
        }

    def flops_per_example(self, config, seq_length: int | None = None) -> float:
        """Model FLOPs (forward + backward) for one example of ``seq_length`` positions (default
        ``max_seq_length``); see ``bert_jax.flops``."""
        from bert_jax.flops import bert_pretraining_flops
        return bert_pretraining_flops(config, seq_length or self.max_seq_length, self.max_predictions_per_seq)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def open_loader(shard_dir: str, cfg, *, seed: int, shuffle_seed_offset: int = 0):
    """This process's ``PretrainingLoader`` over ``shard_dir``, checked against the run config
    (``data.*``, ``global_batch_size``, ``model.vocab_size``); a mismatch raises ValueError
    saying which setting to change."""
    import jax
    from data_pipeline.loader import PretrainingLoader
    loader = PretrainingLoader(shard_dir, cfg.global_batch_size, process_index=jax.process_index(),
                               process_count=jax.process_count(), seed=seed + shuffle_seed_offset,
                               dynamic_masking=cfg.data.dynamic_masking or None,
                               prefetch=cfg.data.prefetch, drop_remainder=True,
                               packing=cfg.data.packing,
                               max_instances_per_row=cfg.data.max_instances_per_row or None,
                               max_predictions_per_row=cfg.data.max_predictions_per_row or None)
    _check_manifest(shard_dir, loader.manifest, cfg)
    return loader


def _check_manifest(shard_dir: str, manifest: dict, cfg) -> None:
    """The shards' length, predictions and vocabulary size against the run config."""
    differ = [(field, manifest.get(field), cfg.data[field]) for field in ("max_seq_length", "max_predictions_per_seq")
              if manifest.get(field) != cfg.data[field]]  # all at once: one rerun, not one per field
    _require(not differ, f"shards in {shard_dir} have {' and '.join(f'{f}={h}' for f, h, _ in differ)} but the config "
             f"says {' and '.join(str(w) for _, _, w in differ)}; set "
             f"{' '.join(f'--config.data.{f}={h}' for f, h, _ in differ)} or rebuild the shards with "
             f"{' and '.join(f'{f}={w}' for f, _, w in differ)}.")
    vocab = cfg.model.vocab_size
    _require(vocab == -1 or manifest.get("vocab_size") in (None, vocab) or vocab > manifest["vocab_size"],
           f"shards in {shard_dir} use a vocabulary of {manifest.get('vocab_size')} tokens but "
           f"model.vocab_size={vocab}; set --config.model.vocab_size=-1 to take it from the shards.")


def _check_eval_shards(cfg, train_manifest: dict) -> None:
    """Refuse held-out shards that the first evaluation would fail on, or whose accuracy would mean
    nothing: another length or prediction count than the config, fewer examples than a batch, or
    another vocabulary than the training shards'. Reads the manifest only (each evaluation still
    verifies the shards it opens)."""
    from data_pipeline import shards
    try:
        directory, manifest = shards.load_manifest(cfg.data.eval_dir)
    except shards.ShardError as e:
        raise ValueError(f"data.eval_dir: {e}") from None
    _check_manifest(directory, manifest, cfg)
    num = int(manifest.get("num_examples", 0))
    _require(cfg.data.packing or num >= cfg.global_batch_size,
             f"the {num} examples in the eval shards {directory} make no full batch of {cfg.global_batch_size}; "
             "build more held-out examples (a higher --dupe-factor) or use a smaller --config.global_batch_size.")
    have, want = manifest.get("vocab_hash"), train_manifest.get("vocab_hash")
    _require(have is None or want is None or have == want,
             f"the eval shards in {directory} were built with another vocabulary ({manifest.get('vocab_size')} "
             f"tokens) than the training shards in {cfg.data.train_dir} ({train_manifest.get('vocab_size')} tokens), "
             f"so token ids mean other words there; rebuild them with "
             f"--vocab {os.path.join(cfg.data.train_dir, 'vocab.txt')} --output {directory} --overwrite.")


def pretraining_job(module=None, make_loader=None):
    """``make_job`` for ``bert_jax.trainer.run_training``: MLM(+NSP) on shards from ``bert-jax data build``.

    Args:
      module: optional Flax module to train instead of ``BertForPreTrainingModule``.
      make_loader: optional ``(shard_dir, config, seed) -> loader`` replacing ``open_loader``.
    """
    def make_job(cfg, params_key, *, resuming: bool):
        import itertools
        from bert_jax import evaluation, partitioning
        from bert_jax.config import BertConfig
        from bert_jax.metrics import to_host
        from bert_jax.tasks import TrainingJob

        _require(bool(cfg.data.train_dir) or make_loader is not None,
                 "data.train_dir is empty; pass --config.data.train_dir=SHARD_DIR (from 'bert-jax data build').")
        opener = make_loader or (lambda d, c, seed: open_loader(d, c, seed=seed))
        loader = opener(cfg.data.train_dir, cfg, int(cfg.seed))
        if cfg.data.eval_dir and make_loader is None:
            _check_eval_shards(cfg, loader.manifest)
        vocab_size = cfg.model.vocab_size if cfg.model.vocab_size > 0 else int(loader.manifest["vocab_size"])
        _require(cfg.data.max_seq_length <= cfg.model.max_position_embeddings,
                 f"data.max_seq_length={cfg.data.max_seq_length} exceeds model.max_position_embeddings="
                 f"{cfg.model.max_position_embeddings}; raise the latter or use shorter shards.")
        try:
            model_cfg = BertConfig(**{**cfg.model.to_dict(), "vocab_size": vocab_size})
        except (TypeError, ValueError) as e:
            raise ValueError(f"model config: {e}") from None
        model = module
        if model is None:
            from bert_jax.modeling import BertForPreTrainingModule
            dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[cfg.model_dtype]
            model = BertForPreTrainingModule(model_cfg, dtype=dtype, param_dtype=jnp.float32,
                                             remat_policy=cfg.remat_policy, scan_layers=cfg.scan_layers)
        if cfg.data.packing:
            layout = getattr(loader, "packing", None)
            _require(layout is not None, "data.packing=True but the loader yields unpacked rows; open it with "
                     "packing=True (data_pipeline.loader.PretrainingLoader) or set --config.data.packing=False.")
            task = PretrainingTask(model, cfg.data.max_seq_length, layout.max_predictions_per_row,
                                   use_nsp=cfg.use_nsp, packing=True,
                                   max_instances_per_row=layout.max_instances_per_row)
        else:
            task = PretrainingTask(model, cfg.data.max_seq_length, cfg.data.max_predictions_per_seq,
                                   use_nsp=cfg.use_nsp)

        def evaluate(context, params, step):
            eval_loader = opener(cfg.data.eval_dir, cfg, int(cfg.seed) + 1)
            try:
                sums = evaluation.metric_sums(context.steps.evaluate, params,
                                              itertools.islice(eval_loader, cfg.eval_steps or
                                                               eval_loader.steps_per_epoch), context.mesh)
            finally:
                if hasattr(eval_loader, "close"):
                    eval_loader.close()
            return to_host(task.metrics_from_sums(sums)) if sums is not None else {}

        def init_params():
            from bert_jax.warm_start import load_init_params
            fresh = partitioning.unbox(jax.jit(task.init_params)(params_key))
            return load_init_params(cfg.init_from, model_cfg, "BertForPreTraining", fresh,
                                    scan_layers=cfg.scan_layers)[0]

        return TrainingJob(task=task, model_config=model_cfg, loader=loader,
                           evaluate=evaluate if cfg.data.eval_dir else None, eval_at_end=bool(cfg.data.eval_dir),
                           init_params=init_params if cfg.init_from else None)
    return make_job
