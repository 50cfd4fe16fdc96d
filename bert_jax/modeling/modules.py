"""Linen modules: ``BertModule`` (the encoder) and one ``<Task>Module`` per model class.

Every task module calls the same encoder (submodule ``bert``) and adds its head,
so heads compose and the encoder call is written once. Each returns the task's
output dataclass; given labels, ``loss`` follows Hugging Face's semantics (mean
over counted labels) and is built from ``bert_jax.losses``.

Call: ``module.apply({"params": p}, input_ids [batch, length], attention_mask,
token_type_ids, position_ids, deterministic=..., output_hidden_states=...,
output_attentions=..., <labels>..., rngs={"dropout": key})``.

Packed rows (several instances per row, ``data_pipeline.packing``): ``BertModule`` and
``BertForPreTrainingModule`` also take ``segment_ids`` int [batch, length] (1..k per
instance, 0 = padding), which limits attention to the query's own instance, and
``position_ids`` restarting at 0 per instance; the pretraining module takes
``next_sentence_positions`` [batch, k] to read each instance's NSP logits at its [CLS].
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import flax.linen as nn

from bert_jax import losses
from bert_jax.config import BertConfig
from bert_jax.modeling import outputs as O
from bert_jax.modeling.heads import BertOnlyMLMHead, BertOnlyNSPHead, BertPreTrainingHeads
from bert_jax.modeling.encoder import BertEncoder
from bert_jax.modeling.layers import BertEmbeddings, BertPooler, Dropout, Dtype, dense, unboxed


class BertModule(nn.Module):
    """Embeddings -> ``encoder/layer/{i}`` -> optional pooler. Returns ``BertModelOutput``."""

    config: BertConfig
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    add_pooling_layer: bool = True
    remat_policy: str = "none"
    scan_layers: bool = False

    @nn.compact
    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, *,
                 encoder_hidden_states=None, encoder_attention_mask=None, deterministic: bool = True,
                 output_hidden_states: bool = False, output_attentions: bool = False, decode: bool = False,
                 segment_ids=None, pooled_positions=None):
        """input_ids int [batch, length]; attention_mask [batch, length] (1 = token, 0 = padding;
        [batch, cache_length] when ``decode``); encoder_hidden_states [batch, enc_length, hidden].

        segment_ids int [batch, length]: packed instances (1..k, 0 = padding); a token attends only
        to the tokens of its own segment. pooled_positions int [batch, k]: the pooler reads these
        positions (each instance's [CLS]) and ``pooler_output`` is [batch, k, hidden]."""
        if input_ids.shape[-1] > self.config.max_position_embeddings:
            # Out-of-range embedding lookups would not fail under jit; they would read garbage.
            raise ValueError(f"input length {input_ids.shape[-1]} exceeds max_position_embeddings="
                             f"{self.config.max_position_embeddings}; truncate the inputs.")
        if token_type_ids is None:
            token_type_ids = jnp.zeros_like(input_ids)
        if position_ids is None:
            position_ids = jnp.broadcast_to(jnp.arange(input_ids.shape[-1]), input_ids.shape)
        hidden = BertEmbeddings(self.config, self.dtype, self.param_dtype, name="embeddings")(
            input_ids, token_type_ids, position_ids, deterministic)
        key_mask = None if attention_mask is None else attention_mask.astype(bool)
        if segment_ids is not None:
            # Block-diagonal [batch, length, length]: same segment only. Padding (segment 0) attends
            # to padding, so no query row is fully masked (which would make its softmax degenerate).
            same = segment_ids[:, :, None] == segment_ids[:, None, :]
            if key_mask is not None:
                # A real query also never sees a key the attention mask excludes.
                same = same & (key_mask[:, None, :] | ~key_mask[:, :, None])
            key_mask = same
        encoder_mask = None
        if encoder_hidden_states is not None:
            encoder_hidden_states = encoder_hidden_states.astype(self.dtype)
            if encoder_attention_mask is not None:
                encoder_mask = encoder_attention_mask.astype(bool)
        encoder = BertEncoder(self.config, self.dtype, self.param_dtype, self.remat_policy, self.scan_layers,
                              name="encoder")
        hidden, all_hidden, all_attn, all_cross = encoder(
            hidden, key_mask, encoder_hidden_states, encoder_mask, deterministic=deterministic,
            output_hidden_states=output_hidden_states, output_attentions=output_attentions, decode=decode)
        pooled = BertPooler(self.config, self.dtype, self.param_dtype, name="pooler")(hidden, pooled_positions) \
            if self.add_pooling_layer else None
        return O.BertModelOutput(last_hidden_state=hidden, pooler_output=pooled, hidden_states=all_hidden,
                                 attentions=all_attn, cross_attentions=all_cross)


BertModelModule = BertModule


class _TaskModule(nn.Module):
    """Fields shared by the task modules; builds the ``bert`` encoder."""

    config: BertConfig
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    remat_policy: str = "none"
    scan_layers: bool = False

    def _encode(self, pool, input_ids, attention_mask, token_type_ids, position_ids, deterministic,
                output_hidden_states, output_attentions, **kw):
        bert = BertModule(self.config, self.dtype, self.param_dtype, pool, self.remat_policy, self.scan_layers,
                          name="bert")
        out = bert(input_ids, attention_mask, token_type_ids, position_ids, deterministic=deterministic,
                   output_hidden_states=output_hidden_states, output_attentions=output_attentions, **kw)
        table = unboxed(bert.variables["params"]["embeddings"]["word_embeddings"]["embedding"])
        return out, table

    def _dropout(self, x, deterministic):
        c = self.config
        rate = c.classifier_dropout if c.classifier_dropout is not None else c.hidden_dropout_prob
        return Dropout(rate)(x, deterministic=deterministic)


def _gather(hidden, positions):
    """hidden [batch, length, hidden], positions int [batch, predictions] -> [batch, predictions, hidden]."""
    if positions is None:
        return hidden
    return jnp.take_along_axis(hidden, positions.astype(jnp.int32)[..., None], axis=1)


def _mlm_loss(logits, labels, weights):
    if weights is None:
        return losses.mean(losses.cross_entropy_with_ignore(logits, labels))
    return losses.mean(losses.masked_lm_loss(logits, labels, weights))


class BertForPreTrainingModule(_TaskModule):
    """MLM + NSP. ``masked_lm_positions`` [batch, predictions] gathers before the MLM head;
    ``labels`` then align with the positions (``-100`` ignored, or ``masked_lm_weights``).
    Packed rows: ``segment_ids`` [batch, length] and ``next_sentence_positions`` [batch, k]
    (each instance's [CLS]) give NSP logits [batch, k, 2] and ``next_sentence_label`` [batch, k]."""

    @nn.compact
    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, *,
                 deterministic=True, output_hidden_states=False, output_attentions=False,
                 masked_lm_positions=None, masked_lm_weights=None, labels=None, next_sentence_label=None,
                 segment_ids=None, next_sentence_positions=None):
        packed = {}
        if segment_ids is not None or next_sentence_positions is not None:
            packed = {"segment_ids": segment_ids, "pooled_positions": next_sentence_positions}
        out, table = self._encode(True, input_ids, attention_mask, token_type_ids, position_ids, deterministic,
                                  output_hidden_states, output_attentions, **packed)
        mlm, nsp = BertPreTrainingHeads(self.config, self.dtype, self.param_dtype, name="cls")(
            _gather(out.last_hidden_state, masked_lm_positions), out.pooler_output, table)
        loss = None
        if labels is not None and next_sentence_label is not None:
            loss = _mlm_loss(mlm, labels, masked_lm_weights) + losses.mean(
                losses.cross_entropy_with_ignore(nsp, next_sentence_label))
        return O.BertForPreTrainingOutput(loss=loss, prediction_logits=mlm, seq_relationship_logits=nsp,
                                          hidden_states=out.hidden_states, attentions=out.attentions)


