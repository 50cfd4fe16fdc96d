"""Prediction heads that sit on the encoder: masked-LM and next-sentence prediction.

Names follow Hugging Face (``cls/predictions/transform/dense``, ``cls/predictions/bias``,
``cls/seq_relationship``). The MLM decoder reuses the word-embedding table unless
``config.tie_word_embeddings`` is False, in which case it owns ``cls/predictions/decoder``.
"""

from __future__ import annotations

import jax.numpy as jnp
import flax.linen as nn

from bert_jax.config import BertConfig
from bert_jax.modeling.layers import ACTIVATIONS, Dtype, add_vocab_bias, dense, einsum, layer_norm


class BertPredictionHeadTransform(nn.Module):
    """dense -> activation -> LayerNorm on [batch, predictions, hidden]."""

    config: BertConfig
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, hidden):
        c = self.config
        hidden = dense(c, c.hidden_size, ("embed", None), self.dtype, self.param_dtype, "dense")(hidden)
        hidden = ACTIVATIONS[c.hidden_act](hidden)
        return layer_norm(c, self.dtype, self.param_dtype)(hidden)


class BertLMPredictionHead(nn.Module):
    """[batch, predictions, hidden] -> vocabulary logits [batch, predictions, vocab]."""

    config: BertConfig
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, hidden, word_embeddings):
        """word_embeddings: the tied table [vocab, hidden] (ignored when untied)."""
        c = self.config
        hidden = BertPredictionHeadTransform(c, self.dtype, self.param_dtype, name="transform")(hidden)
        if c.tie_word_embeddings:
            logits = einsum("...h,vh->...v", hidden, jnp.asarray(word_embeddings, self.dtype), self.dtype)
        else:
            logits = dense(c, c.vocab_size, ("embed", "vocab"), self.dtype, self.param_dtype, "decoder",
                           use_bias=False)(hidden)
        bias = self.param("bias", nn.with_logical_partitioning(nn.initializers.zeros, ("vocab",)),
                          (c.vocab_size,), self.param_dtype)
        return add_vocab_bias(logits, jnp.asarray(bias, logits.dtype))


class BertOnlyMLMHead(nn.Module):
    """``cls`` of the masked-LM and causal-LM models: just ``predictions``."""

    config: BertConfig
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, hidden, word_embeddings):
        return BertLMPredictionHead(self.config, self.dtype, self.param_dtype, name="predictions")(
            hidden, word_embeddings)


class BertOnlyNSPHead(nn.Module):
    """``cls`` of the next-sentence model: pooled [batch, hidden] -> logits [batch, 2]."""

    config: BertConfig
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, pooled):
        return dense(self.config, 2, ("embed", None), self.dtype, self.param_dtype, "seq_relationship")(pooled)


class BertPreTrainingHeads(nn.Module):
    """``cls`` of the pretraining model: MLM logits and NSP logits."""

    config: BertConfig
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, hidden, pooled, word_embeddings):
        mlm = BertLMPredictionHead(self.config, self.dtype, self.param_dtype, name="predictions")(
            hidden, word_embeddings)
        nsp = dense(self.config, 2, ("embed", None), self.dtype, self.param_dtype, "seq_relationship")(pooled)
        return mlm, nsp
