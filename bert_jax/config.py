"""BertConfig: the model hyper-parameters, read and written as Hugging Face's ``config.json``.

Field names and defaults are exactly those of ``transformers.BertConfig`` so a
Hugging Face checkpoint directory loads unchanged. Keys this class does not model
(``architectures``, ``model_type``, ``transformers_version``, ...) are kept in
``extra`` and written back, so a round trip does not lose them.

The config is a frozen dataclass (configs are data, modules hash them); derive a
changed copy with ``config.replace(num_labels=3)``. Importing this module does not
load JAX.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

# Activations the model implements; names as Hugging Face's ACT2FN.
SUPPORTED_ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "relu", "silu", "swish", "tanh")
PROBLEM_TYPES = (None, "regression", "single_label_classification", "multi_label_classification")
CONFIG_NAME = "config.json"
# The fields that fix the model's shape (all but num_attention_heads fix parameter shapes): a
# checkpoint loads only into a model that agrees on all of them.
SHAPE_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "intermediate_size", "max_position_embeddings", "type_vocab_size")


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """Hyper-parameters of a BERT model (Hugging Face ``BertConfig`` field names and defaults)."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int | None = 0
    position_embedding_type: str = "absolute"
    use_cache: bool = True
    classifier_dropout: float | None = None
    is_decoder: bool = False
    add_cross_attention: bool = False
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    tie_word_embeddings: bool = True
    num_labels: int = 2
    id2label: dict | None = None  # filled from num_labels when None
    label2id: dict | None = None
    problem_type: str | None = None
    # Keys of a config.json that this class does not model; written back unchanged.
    extra: dict = dataclasses.field(default_factory=dict, compare=False)

    def __post_init__(self):
        id2label, label2id = self.id2label, self.label2id
        if id2label is None or len(id2label) != self.num_labels:
            # A num_labels override (e.g. a new fine-tuning head) resets the names.
            id2label = {i: f"LABEL_{i}" for i in range(max(int(self.num_labels), 0))}
            label2id = None
        # JSON object keys are strings; the label index is an int.
        id2label = {int(k): v for k, v in id2label.items()}
        if label2id is None or len(label2id) != len(id2label):
            label2id = {v: k for k, v in id2label.items()}
        label2id = {k: int(v) for k, v in label2id.items()}
        object.__setattr__(self, "id2label", id2label)
        object.__setattr__(self, "label2id", label2id)
        self.validate()

    def __hash__(self):
        return hash(json.dumps(self.to_dict(), sort_keys=True, default=str))

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raises ValueError naming the offending field and what to do."""
        for name in SHAPE_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"BertConfig.{name} must be a positive integer, got {value!r}.")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"BertConfig.hidden_size ({self.hidden_size}) must be divisible by "
                f"num_attention_heads ({self.num_attention_heads}); pick sizes with "
                f"hidden_size = heads * head_dim.")
        if self.hidden_act not in SUPPORTED_ACTIVATIONS:
            raise ValueError(
                f"BertConfig.hidden_act {self.hidden_act!r} is not supported; "
                f"use one of {', '.join(SUPPORTED_ACTIVATIONS)}.")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= float(value) < 1.0:
                raise ValueError(f"BertConfig.{name} must be in [0, 1), got {value!r}.")
        if self.position_embedding_type != "absolute":
            raise ValueError(
                f"BertConfig.position_embedding_type {self.position_embedding_type!r} is not "
                f"supported; only 'absolute' (the original BERT) is implemented.")
        if not self.layer_norm_eps > 0:
            raise ValueError(f"BertConfig.layer_norm_eps must be > 0, got {self.layer_norm_eps!r}.")
        if not self.initializer_range >= 0:
            raise ValueError(f"BertConfig.initializer_range must be >= 0, got {self.initializer_range!r}.")
        if self.num_labels < 1:
            raise ValueError(f"BertConfig.num_labels must be >= 1, got {self.num_labels!r}.")
        if self.problem_type not in PROBLEM_TYPES:
            raise ValueError(
                f"BertConfig.problem_type {self.problem_type!r} is not one of "
                f"{', '.join(str(p) for p in PROBLEM_TYPES)}.")
        if self.pad_token_id is not None and not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(
                f"BertConfig.pad_token_id ({self.pad_token_id}) must be in [0, vocab_size={self.vocab_size}).")
        if self.add_cross_attention and not self.is_decoder:
            raise ValueError("BertConfig.add_cross_attention=True needs is_decoder=True "
                             "(cross-attention is a decoder feature).")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    # --------------------------------------------------------------- dict / json
    def replace(self, **changes) -> "BertConfig":
        """A copy with ``changes`` applied; unknown names go to ``extra``."""
        return BertConfig.from_dict({**self.to_dict(), **changes})

    @classmethod
    def from_dict(cls, data: dict[str, Any], **overrides) -> "BertConfig":
        """Builds a config from a Hugging Face style dict; unknown keys land in ``extra``."""
        data = {**data, **overrides}
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in data.items() if k in names}
        extra = {k: v for k, v in data.items() if k not in names and k != "extra"}
        extra.update(data.get("extra") or {})
        # HF stores num_labels implicitly as len(id2label); an explicit num_labels wins.
        if "num_labels" not in known and known.get("id2label"):
            known["num_labels"] = len(known["id2label"])
        return cls(**known, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        """The config.json content: HF field names, extra keys kept, label ids as strings."""
        out = dict(self.extra)
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            out[f.name] = getattr(self, f.name)
        out["id2label"] = {str(k): v for k, v in self.id2label.items()}
        out["label2id"] = dict(self.label2id)
        out.setdefault("model_type", "bert")
        return out

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json_file(cls, path: str | os.PathLike, **overrides) -> "BertConfig":
        """Reads a config.json; errors name the file."""
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{e.lineno}: not valid JSON ({e.msg}).") from e
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a config must be a JSON object, got {type(data).__name__}.")
        if data.get("model_type", "bert") != "bert":
            # read as BERT, its weights were refused as a long list of keys that fit no parameter
            raise ValueError(f"{path}: model_type {data['model_type']!r} is not BERT; bert-jax reads BERT models "
                             "(model_type 'bert') only: pass a BERT checkpoint.")
        try:
            return cls.from_dict(data, **overrides)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{path}: {e}") from e

    def to_json_file(self, path: str | os.PathLike) -> None:
        """Writes atomically (temporary name, then rename)."""
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(self.to_json_string())
        os.replace(tmp, path)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **overrides) -> "BertConfig":
        """Loads ``path/config.json`` (or ``path`` itself when it is a file)."""
        path = os.fspath(path)
        file = os.path.join(path, CONFIG_NAME) if os.path.isdir(path) else path
        if not os.path.isfile(file):
            raise FileNotFoundError(f"No {CONFIG_NAME} at {path!r}; pass a model directory or a config file.")
        return cls.from_json_file(file, **overrides)

    def save_pretrained(self, directory: str | os.PathLike) -> str:
        """Writes ``directory/config.json`` and returns its path."""
        os.makedirs(directory, exist_ok=True)
        file = os.path.join(directory, CONFIG_NAME)
        self.to_json_file(file)
        return file
