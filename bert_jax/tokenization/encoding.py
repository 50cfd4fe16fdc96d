"""`BatchEncoding`: the dict a tokenizer call returns, plus array conversion.

Keys follow Hugging Face (`input_ids`, `token_type_ids`, `attention_mask`,
`special_tokens_mask`, `offset_mapping`, `overflow_to_sample_mapping`, ...),
so code written against `transformers` reads our outputs unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Keys whose rows may legitimately be ragged or are not token-aligned; they are
# never converted to arrays.
_NON_TENSOR_KEYS = ("overflowing_tokens", "num_truncated_tokens")


class BatchEncoding(dict):
    """Tokenizer output: a dict of `[batch, length]` lists or arrays.

    Behaves like `transformers.BatchEncoding`: item and attribute access
    (`enc["input_ids"]`, `enc.input_ids`) and, for the fast tokenizer,
    `word_ids(i)`, `sequence_ids(i)` and `encodings` (the `tokenizers.Encoding`
    objects, one per row).
    """

    def __init__(self, data: dict[str, Any] | None = None, encodings=None, padded_length: int | None = None,
                 padding_side: str = "right"):
        super().__init__(data or {})
        self._encodings = encodings
        # The fast tokenizer pads in numpy, so its encodings are unpadded;
        # per-token views are padded here to line up with input_ids.
        self._padded_length = padded_length
        self._padding_side = padding_side

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"BatchEncoding has no key or attribute {name!r}") from None

    @property
    def encodings(self):
        """The `tokenizers.Encoding` per row (fast tokenizer), else None."""
        return self._encodings

    @property
    def is_fast(self) -> bool:
        return self._encodings is not None

    def _encoding(self, batch_index: int, method: str):
        if self._encodings is None:
            raise ValueError(
                f"{method}() needs the offsets that only BertTokenizerFast tracks; "
                "tokenize with BertTokenizerFast instead of BertTokenizer."
            )
        return self._encodings[batch_index]

    def _padded(self, values: list, fill) -> list:
        extra = [fill] * max(0, (self._padded_length or 0) - len(values))
        return values + extra if self._padding_side == "right" else extra + values

    def word_ids(self, batch_index: int = 0) -> list[int | None]:
        """Word index of each token of row `batch_index` (None for special/pad tokens)."""
        return self._padded(self._encoding(batch_index, "word_ids").word_ids, None)

    def sequence_ids(self, batch_index: int = 0) -> list[int | None]:
        """0/1 for tokens of the first/second text of row `batch_index`, None for special/pad."""
        return self._padded(self._encoding(batch_index, "sequence_ids").sequence_ids, None)

    def tokens(self, batch_index: int = 0, pad_token: str = "[PAD]") -> list[str]:
        """The token strings of row `batch_index`."""
        return self._padded(self._encoding(batch_index, "tokens").tokens, pad_token)

    def convert_to_tensors(self, tensor_type: str | None) -> BatchEncoding:
        """Converts every token-aligned value to arrays in place ("np" or "jax")."""
        if tensor_type is None:
            return self
        if tensor_type not in ("np", "jax"):
            raise ValueError(
                f"return_tensors={tensor_type!r} is not supported; use 'np', 'jax' or None."
            )
        for key, value in list(self.items()):
            if key in _NON_TENSOR_KEYS:
                continue
            self[key] = to_array(value, key, tensor_type)
        return self


def to_array(rows, key: str, tensor_type: str):
    """`rows` (`[batch, length]` nested lists) -> numpy or jax array.

    Ids are int64 for "np" (as Hugging Face returns) and int32 for "jax" (JAX's
    default integer width unless x64 is enabled).
    """
    if isinstance(rows, np.ndarray):
        array = rows
    else:
        lengths = {len(row) for row in rows} if rows and isinstance(rows[0], list) else None
        if lengths is not None and len(lengths) > 1:
            raise ValueError(
                f"Cannot stack {key!r} into an array: rows have different lengths "
                f"{sorted(lengths)[:5]}. Pass padding=True (or padding='max_length' with "
                "max_length) and truncation=True so every row has the same length."
            )
        array = np.asarray(rows, dtype=np.int64)
    if tensor_type == "np":
        return array
    import jax.numpy as jnp  # lazily: tokenizing must not load JAX

    return jnp.asarray(array, dtype=jnp.int32)
