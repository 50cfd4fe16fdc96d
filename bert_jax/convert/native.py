"""The bert-jax checkpoint directory: ``config.json`` + ``bert_jax_params.safetensors``.

Tensors are stored in the Flax layout under their parameter paths joined by "/"
(``bert/encoder/layer/0/attention/self/query/kernel``), with the model class in
the file's metadata, so loading is a plain unflatten with no renaming or
transposes. Readable without torch or Flax (safetensors' numpy API).
"""

from __future__ import annotations

import os

import numpy as np
from flax.traverse_util import flatten_dict, unflatten_dict
from bert_jax.config import BertConfig
from bert_jax.convert.hf import read_safetensors_file, unstack_layers, write_safetensors

NATIVE_WEIGHTS = "bert_jax_params.safetensors"


def is_native_checkpoint(directory: str) -> bool:
    return os.path.isfile(os.path.join(directory, NATIVE_WEIGHTS))


def save_native_checkpoint(params: dict, config: BertConfig, directory: str, target: str) -> None:
    """Writes the directory atomically file by file (temporary name, then rename)."""
    os.makedirs(directory, exist_ok=True)
    # Stored per layer, so a checkpoint does not depend on how the model was compiled.
    flat = flatten_dict(unstack_layers(params))
    tensors = {"/".join(path): np.ascontiguousarray(np.asarray(v)) for path, v in flat.items()}
    path = os.path.join(directory, NATIVE_WEIGHTS)
    write_safetensors(tensors, path, {"format": "bert-jax", "target": target})
    config.replace(architectures=[target]).save_pretrained(directory)


def load_native_checkpoint(directory: str) -> tuple[dict, BertConfig, str]:
    """(params nested dict of numpy arrays, config, target class name)."""
    path = os.path.join(directory, NATIVE_WEIGHTS)
    tensors, metadata = read_safetensors_file(path)  # CheckpointFileError naming a damaged file
    if metadata.get("format") != "bert-jax" or "target" not in metadata:
        raise ValueError(f"{path}: not a bert-jax parameter file (metadata {metadata}).")
    flat = {tuple(key.split("/")): value for key, value in tensors.items()}
    return unflatten_dict(flat), BertConfig.from_pretrained(directory), metadata["target"]