class BertForMaskedLMModule(_TaskModule):
    """Masked LM; same ``masked_lm_positions`` / ``masked_lm_weights`` options as pretraining."""

    @nn.compact
    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, *,
                 deterministic=True, output_hidden_states=False, output_attentions=False,
                 masked_lm_positions=None, masked_lm_weights=None, labels=None):
        out, table = self._encode(False, input_ids, attention_mask, token_type_ids, position_ids, deterministic,
                                  output_hidden_states, output_attentions)
        logits = BertOnlyMLMHead(self.config, self.dtype, self.param_dtype, name="cls")(
            _gather(out.last_hidden_state, masked_lm_positions), table)
        loss = None if labels is None else _mlm_loss(logits, labels, masked_lm_weights)
        return O.MaskedLMOutput(loss=loss, logits=logits, hidden_states=out.hidden_states,
                                attentions=out.attentions)


class BertLMHeadModelModule(_TaskModule):
    """Causal LM (``config.is_decoder``); optional cross-attention; ``decode=True`` uses the
    ``cache`` collection (see ``bert_jax.modeling.generation``). ``labels`` are shifted inside."""

    @nn.compact
    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, *,
                 deterministic=True, output_hidden_states=False, output_attentions=False,
                 encoder_hidden_states=None, encoder_attention_mask=None, labels=None, decode=False):
        out, table = self._encode(False, input_ids, attention_mask, token_type_ids, position_ids, deterministic,
                                  output_hidden_states, output_attentions,
                                  encoder_hidden_states=encoder_hidden_states,
                                  encoder_attention_mask=encoder_attention_mask, decode=decode)
        logits = BertOnlyMLMHead(self.config, self.dtype, self.param_dtype, name="cls")(out.last_hidden_state, table)
        loss = None
        if labels is not None:
            loss = losses.mean(losses.cross_entropy_with_ignore(logits[:, :-1], labels[:, 1:]))
        return O.CausalLMOutput(loss=loss, logits=logits, hidden_states=out.hidden_states,
                                attentions=out.attentions, cross_attentions=out.cross_attentions)


