"""bert-jax: BERT pretraining and fine-tuning in JAX.

Attributes are imported lazily so that ``import bert_jax`` (used by the data
pipeline for its tokenizer) does not load JAX or Flax.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "BertConfig": "bert_jax.config",
    "BertTokenizer": "bert_jax.tokenization",
    "BertTokenizerFast": "bert_jax.tokenization",
    "train_wordpiece": "bert_jax.vocab",
}
_MODEL_NAMES = (
    "BertModel",
    "BertForPreTraining",
    "BertForMaskedLM",
    "BertLMHeadModel",
    "BertForNextSentencePrediction",
    "BertForSequenceClassification",
    "BertForMultipleChoice",
    "BertForTokenClassification",
    "BertForQuestionAnswering",
    "BertModelOutput",
    "BertForPreTrainingOutput",
    "MaskedLMOutput",
    "CausalLMOutput",
    "NextSentencePredictorOutput",
    "SequenceClassifierOutput",
    "MultipleChoiceModelOutput",
    "TokenClassifierOutput",
    "QuestionAnsweringModelOutput",
)
_LAZY.update({name: "bert_jax.modeling" for name in _MODEL_NAMES})

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'bert_jax' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
