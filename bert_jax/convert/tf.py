"""Original TensorFlow BERT checkpoints (``bert_model.ckpt.*`` + ``bert_config.json``) in and out.

Import goes TF variable names -> Hugging Face state-dict names -> the existing
Hugging Face path (``hf.hf_state_dict_to_params``), so head handling and checks
stay in one place. The name table (``tf_layout``) is built from the config, which
lets every error name the TF variable:

  bert/embeddings/{word,position,token_type}_embeddings  -> bert.embeddings.*.weight
  bert/encoder/layer_N/.../kernel [in, out]               -> bert.encoder.layer.N....weight [out, in]
  .../LayerNorm/gamma|beta                                -> .../LayerNorm.weight|bias
  cls/predictions/output_bias                             -> cls.predictions.bias
  cls/seq_relationship/output_weights [2, hidden]         -> cls.seq_relationship.weight (no transpose)
  output_weights / output_bias (run_classifier.py)        -> classifier.weight / bias
  cls/squad/output_weights / output_bias (run_squad.py)   -> qa_outputs.weight / bias

Optimizer slots (``*/adam_m``, ``*/adam_v``, TF Adam's ``*/Adam``, ``*/Adam_1``) and
training state (``global_step``, ``beta1_power``, ``beta2_power``) are skipped and
reported. The original code's ``gelu`` is the tanh approximation, so
``hidden_act: "gelu"`` in ``bert_config.json`` becomes ``gelu_new`` here (and back
to ``gelu`` on export), which reproduces the TensorFlow model's outputs.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import logging
import os
import re

import numpy as np

from bert_jax.config import BertConfig
from bert_jax.convert import hf
from bert_jax.convert.tf_bundle import CheckpointReader, write_checkpoint

logger = logging.getLogger(__name__)

TF_CONFIG = "bert_config.json"
TF_PREFIX = "bert_model.ckpt"  # the name the original release uses
# bert_config.json fields, all of which the original release writes.
TF_CONFIG_FIELDS = ("attention_probs_dropout_prob", "hidden_act", "hidden_dropout_prob", "hidden_size",
                    "initializer_range", "intermediate_size", "max_position_embeddings", "num_attention_heads",
                    "num_hidden_layers", "type_vocab_size", "vocab_size")
_ACT_IN = {"gelu": "gelu_new", "relu": "relu", "tanh": "tanh"}
_ACT_OUT = {"gelu_new": "gelu", "gelu_pytorch_tanh": "gelu", "gelu_fast": "gelu", "relu": "relu", "tanh": "tanh"}
_OPTIMIZER_SLOT = re.compile(r"/(adam_m|adam_v|Adam|Adam_1)$")
_TRAINING_STATE = ("global_step", "beta1_power", "beta2_power")


@dataclasses.dataclass(frozen=True)
class TFVariable:
    """One TF variable of the BERT layout: its Hugging Face key ("bert."-prefixed form), TF shape,
    whether the TF array is the transpose of the torch one, and whether it is a task head that a
    pretraining checkpoint lacks (so a fresh initialisation is allowed)."""

    hf_key: str
    shape: tuple
    transpose: bool = False
    task_head: bool = False


@dataclasses.dataclass
class TFReadReport:
    """What an import did with each checkpoint variable."""

    prefix: str
    loaded: list = dataclasses.field(default_factory=list)
    optimizer_slots: list = dataclasses.field(default_factory=list)
    training_state: list = dataclasses.field(default_factory=list)
    unused: list = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{len(self.loaded)} variable(s) loaded from {self.prefix}"]
        if self.optimizer_slots:
            kinds = sorted({name.rsplit("/", 1)[1] for name in self.optimizer_slots})
            parts.append(f"{len(self.optimizer_slots)} optimizer slot(s) ignored ({', '.join(kinds)})")
        if self.training_state:
            parts.append(f"training state ignored: {', '.join(self.training_state)}")
        if self.unused:
            parts.append(f"not part of BERT, ignored: {', '.join(self.unused)}")
        return "; ".join(parts)


def tf_layout(config: BertConfig) -> dict[str, TFVariable]:
    """TF variable name -> TFVariable for every variable a BERT of ``config`` may hold."""
    hidden, out = config.hidden_size, {}

    def dense(tf_scope, hf_scope, n_in, n_out):
        out[f"{tf_scope}/kernel"] = TFVariable(f"{hf_scope}.weight", (n_in, n_out), transpose=True)
        out[f"{tf_scope}/bias"] = TFVariable(f"{hf_scope}.bias", (n_out,))

    def norm(tf_scope, hf_scope):
        out[f"{tf_scope}/gamma"] = TFVariable(f"{hf_scope}.weight", (hidden,))
        out[f"{tf_scope}/beta"] = TFVariable(f"{hf_scope}.bias", (hidden,))

    for name, rows in (("word", config.vocab_size), ("position", config.max_position_embeddings),
                       ("token_type", config.type_vocab_size)):
        out[f"bert/embeddings/{name}_embeddings"] = TFVariable(f"bert.embeddings.{name}_embeddings.weight",
                                                              (rows, hidden))
    norm("bert/embeddings/LayerNorm", "bert.embeddings.LayerNorm")
    for i in range(config.num_hidden_layers):
        t, h = f"bert/encoder/layer_{i}", f"bert.encoder.layer.{i}"
        for name in ("query", "key", "value"):
            dense(f"{t}/attention/self/{name}", f"{h}.attention.self.{name}", hidden, hidden)
        dense(f"{t}/attention/output/dense", f"{h}.attention.output.dense", hidden, hidden)
        norm(f"{t}/attention/output/LayerNorm", f"{h}.attention.output.LayerNorm")
        dense(f"{t}/intermediate/dense", f"{h}.intermediate.dense", hidden, config.intermediate_size)
        dense(f"{t}/output/dense", f"{h}.output.dense", config.intermediate_size, hidden)
        norm(f"{t}/output/LayerNorm", f"{h}.output.LayerNorm")
    dense("bert/pooler/dense", "bert.pooler.dense", hidden, hidden)
    dense("cls/predictions/transform/dense", "cls.predictions.transform.dense", hidden, hidden)
    norm("cls/predictions/transform/LayerNorm", "cls.predictions.transform.LayerNorm")
    out["cls/predictions/output_bias"] = TFVariable("cls.predictions.bias", (config.vocab_size,))
    # The NSP, classifier and SQuAD heads are created with tf.get_variable as [num_outputs, hidden]
    # and applied with transpose_b, i.e. already in torch's [out, in] layout.
    out["cls/seq_relationship/output_weights"] = TFVariable("cls.seq_relationship.weight", (2, hidden))
    out["cls/seq_relationship/output_bias"] = TFVariable("cls.seq_relationship.bias", (2,))
    out["output_weights"] = TFVariable("classifier.weight", (config.num_labels, hidden), task_head=True)
    out["output_bias"] = TFVariable("classifier.bias", (config.num_labels,), task_head=True)
    out["cls/squad/output_weights"] = TFVariable("qa_outputs.weight", (2, hidden), task_head=True)
    out["cls/squad/output_bias"] = TFVariable("qa_outputs.bias", (2,), task_head=True)
    return out


def read_bert_config(path: str) -> BertConfig:
    """Reads an original ``bert_config.json`` into a BertConfig (hidden_act ``gelu`` -> ``gelu_new``)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: not valid JSON ({e.msg}).") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}.")
    missing = [name for name in TF_CONFIG_FIELDS if name not in data]
    if missing:
        raise ValueError(f"{path}: missing field(s) {', '.join(missing)}; the original bert_config.json has all "
                         f"of {', '.join(TF_CONFIG_FIELDS)}.")
    if data["hidden_act"] not in _ACT_IN:
        raise ValueError(f"{path}: hidden_act {data['hidden_act']!r} is not one the original BERT code "
                         f"defines; use one of {', '.join(_ACT_IN)}.")
    try:
        return BertConfig.from_dict({**data, "hidden_act": _ACT_IN[data["hidden_act"]]})
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: {e}") from e