class BertForNextSentencePredictionModule(_TaskModule):
    """NSP logits [batch, 2] from the pooled output."""

    @nn.compact
    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, *,
                 deterministic=True, output_hidden_states=False, output_attentions=False, labels=None):
        out, _ = self._encode(True, input_ids, attention_mask, token_type_ids, position_ids, deterministic,
                              output_hidden_states, output_attentions)
        logits = BertOnlyNSPHead(self.config, self.dtype, self.param_dtype, name="cls")(out.pooler_output)
        loss = None if labels is None else losses.mean(losses.cross_entropy_with_ignore(logits, labels))
        return O.NextSentencePredictorOutput(loss=loss, logits=logits, hidden_states=out.hidden_states,
                                             attentions=out.attentions)


def sequence_classification_loss(config: BertConfig, logits, labels):
    """Hugging Face's rule: regression when num_labels == 1, single-label for integer labels,
    multi-label otherwise (or as ``config.problem_type`` says)."""
    problem = config.problem_type
    if problem is None:
        if config.num_labels == 1:
            problem = "regression"
        elif jnp.issubdtype(labels.dtype, jnp.integer):
            problem = "single_label_classification"
        else:
            problem = "multi_label_classification"
    if problem == "regression":
        if config.num_labels == 1:
            return losses.mean(losses.mean_squared_error(logits.reshape(-1), labels.reshape(-1)))
        return losses.mean(losses.mean_squared_error(logits, labels))
    if problem == "single_label_classification":
        return losses.mean(losses.cross_entropy_with_ignore(logits, labels.reshape(-1)))
    return losses.mean(losses.sigmoid_binary_cross_entropy(logits, labels))


class BertForSequenceClassificationModule(_TaskModule):
    """Pooled output -> dropout -> ``classifier`` -> logits [batch, num_labels]."""

    @nn.compact
    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, *,
                 deterministic=True, output_hidden_states=False, output_attentions=False, labels=None):
        c = self.config
        out, _ = self._encode(True, input_ids, attention_mask, token_type_ids, position_ids, deterministic,
                              output_hidden_states, output_attentions)
        pooled = self._dropout(out.pooler_output, deterministic)
        logits = dense(c, c.num_labels, ("embed", None), self.dtype, self.param_dtype, "classifier")(pooled)
        loss = None if labels is None else sequence_classification_loss(c, logits, labels)
        return O.SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=out.hidden_states,
                                          attentions=out.attentions)


class BertForMultipleChoiceModule(_TaskModule):
    """input_ids [batch, num_choices, length] -> logits [batch, num_choices]."""

    @nn.compact
    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, *,
                 deterministic=True, output_hidden_states=False, output_attentions=False, labels=None):
        num_choices = input_ids.shape[1]
        flat = lambda x: None if x is None else x.reshape((-1, x.shape[-1]))
        out, _ = self._encode(True, flat(input_ids), flat(attention_mask), flat(token_type_ids),
                              flat(position_ids), deterministic, output_hidden_states, output_attentions)
        pooled = self._dropout(out.pooler_output, deterministic)
        logits = dense(self.config, 1, ("embed", None), self.dtype, self.param_dtype, "classifier")(pooled)
        logits = logits.reshape((-1, num_choices))
        loss = None if labels is None else losses.mean(losses.cross_entropy_with_ignore(logits, labels))
        return O.MultipleChoiceModelOutput(loss=loss, logits=logits, hidden_states=out.hidden_states,
                                           attentions=out.attentions)


