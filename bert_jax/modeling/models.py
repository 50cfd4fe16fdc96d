"""The nine user-facing model classes: a config, a linen module and its parameters.

``model = BertForPreTraining(config, seed=0)`` builds random parameters;
``BertForPreTraining.from_pretrained(dir)`` loads a Hugging Face directory
(config.json + model.safetensors / pytorch_model.bin), a bert-jax checkpoint or an
original TensorFlow one (bert_model.ckpt.* + bert_config.json);
``model.save_pretrained(dir)`` writes one that ``transformers`` loads. Calling a
model runs the module under ``jax.jit``. Training loops use ``model.module`` and
``model.params`` directly with their own jitted step.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp

from bert_jax.config import BertConfig
from bert_jax.convert import hf, native, tf
from bert_jax.modeling import modules
from bert_jax.modeling.generation import generate

_STATIC = ("train", "output_hidden_states", "output_attentions")


class BertPreTrainedModel:
    """Shared machinery; subclasses set ``target`` (the Hugging Face class name)."""

    target: str = ""

    def __init__(self, config: BertConfig, seed: int = 0, dtype: Any = jnp.float32, param_dtype: Any = jnp.float32,
                 *, params: dict | None = None, **module_kwargs):
        """Args:
          config: the model's BertConfig.
          seed: seeds the random initialisation (ignored when ``params`` is given).
          dtype: compute dtype (e.g. jnp.bfloat16); param_dtype: storage dtype of parameters.
          params: parameters to use instead of a random initialisation.
          module_kwargs: ``remat_policy``, ``scan_layers``.
        """
        if not isinstance(config, BertConfig):
            raise TypeError(f"config must be a bert_jax.BertConfig, got {type(config).__name__}.")
        config.validate()
        self.config = config
        self.dtype, self.param_dtype = dtype, param_dtype
        self.module = modules.build_module(config, self.target, dtype=dtype, param_dtype=param_dtype, **module_kwargs)
        if params is None:
            params = modules.init_params(self.module, config, self.target, jax.random.key(seed))
        self.params = jax.tree_util.tree_map(jnp.asarray, params)
        self._forward = jax.jit(self._apply, static_argnames=_STATIC)

    def _apply(self, params, inputs, extras, dropout_rng, train, output_hidden_states, output_attentions):
        rngs = {"dropout": dropout_rng} if dropout_rng is not None else {}
        return self.module.apply({"params": params}, **inputs, deterministic=not train,
                                 output_hidden_states=output_hidden_states, output_attentions=output_attentions,
                                 rngs=rngs, **extras)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, *, params=None,
                 dropout_rng=None, train: bool = False, output_hidden_states: bool = False,
                 output_attentions: bool = False, **labels_and_extras):
        """Runs the model. ``input_ids`` int [batch, length] ([batch, choices, length] for multiple
        choice); labels and extras (``labels``, ``masked_lm_positions``, ...) as keyword arguments.
        Returns the class's output dataclass."""
        if train and dropout_rng is None:
            raise ValueError("train=True applies dropout and needs dropout_rng (a jax.random key).")
        as_array = lambda x: None if x is None else jnp.asarray(x)
        inputs = {"input_ids": as_array(input_ids), "attention_mask": as_array(attention_mask),
                  "token_type_ids": as_array(token_type_ids), "position_ids": as_array(position_ids)}
        extras = {k: as_array(v) for k, v in labels_and_extras.items()}
        return self._forward(self.params if params is None else params, inputs, extras, dropout_rng,
                             train=train, output_hidden_states=output_hidden_states,
                             output_attentions=output_attentions)

    # ------------------------------------------------------------------ files
    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, seed: int = 0, dtype: Any = jnp.float32,
                        param_dtype: Any = jnp.float32, module_kwargs: dict | None = None,
                        ignore_mismatched_sizes: bool = False, **config_overrides):
        """Loads a Hugging Face directory, a bert-jax checkpoint directory or an original TensorFlow
        one (``bert_model.ckpt.*`` + ``bert_config.json``).

        ``config_overrides`` replace config.json fields (e.g. ``num_labels=3``). Heads the
        checkpoint lacks are initialised from ``seed`` and listed in a warning; with
        ``ignore_mismatched_sizes`` so are heads whose shapes do not fit (never the encoder)."""
        path = os.fspath(path)
        if not os.path.isdir(path):
            raise FileNotFoundError(f"{path!r} is not a directory; pass a model directory holding config.json.")
        if native.is_native_checkpoint(path):
            params, config, source = native.load_native_checkpoint(path)
            state = hf.params_to_hf_state_dict(params, config, source)
        elif tf.is_tf_checkpoint(path):
            state, config, _, _ = tf.load_tf_checkpoint(path, cls.target)
        else:
            state, config = hf.load_hf_checkpoint(path)
        if config_overrides:
            config = config.replace(**config_overrides)
        module_kwargs = module_kwargs or {}
        params, _ = hf.hf_state_dict_to_params(state, config, cls.target, seed=seed, param_dtype=param_dtype,
                                               scan_layers=module_kwargs.get("scan_layers", False),
                                               ignore_mismatched_heads=ignore_mismatched_sizes)
        return cls(config, seed, dtype, param_dtype, params=params, **module_kwargs)

    def save_pretrained(self, directory: str | os.PathLike, *, format: str = "hf") -> None:
        """Writes config.json + model.safetensors (``format="hf"``, what transformers loads) or
        the bert-jax layout (``format="bert-jax"``)."""
        params = jax.device_get(self.params)
        if format == "hf":
            hf.save_hf_checkpoint(params, self.config, os.fspath(directory), self.target)
        elif format == "bert-jax":
            native.save_native_checkpoint(params, self.config, os.fspath(directory), self.target)
        else:
            raise ValueError(f"format must be 'hf' or 'bert-jax', got {format!r}.")

    def num_parameters(self) -> int:
        return sum(x.size for x in jax.tree_util.tree_leaves(self.params))


