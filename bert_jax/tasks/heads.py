"""The JAX side of fine-tuning: one loop-facing task object per model head.

Each object gives the training loop (``bert_jax.train``) what it needs: the
batch layout, parameter initialisation, the loss with metric *sums* (averaged
once over the global batch, so accumulation over microbatches equals one big
step), and ``predict`` -- the per-row outputs a registered task post-processes
on the host. ``row_weight`` float32 ``[batch]`` is 0 on padding rows of an
evaluation pass; they count nowhere.

  head                      module                                  batch targets / predict outputs
  sequence_classification   BertForSequenceClassificationModule     labels [b] (float for 1 label) / logits [b, labels]
  token_classification      BertForTokenClassificationModule        labels [b, len] (-100 ignored) / logits [b, len, labels]
  question_answering        BertForQuestionAnsweringModule          start/end_positions [b] / start/end_logits [b, len]
  multiple_choice           BertForMultipleChoiceModule             labels [b]; inputs [b, choices, len] / logits [b, choices]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bert_jax import losses

IGNORE_LABEL = -100

MODULE_CLASSES = {
    "sequence_classification": "BertForSequenceClassification",
    "token_classification": "BertForTokenClassification",
    "question_answering": "BertForQuestionAnswering",
    "multiple_choice": "BertForMultipleChoice",
}


@dataclass(frozen=True)
class HeadTask:
    """Args:
      module: the Flax module of ``MODULE_CLASSES[head]``.
      max_seq_length: tokens per row.
      num_labels: classes (1 = regression for sequence classification).
      num_choices: choices per example (multiple choice only).
    """

    module: Any
    head: str
    max_seq_length: int
    num_labels: int = 2
    num_choices: int = 0

    # --------------------------------------------------------------- layout
    @property
    def regression(self) -> bool:
        return self.head == "sequence_classification" and self.num_labels == 1

    def _input_shape(self) -> tuple[int, ...]:
        if self.head == "multiple_choice":
            return (self.num_choices, self.max_seq_length)
        return (self.max_seq_length,)

    @property
    def input_spec(self) -> dict[str, tuple[Any, tuple[int, ...]]]:
        shape = self._input_shape()
        return {"input_ids": (np.int32, shape), "attention_mask": (np.int32, shape),
                "token_type_ids": (np.int32, shape)}

    @property
    def target_spec(self) -> dict[str, tuple[Any, tuple[int, ...]]]:
        if self.head == "question_answering":
            return {"start_positions": (np.int32, ()), "end_positions": (np.int32, ())}
        if self.head == "token_classification":
            return {"labels": (np.int32, (self.max_seq_length,))}
        return {"labels": (np.float32 if self.regression else np.int32, ())}

    @property
    def batch_spec(self) -> dict[str, tuple[Any, tuple[int, ...]]]:
        return {**self.input_spec, **self.target_spec, "row_weight": (np.float32, ())}

    @property
    def predict_spec(self) -> dict[str, tuple[Any, tuple[int, ...]]]:
        """What ``predict`` reads: the inputs plus ``row_id`` (-1 = padding row)."""
        return {**self.input_spec, "row_id": (np.int32, ())}

    def init_params(self, rng):
        """Boxed parameters (``nn.Partitioned`` with logical axis names)."""
        ids = jnp.zeros((1,) + self._input_shape(), jnp.int32)
        variables = self.module.init({"params": rng, "dropout": rng}, ids, jnp.ones_like(ids), ids,
                                     deterministic=True)
        return variables["params"]

    # --------------------------------------------------------------- loss
    def _apply(self, params, batch, rng, deterministic):
        return self.module.apply({"params": params}, batch["input_ids"], batch["attention_mask"],
                                 batch["token_type_ids"], deterministic=deterministic, rngs={"dropout": rng})

    def denominators(self, batch) -> dict[str, jax.Array]:
        weight = batch["row_weight"].astype(jnp.float32)
        if self.head == "token_classification":
            labelled = (batch["labels"] != IGNORE_LABEL) & (weight[:, None] > 0)
            return {"examples": jnp.maximum(jnp.sum(labelled.astype(jnp.float32)), 1.0)}
        return {"examples": jnp.maximum(jnp.sum(weight), 1.0)}

    def loss(self, params, batch, rng, denominators, deterministic: bool = False):
        """Scalar loss (divided by the global denominator) and metric sums."""
        out = self._apply(params, batch, rng, deterministic)
        weight = batch["row_weight"].astype(jnp.float32)
        if self.head == "question_answering":
            keep = weight > 0
            pairs = [losses.cross_entropy_with_ignore(
                logits, jnp.where(keep, batch[name], IGNORE_LABEL), ignore_index=IGNORE_LABEL)
                for logits, name in ((out.start_logits, "start_positions"), (out.end_logits, "end_positions"))]
            total = (pairs[0][0] + pairs[1][0]) / 2
            sums = {"loss_sum": total, "count": pairs[0][1]}
            return total / denominators["examples"], sums
        if self.regression:
            error = out.logits[:, 0].astype(jnp.float32) - batch["labels"].astype(jnp.float32)
            sums = {"loss_sum": jnp.sum(error * error * weight), "count": jnp.sum(weight)}
            return sums["loss_sum"] / denominators["examples"], sums
        labels = batch["labels"]
        if self.head == "token_classification":
            labels = jnp.where(weight[:, None] > 0, labels, IGNORE_LABEL)
        else:
            labels = jnp.where(weight > 0, labels, IGNORE_LABEL)
        pair = losses.cross_entropy_with_ignore(out.logits, labels, ignore_index=IGNORE_LABEL)
        correct, _ = losses.accuracy_with_ignore(out.logits, labels, ignore_index=IGNORE_LABEL)
        sums = {"loss_sum": pair[0], "count": pair[1], "correct": correct}
        return pair[0] / denominators["examples"], sums

    def metrics_from_sums(self, sums) -> dict[str, jax.Array]:
        out = {"loss": losses.mean((sums["loss_sum"], sums["count"]))}
        if "correct" in sums:
            out["accuracy"] = losses.mean((sums["correct"], sums["count"]))
        return out

    # --------------------------------------------------------------- predict
    def predict(self, params, batch) -> dict[str, jax.Array]:
        """Per-row outputs (deterministic), plus ``row_id`` passed through for bookkeeping."""
        out = self._apply(params, batch, jax.random.PRNGKey(0), True)
        if self.head == "question_answering":
            result = {"start_logits": out.start_logits.astype(jnp.float32),
                      "end_logits": out.end_logits.astype(jnp.float32)}
        else:
            result = {"logits": out.logits.astype(jnp.float32)}
        return {**result, "row_id": batch["row_id"]}

    def flops_per_example(self, config, seq_length: int | None = None) -> float:
        """Model FLOPs (forward + backward) for one row of ``seq_length`` positions (default
        ``max_seq_length``); see ``bert_jax.flops``."""
        from bert_jax.flops import bert_pretraining_flops
        # With no masked predictions the pretraining count is the encoder + pooler + a 2-way head.
        rows = max(self.num_choices, 1)
        return rows * bert_pretraining_flops(config, seq_length or self.max_seq_length, 0)


def build_head_task(head: str, model_cfg, cfg, *, num_labels: int, num_choices: int = 0) -> HeadTask:
    """The ``HeadTask`` of ``head`` on a model built from the run config (dtype, remat, scan)."""
    from bert_jax.modeling.modules import build_module
    dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[cfg.model_dtype]
    module = build_module(model_cfg, MODULE_CLASSES[head], dtype=dtype, param_dtype=jnp.float32,
                          remat_policy=cfg.remat_policy, scan_layers=cfg.scan_layers)
    return HeadTask(module, head, int(cfg.data.max_seq_length), num_labels=num_labels, num_choices=num_choices)