class BertForTokenClassificationModule(_TaskModule):
    """Per-token logits [batch, length, num_labels]; label -100 ignored."""

    @nn.compact
    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, *,
                 deterministic=True, output_hidden_states=False, output_attentions=False, labels=None):
        c = self.config
        out, _ = self._encode(False, input_ids, attention_mask, token_type_ids, position_ids, deterministic,
                              output_hidden_states, output_attentions)
        hidden = self._dropout(out.last_hidden_state, deterministic)
        logits = dense(c, c.num_labels, ("embed", None), self.dtype, self.param_dtype, "classifier")(hidden)
        loss = None if labels is None else losses.mean(losses.cross_entropy_with_ignore(logits, labels))
        return O.TokenClassifierOutput(loss=loss, logits=logits, hidden_states=out.hidden_states,
                                       attentions=out.attentions)


class BertForQuestionAnsweringModule(_TaskModule):
    """Span start/end logits [batch, length]; positions outside the sequence are ignored."""

    @nn.compact
    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, *,
                 deterministic=True, output_hidden_states=False, output_attentions=False,
                 start_positions=None, end_positions=None):
        out, _ = self._encode(False, input_ids, attention_mask, token_type_ids, position_ids, deterministic,
                              output_hidden_states, output_attentions)
        logits = dense(self.config, 2, ("embed", None), self.dtype, self.param_dtype, "qa_outputs")(
            out.last_hidden_state)
        start, end = logits[..., 0], logits[..., 1]
        loss = None
        if start_positions is not None and end_positions is not None:
            # As Hugging Face: clamp to [0, length] and ignore index == length.
            length = start.shape[1]
            s = jnp.clip(start_positions.reshape(-1), 0, length)
            e = jnp.clip(end_positions.reshape(-1), 0, length)
            loss = (losses.mean(losses.cross_entropy_with_ignore(start, s, ignore_index=length))
                    + losses.mean(losses.cross_entropy_with_ignore(end, e, ignore_index=length))) / 2
        return O.QuestionAnsweringModelOutput(loss=loss, start_logits=start, end_logits=end,
                                              hidden_states=out.hidden_states, attentions=out.attentions)


# Hugging Face class name -> linen module class.
TASK_MODULES = {
    "BertModel": BertModule,
    "BertForPreTraining": BertForPreTrainingModule,
    "BertForMaskedLM": BertForMaskedLMModule,
    "BertLMHeadModel": BertLMHeadModelModule,
    "BertForNextSentencePrediction": BertForNextSentencePredictionModule,
    "BertForSequenceClassification": BertForSequenceClassificationModule,
    "BertForMultipleChoice": BertForMultipleChoiceModule,
    "BertForTokenClassification": BertForTokenClassificationModule,
    "BertForQuestionAnswering": BertForQuestionAnsweringModule,
}


def build_module(config: BertConfig, target: str, **module_kwargs) -> nn.Module:
    """The linen module of class name ``target`` (e.g. "BertForPreTraining")."""
    if target not in TASK_MODULES:
        raise ValueError(f"Unknown model class {target!r}; use one of {', '.join(TASK_MODULES)}.")
    return TASK_MODULES[target](config=config, **module_kwargs)


def dummy_inputs(config: BertConfig, target: str, length: Optional[int] = None) -> dict:
    """Small inputs that create every parameter of ``target`` when passed to ``module.init``."""
    length = length or min(8, config.max_position_embeddings)
    shape = (1, 2, length) if target == "BertForMultipleChoice" else (1, length)
    inputs = {"input_ids": jnp.zeros(shape, jnp.int32)}
    if target == "BertLMHeadModel" and config.add_cross_attention:
        inputs["encoder_hidden_states"] = jnp.zeros((1, length, config.hidden_size), jnp.float32)
    return inputs


def init_params(module: nn.Module, config: BertConfig, target: str, rng: jax.Array) -> dict:
    """Random parameters (plain nested dict, logical boxes stripped), initialised under jit."""
    inputs = dummy_inputs(config, target)
    variables = jax.jit(lambda r: module.init({"params": r}, **inputs))(rng)
    return unboxed(variables["params"])


def param_shapes(module: nn.Module, config: BertConfig, target: str) -> dict:
    """``jax.ShapeDtypeStruct`` tree of the parameters, without allocating them."""
    inputs = dummy_inputs(config, target)
    variables = jax.eval_shape(lambda r: module.init({"params": r}, **inputs), jax.random.key(0))
    return unboxed(variables["params"])
