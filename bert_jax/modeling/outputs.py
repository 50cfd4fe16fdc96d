"""Output dataclasses of the models, with Hugging Face's field names.

They are ``flax.struct.dataclass`` pytrees, so they pass through ``jax.jit``;
fields a call did not ask for are ``None``. Shapes below use ``hidden`` for
``config.hidden_size`` and ``predictions`` for the sequence length or, with
``masked_lm_positions``, the number of gathered positions.
"""

from __future__ import annotations

from typing import Any, Optional

import flax.struct

Array = Any


@flax.struct.dataclass
class BertModelOutput:
    """last_hidden_state [batch, length, hidden]; pooler_output [batch, hidden] (None without pooler);
    hidden_states: num_layers + 1 arrays [batch, length, hidden]; attentions: num_layers arrays
    [batch, heads, length, length]; cross_attentions: [batch, heads, length, encoder_length]."""

    last_hidden_state: Array = None
    pooler_output: Optional[Array] = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None
    cross_attentions: Optional[tuple] = None


@flax.struct.dataclass
class BertForPreTrainingOutput:
    """prediction_logits [batch, predictions, vocab]; seq_relationship_logits [batch, 2]."""

    loss: Optional[Array] = None
    prediction_logits: Array = None
    seq_relationship_logits: Array = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


@flax.struct.dataclass
class MaskedLMOutput:
    """logits [batch, predictions, vocab]."""

    loss: Optional[Array] = None
    logits: Array = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


@flax.struct.dataclass
class CausalLMOutput:
    """logits [batch, length, vocab]; cross_attentions when the decoder attends to an encoder."""

    loss: Optional[Array] = None
    logits: Array = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None
    cross_attentions: Optional[tuple] = None


@flax.struct.dataclass
class NextSentencePredictorOutput:
    """logits [batch, 2] (index 0: B follows A)."""

    loss: Optional[Array] = None
    logits: Array = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


@flax.struct.dataclass
class SequenceClassifierOutput:
    """logits [batch, num_labels]."""

    loss: Optional[Array] = None
    logits: Array = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


@flax.struct.dataclass
class MultipleChoiceModelOutput:
    """logits [batch, num_choices]; hidden_states/attentions over [batch * num_choices, length]."""

    loss: Optional[Array] = None
    logits: Array = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


@flax.struct.dataclass
class TokenClassifierOutput:
    """logits [batch, length, num_labels]."""

    loss: Optional[Array] = None
    logits: Array = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


@flax.struct.dataclass
class QuestionAnsweringModelOutput:
    """start_logits, end_logits [batch, length]."""

    loss: Optional[Array] = None
    start_logits: Array = None
    end_logits: Array = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None