def find_checkpoint_prefix(directory: str) -> str:
    """The checkpoint prefix in ``directory``: the one its ``checkpoint`` file names, else the only ``*.index``."""
    state = os.path.join(directory, "checkpoint")
    if os.path.isfile(state):
        with open(state, encoding="utf-8") as f:
            match = re.search(r'^model_checkpoint_path:\s*"(.*)"\s*$', f.read(), re.M)
        if match:
            named = match.group(1)
            # TensorFlow writes the absolute path of the folder that trained; a copy of that folder
            # (a backup, a download) would then read the original's weights, unsaid. Only what is
            # in this directory is read: the checkpoint of that name here.
            prefix = os.path.join(directory, os.path.basename(named))
            if os.path.isfile(prefix + ".index"):
                return prefix
    indexes = sorted(glob.glob(os.path.join(directory, "*.index")))
    if len(indexes) == 1:
        return indexes[0][: -len(".index")]
    if not indexes:
        raise FileNotFoundError(f"{directory!r} has no TensorFlow checkpoint (no *.index file).")
    raise ValueError(f"{directory!r} holds {len(indexes)} checkpoints ({', '.join(map(os.path.basename, indexes))}); "
                     f"keep one, or write a 'checkpoint' file with model_checkpoint_path naming it.")


