"""Input checking and option resolution for tokenizer calls.

Pure functions shared by both tokenizers: which inputs are a batch or pairs,
that every text is a string (naming the offending position), and how
`padding` / `truncation` / `max_length` combine (Hugging Face's rules).
"""

from __future__ import annotations

from dataclasses import dataclass

# Hugging Face's "no limit" model_max_length.
NO_LIMIT = int(1e30)
_TRUNCATIONS = ("longest_first", "only_first", "only_second", "do_not_truncate")


@dataclass(frozen=True)
class EncodeOptions:
    """Resolved arguments of one `__call__` (strategies already normalised)."""

    add_special_tokens: bool = True
    padding: str = "do_not_pad"  # "do_not_pad" | "longest" | "max_length"
    truncation: str = "do_not_truncate"  # one of _TRUNCATIONS
    max_length: int | None = None
    stride: int = 0
    pad_to_multiple_of: int | None = None
    return_token_type_ids: bool = True
    return_attention_mask: bool = True
    return_overflowing_tokens: bool = False
    return_special_tokens_mask: bool = False
    return_offsets_mapping: bool = False
    return_length: bool = False
    return_tensors: str | None = None


def split_inputs(text, text_pair):
    """-> (is_batched, firsts, seconds or None), checking every element is a string."""
    if isinstance(text, str):
        if text_pair is not None and not isinstance(text_pair, str):
            raise TypeError(f"text_pair must be a string when text is, got {type(text_pair).__name__}.")
        return False, [text], None if text_pair is None else [text_pair]
    if not isinstance(text, (list, tuple)):
        raise TypeError(
            f"text must be a string or a list of strings, got {type(text).__name__}. "
            "Decode bytes first (bytes.decode('utf-8')) and convert numbers with str()."
        )
    if text_pair is None and text and all(isinstance(t, (list, tuple)) for t in text):
        # A batch of (a, b) pairs.
        for i, item in enumerate(text):
            if len(item) != 2:
                raise ValueError(f"text[{i}] has {len(item)} elements; a pair needs exactly 2 strings.")
        firsts, seconds = [t[0] for t in text], [t[1] for t in text]
        check_strings(firsts, "text[{}][0]")
        check_strings(seconds, "text[{}][1]")
        return True, firsts, seconds
    firsts = list(text)
    check_strings(firsts, "text[{}]")
    if text_pair is None:
        return True, firsts, None
    if not isinstance(text_pair, (list, tuple)) or len(text_pair) != len(firsts):
        got = len(text_pair) if isinstance(text_pair, (list, tuple)) else type(text_pair).__name__
        raise ValueError(f"text is a batch of {len(firsts)}; text_pair must be a list of as many strings, got {got}.")
    seconds = list(text_pair)
    check_strings(seconds, "text_pair[{}]")
    return True, firsts, seconds


def check_strings(items: list, where: str) -> None:
    """Raises TypeError naming the first non-string, e.g. "text[3] is int (7)"."""
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise TypeError(
                f"{where.format(i)} is {type(item).__name__} ({item!r:.40}), expected str. "
                "Decode bytes first (bytes.decode('utf-8')), replace None/NaN by '' and convert numbers with str()."
            )


def resolve_options(*, model_max_length: int, pad_token_id: int | None, padding, truncation, max_length,
                    return_token_type_ids, return_attention_mask, **rest) -> EncodeOptions:
    """`__call__` arguments -> `EncodeOptions`, with Hugging Face's defaults and checks."""
    if padding is True or padding == "longest":
        padding = "longest"
    elif padding is False or padding in ("do_not_pad", None):
        padding = "do_not_pad"
    elif padding != "max_length":
        raise ValueError(f"padding={padding!r}: use False, True/'longest' or 'max_length'.")
    if truncation is None:
        # Hugging Face: a bare max_length without padding means truncate.
        truncation = "longest_first" if max_length is not None and padding == "do_not_pad" else False
    if truncation is True:
        truncation = "longest_first"
    elif truncation is False:
        truncation = "do_not_truncate"
    elif truncation not in _TRUNCATIONS:
        raise ValueError(f"truncation={truncation!r}: use True/'longest_first', 'only_first', 'only_second' or False.")
    if max_length is None and (padding == "max_length" or truncation != "do_not_truncate"):
        if model_max_length >= NO_LIMIT:
            if padding == "max_length":
                raise ValueError("padding='max_length' needs max_length (this tokenizer has no model_max_length).")
            truncation = "do_not_truncate"
        else:
            max_length = model_max_length
    if max_length is not None and truncation != "do_not_truncate" and rest["add_special_tokens"]:
        if max_length < 3:
            raise ValueError(f"max_length={max_length} leaves no room for text next to [CLS] and [SEP].")
    multiple = rest["pad_to_multiple_of"]
    if multiple is not None and multiple <= 0:
        raise ValueError(f"pad_to_multiple_of must be positive, got {multiple}.")
    if (multiple and padding != "do_not_pad" and truncation != "do_not_truncate"
            and max_length is not None and max_length % multiple):
        raise ValueError(f"max_length={max_length} is not a multiple of pad_to_multiple_of={multiple}; "
                         "truncated rows could not be padded to a multiple. Pick a max_length that is.")
    if padding != "do_not_pad" and pad_token_id is None:
        raise ValueError("padding needs a pad token ([PAD]), which the vocabulary lacks; add it or pass pad_token=...")
    return EncodeOptions(
        padding=padding,
        truncation=truncation,
        max_length=max_length,
        return_token_type_ids=True if return_token_type_ids is None else return_token_type_ids,
        return_attention_mask=True if return_attention_mask is None else return_attention_mask,
        **rest,
    )