def _model_class(name: str, doc: str):
    return type(name, (BertPreTrainedModel,), {"target": name, "__doc__": doc, "__module__": __name__})


BertModel = _model_class("BertModel", "The bare encoder: last_hidden_state and pooler_output.")
BertForPreTraining = _model_class("BertForPreTraining", "Masked LM + next-sentence prediction (BERT pretraining).")
BertForMaskedLM = _model_class("BertForMaskedLM", "Masked language model head.")
BertForNextSentencePrediction = _model_class("BertForNextSentencePrediction", "Next-sentence prediction head.")
BertForSequenceClassification = _model_class(
    "BertForSequenceClassification", "Sequence classification / regression on the pooled output.")
BertForMultipleChoice = _model_class("BertForMultipleChoice", "Multiple choice: one score per choice.")
BertForTokenClassification = _model_class("BertForTokenClassification", "Per-token classification (NER, ...).")
BertForQuestionAnswering = _model_class("BertForQuestionAnswering", "Extractive QA: span start/end logits.")


class BertLMHeadModel(BertPreTrainedModel):
    """Causal language model (``config.is_decoder=True``), optional cross-attention, ``generate``."""

    target = "BertLMHeadModel"

    def __init__(self, config: BertConfig, *args, **kwargs):
        if not config.is_decoder:
            raise ValueError("BertLMHeadModel needs config.is_decoder=True (a causal mask); "
                             "pass is_decoder=True or use BertForMaskedLM.")
        super().__init__(config, *args, **kwargs)

    def generate(self, input_ids, max_new_tokens: int, **kwargs):
        """Greedy or sampled continuation; see ``bert_jax.modeling.generation.generate``."""

        return generate(self.module, self.params, jnp.asarray(input_ids), max_new_tokens, **kwargs)


MODEL_CLASSES = {
    cls.target: cls
    for cls in (BertModel, BertForPreTraining, BertForMaskedLM, BertLMHeadModel, BertForNextSentencePrediction,
                BertForSequenceClassification, BertForMultipleChoice, BertForTokenClassification,
                BertForQuestionAnswering)
}