def is_tf_checkpoint(directory: str) -> bool:
    """A directory with a TF checkpoint index and no Hugging Face / bert-jax weights."""
    others = (hf.SAFE_WEIGHTS, hf.SAFE_INDEX, hf.TORCH_WEIGHTS, "bert_jax_params.safetensors")
    return bool(glob.glob(os.path.join(directory, "*.index"))) and not any(
        os.path.isfile(os.path.join(directory, name)) for name in others)


def _default_target(names) -> str:
    if "cls/squad/output_weights" in names:
        return "BertForQuestionAnswering"
    if "output_weights" in names:
        # a classifier on the pooled [CLS] needs the pooler; one per token has none
        pooled = "bert/pooler/dense/kernel" in names
        return "BertForSequenceClassification" if pooled else "BertForTokenClassification"
    mlm, nsp = "cls/predictions/output_bias" in names, "cls/seq_relationship/output_weights" in names
    return {(True, True): "BertForPreTraining", (True, False): "BertForMaskedLM",
            (False, True): "BertForNextSentencePrediction"}.get((mlm, nsp), "BertModel")


def _expected_hf_keys(config: BertConfig, target: str) -> set[str]:
    """Hugging Face keys of ``target``'s parameters, in the "bert."-prefixed form."""
    keys = {hf.flax_path_to_hf_key(path) for path in hf._expected(config, target, np.float32)}
    return {("bert." + key if target == "BertModel" else key) for key in keys}


def load_tf_checkpoint(directory: str, target: str | None = None, verify: bool = True
                       ) -> tuple[dict, BertConfig, str, TFReadReport]:
    """Reads an original TF BERT directory as a Hugging Face state dict.

    Args:
      directory: holds ``bert_config.json`` and the checkpoint (``bert_model.ckpt.index`` + data).
      target: the class to load into; default from the heads present (BertForPreTraining for a
        pretraining checkpoint).
      verify: check each tensor's crc32c.
    Returns:
      (HF key -> numpy array in torch layout, config, target, TFReadReport).
    Raises:
      ValueError naming the variable: a variable ``target`` needs is missing, a shape does not fit
      bert_config.json, or a ``bert/`` / ``cls/`` variable belongs to no parameter.
    """
    config_path = os.path.join(directory, TF_CONFIG)
    if not glob.glob(os.path.join(directory, "*.index")):
        hint = ("; it looks like a Hugging Face model directory: use --from hf"
                if os.path.isfile(os.path.join(directory, "config.json")) else "")
        raise FileNotFoundError(f"{directory!r} holds no TensorFlow checkpoint (no bert_model.ckpt.index or other "
                                f"*.index file){hint}.")
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"{directory!r} has a TensorFlow checkpoint but no {TF_CONFIG}; put the model's "
                                f"{TF_CONFIG} next to it.")
    config = read_bert_config(config_path)
    reader = CheckpointReader(find_checkpoint_prefix(directory))
    names = reader.entries
    if "output_weights" in names:  # run_classifier.py's head: [num_labels, hidden]
        config = config.replace(num_labels=int(names["output_weights"].shape[0]))
    target = target or _default_target(names)
    layout = tf_layout(config)
    report = TFReadReport(prefix=reader.prefix)
    unknown, mismatched = [], []
    for name, entry in sorted(names.items()):
        if _OPTIMIZER_SLOT.search(name):
            report.optimizer_slots.append(name)
        elif name in _TRAINING_STATE:
            report.training_state.append(name)
        elif name not in layout:
            (unknown if name.startswith(("bert/", "cls/")) else report.unused).append(name)
        elif tuple(entry.shape) != layout[name].shape:
            mismatched.append(f"{name}: checkpoint has {tuple(entry.shape)}, {TF_CONFIG} implies "
                              f"{layout[name].shape}")
    if mismatched:
        raise ValueError(f"{directory}: shape mismatch for {len(mismatched)} variable(s); check {TF_CONFIG} "
                         f"(hidden_size, intermediate_size, vocab_size, max_position_embeddings, "
                         f"type_vocab_size):\n  " + "\n  ".join(mismatched))
    if unknown:
        raise ValueError(f"{directory}: {len(unknown)} variable(s) belong to no parameter of a BERT with this "
                         f"{TF_CONFIG}: {', '.join(unknown)}. Check num_hidden_layers, or that this is a BERT "
                         f"checkpoint.")
    wanted = _expected_hf_keys(config, target)
    missing = [name for name, var in layout.items()
               if var.hf_key in wanted and not var.task_head and name not in names]
    if missing:
        raise ValueError(f"{directory}: {len(missing)} variable(s) that {target} needs are missing from the "
                         f"checkpoint: {', '.join(missing)}. Check num_hidden_layers in {TF_CONFIG}, or pass "
                         f"another --target.")
    state = {}
    for name in sorted(set(names) & set(layout)):
        array = reader.get_tensor(name, verify=verify)
        var = layout[name]
        state[var.hf_key] = np.ascontiguousarray(array.T) if var.transpose else array
        report.loaded.append(name)
    logger.info("%s", report.summary())
    return state, config, target, report


