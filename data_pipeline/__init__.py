"""Raw text -> documents -> NSP pairs -> masked examples -> shards -> per-host batches.

Building data imports no JAX. Modules: ``sources`` (reading), ``tokens``, ``instances``
(sentence pairs), ``masking``, ``shards`` (format), ``build``, ``loader``,
``inspect`` (statistics), ``cli``.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

__all__ = ["load_examples", "PretrainingLoader"]


def load_examples(directory: str, *, verify_checksums: bool = False) -> Iterator[dict[str, np.ndarray]]:
    """Iterates the built examples in shard order as dicts of numpy arrays.

    Each example has ``input_ids``, ``token_type_ids``, ``attention_mask``
    ``[max_seq_length]``; ``masked_lm_positions``, ``masked_lm_ids``,
    ``masked_lm_weights`` ``[max_predictions_per_seq]`` (static builds only; a
    dynamic build's ``input_ids`` are unmasked); ``next_sentence_label`` (1 =
    random B); ``source_document`` (global input index of A's document) and
    ``b_document`` (that of B's), for auditing NSP.
    """
    from data_pipeline import shards

    directory, manifest = shards.load_manifest(directory)
    for info in manifest["shards"]:
        fields = shards.open_shard(directory, info, verify_checksum=verify_checksums)
        for i in range(info["num_examples"]):
            yield {name: np.asarray(arr[i]) for name, arr in fields.items()}


def __getattr__(name: str):
    if name == "PretrainingLoader":
        from data_pipeline.loader import PretrainingLoader

        return PretrainingLoader
    raise AttributeError(f"module 'data_pipeline' has no attribute {name!r}")
