"""BERT in Flax: linen modules, the nine user-facing model classes and their outputs.

Layout: ``layers`` (embeddings, attention, encoder layers, pooler), ``heads``
(MLM / NSP heads), ``modules`` (``BertModule`` and one ``<Class>Module`` per task),
``models`` (user-facing classes with from_pretrained / save_pretrained),
``outputs`` (output dataclasses), ``generation`` (cache + generate).

Logical axis names, a closed vocabulary (``LOGICAL_AXES``), annotate every parameter:

| parameter                                   | axes                 |
| ------------------------------------------- | -------------------- |
| word_embeddings/embedding                   | ("vocab", "embed")   |
| position/token_type embeddings              | (None, "embed")      |
| attention self query/key/value kernel, bias | ("embed", "heads"), ("heads",) |
| attention output dense kernel               | ("heads", "embed")   |
| intermediate dense kernel, bias             | ("embed", "mlp"), ("mlp",) |
| output dense kernel                         | ("mlp", "embed")     |
| LayerNorm scale, bias; dense biases to embed| ("embed",)           |
| pooler, cls transform, classifier, qa_outputs, seq_relationship kernels | ("embed", None) |
| cls/predictions/bias; untied decoder kernel | ("vocab",); ("embed", "vocab") |

Activations are constrained to ("batch", "length", "embed"), ("batch", "length",
"heads", "kv") and ("batch", "length", "mlp").
"""

import importlib

from bert_jax.modeling.layers import LOGICAL_AXES
from bert_jax.modeling.modules import (
    TASK_MODULES,
    BertForMaskedLMModule,
    BertForMultipleChoiceModule,
    BertForNextSentencePredictionModule,
    BertForPreTrainingModule,
    BertForQuestionAnsweringModule,
    BertForSequenceClassificationModule,
    BertForTokenClassificationModule,
    BertLMHeadModelModule,
    BertModelModule,
    BertModule,
    build_module,
)
from bert_jax.modeling.outputs import (
    BertForPreTrainingOutput,
    BertModelOutput,
    CausalLMOutput,
    MaskedLMOutput,
    MultipleChoiceModelOutput,
    NextSentencePredictorOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)

# The user-facing classes read and write checkpoints through bert_jax.convert, which builds
# ``modules`` to know the parameter shapes. Loading ``models`` on first use keeps imports one
# way (modules <- convert <- models): importing a module of this package never imports convert.
_FROM_MODELS = ("BertForMaskedLM", "BertForMultipleChoice", "BertForNextSentencePrediction", "BertForPreTraining",
                "BertForQuestionAnswering", "BertForSequenceClassification", "BertForTokenClassification",
                "BertLMHeadModel", "BertModel", "BertPreTrainedModel", "MODEL_CLASSES")


def __getattr__(name: str):
    if name in _FROM_MODELS:
        return getattr(importlib.import_module("bert_jax.modeling.models"), name)
    raise AttributeError(f"module 'bert_jax.modeling' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_FROM_MODELS))