def save_tf_checkpoint(params: dict, config: BertConfig, directory: str, target: str) -> None:
    """Writes ``bert_model.ckpt.{index,data-00000-of-00001}``, ``checkpoint`` and ``bert_config.json``
    in the original layout (which the original ``run_*.py`` scripts and ``tf.train.load_checkpoint`` read)."""
    if config.hidden_act not in _ACT_OUT and config.hidden_act != "gelu":
        raise ValueError(f"hidden_act {config.hidden_act!r} has no counterpart in the original BERT code "
                         f"(gelu, relu, tanh); this model cannot be exported to TensorFlow.")
    if config.hidden_act == "gelu":
        logger.warning("hidden_act 'gelu' (exact, erf) is written as the original code's 'gelu', which is the "
                       "tanh approximation: TensorFlow outputs will differ slightly (about 1e-3).")
    state = hf.params_to_hf_state_dict(params, config, target)
    state = {("bert." + k if target == "BertModel" else k): v for k, v in state.items()}
    state.pop("cls.predictions.decoder.bias", None)  # a copy of cls.predictions.bias
    if "cls.predictions.decoder.weight" in state:
        raise ValueError("this model's MLM decoder is not tied to the word embeddings (tie_word_embeddings="
                         "false); the original TF layout has no separate decoder matrix.")
    if "classifier.weight" in state:
        config = config.replace(num_labels=int(state["classifier.weight"].shape[0]))
    by_key = {var.hf_key: (name, var) for name, var in tf_layout(config).items()}
    homeless = sorted(k for k in state if k not in by_key)
    if homeless:
        raise ValueError(f"{target} has parameter(s) with no place in the original TF layout: "
                         f"{', '.join(homeless)}.")
    tensors = {}
    for key, value in state.items():
        name, var = by_key[key]
        tensors[name] = np.ascontiguousarray(value.T) if var.transpose else np.asarray(value)
    os.makedirs(directory, exist_ok=True)
    write_checkpoint(os.path.join(directory, TF_PREFIX), tensors)
    with open(os.path.join(directory, "checkpoint"), "w", encoding="utf-8") as f:
        f.write(f'model_checkpoint_path: "{TF_PREFIX}"\nall_model_checkpoint_paths: "{TF_PREFIX}"\n')
    fields = config.to_dict()
    fields["hidden_act"] = _ACT_OUT.get(config.hidden_act, "gelu")
    with open(os.path.join(directory, TF_CONFIG), "w", encoding="utf-8") as f:
        json.dump({name: fields[name] for name in TF_CONFIG_FIELDS}, f, indent=2, sort_keys=True)
        f.write("\n")
