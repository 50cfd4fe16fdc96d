"""Checkpoint conversion: Hugging Face (safetensors / torch .bin) <-> bert-jax parameters.

``hf`` maps names and layouts both ways and reads/writes HF directories;
``native`` reads/writes the bert-jax directory layout; ``cli`` is ``bert-jax convert``.
"""

from bert_jax.convert.hf import (
    ConversionReport,
    hf_state_dict_to_params,
    load_hf_checkpoint,
    load_hf_state_dict,
    params_to_hf_state_dict,
    save_hf_checkpoint,
)
from bert_jax.convert.native import load_native_checkpoint, save_native_checkpoint
