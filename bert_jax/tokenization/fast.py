"""`BertTokenizerFast`: the BERT tokenizer API on the Rust `tokenizers` backend.

Tokenization and truncation (including overflow windows with `stride`) run
inside `Tokenizer.encode_batch`; padding is done here in numpy while turning
the encodings into arrays, which is cheaper than letting the backend pad, so
the wrapper is no slower than calling `tokenizers` directly
(see benchmarks/tokenizer.py).
"""

from __future__ import annotations

import itertools

import numpy as np

from bert_jax.tokenization.backend import build_backend
from bert_jax.tokenization.base import BertTokenizerBase
from bert_jax.tokenization.encoding import BatchEncoding
from bert_jax.tokenization.options import EncodeOptions, check_strings


class BertTokenizerFast(BertTokenizerBase):
    """BERT WordPiece tokenizer backed by `tokenizers` (Rust).

    Same arguments as `BertTokenizerBase`; `tokenizer_file` is accepted for
    Hugging Face compatibility, the pipeline itself is always rebuilt from the
    vocabulary and options so it is BERT's algorithm whatever the file holds.
    Ids match `transformers.BertTokenizerFast`, including how `longest_first`
    splits a pair truncation tie (the second text keeps the extra token).

    Attributes:
      backend_tokenizer: the `tokenizers.Tokenizer` doing the work.
    """

    is_fast = True

    def __init__(self, vocab_file: str | None = None, *args, tokenizer_file: str | None = None, **kwargs):
        super().__init__(vocab_file, *args, **kwargs)
        self.tokenizer_file = tokenizer_file
        self.backend_tokenizer = build_backend(self._vocab, self.special_tokens, **self._normalizer_kwargs())
        # never_split words are kept whole by matching them as whole-word added
        # tokens in the normalised (e.g. lower-cased) text. transformers' fast
        # tokenizer ignores never_split; honouring it keeps ours in agreement.
        extra = [tok for tok in self.never_split if tok not in self.all_special_tokens]
        if extra:
            from tokenizers import AddedToken

            self.backend_tokenizer.add_tokens([AddedToken(tok, normalized=True, single_word=True) for tok in extra])

    def tokenize(self, text: str) -> list[str]:
        """Text -> WordPiece tokens (no special tokens added)."""
        check_strings([text], "text{}")
        self._configure(EncodeOptions(add_special_tokens=False))
        return self.backend_tokenizer.encode(text, add_special_tokens=False).tokens

    def _configure(self, options: EncodeOptions) -> None:
        """Sets the backend's truncation for this call; padding is done in numpy."""
        backend = self.backend_tokenizer
        if backend.padding is not None:
            backend.no_padding()
        if options.truncation != "do_not_truncate" and options.max_length is not None:
            backend.enable_truncation(
                max_length=options.max_length,
                stride=options.stride,
                strategy=options.truncation,
                direction=self.truncation_side,
            )
        elif backend.truncation is not None:
            backend.no_truncation()

    def _encode_batch(self, firsts: list[str], seconds: list[str] | None, options: EncodeOptions) -> BatchEncoding:
        self._configure(options)
        inputs = firsts if seconds is None else list(zip(firsts, seconds))
        try:
            encodings = self.backend_tokenizer.encode_batch(inputs, add_special_tokens=options.add_special_tokens)
        except Exception as error:  # tokenizers raises a bare Exception on truncation errors
            raise ValueError(f"tokenizers could not encode the batch: {error}") from error
        finally:
            # Leave backend_tokenizer neutral for callers that use it directly.
            if self.backend_tokenizer.truncation is not None:
                self.backend_tokenizer.no_truncation()
        sample = None
        if options.return_overflowing_tokens:
            # One row per window; overflow_to_sample_mapping says which input it came from.
            rows, sample = [], []
            for i, encoding in enumerate(encodings):
                for window in [encoding, *encoding.overflowing]:
                    rows.append(window)
                    sample.append(i)
            encodings = rows
        lengths = np.fromiter((len(e) for e in encodings), dtype=np.int64, count=len(encodings))
        target = padded_length(lengths, options)
        rows = _Rows(encodings, lengths, target, self.padding_side)
        data = {"input_ids": rows.gather("ids", self.pad_token_id)}
        if options.return_token_type_ids:
            # A single text is type 0 throughout (template "[CLS]:0 $A:0 [SEP]:0", pad type 0).
            data["token_type_ids"] = rows.gather("type_ids", 0) if seconds is not None else rows.zeros()
        if options.return_attention_mask:
            data["attention_mask"] = rows.mask()
        if options.return_special_tokens_mask:
            data["special_tokens_mask"] = rows.gather("special_tokens_mask", 1)
        if options.return_offsets_mapping:
            data["offset_mapping"] = rows.offsets()
        if options.return_length:
            data["length"] = [int(n) if target is None else max(target, int(n)) for n in lengths]
        if sample is not None:
            data["overflow_to_sample_mapping"] = sample
        if options.return_tensors is None:
            data = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in data.items()}
        return BatchEncoding(data, encodings=encodings, padded_length=target, padding_side=self.padding_side)

    def _keeps_batch_axis(self, encoding: BatchEncoding, options: EncodeOptions) -> bool:
        # As transformers: with overflow windows a single input stays a batch of rows.
        return options.return_overflowing_tokens

    def _decode(self, token_ids: list[int], skip_special_tokens: bool) -> str:
        return self.backend_tokenizer.decode(token_ids, skip_special_tokens=skip_special_tokens)


def padded_length(lengths: np.ndarray, options: EncodeOptions) -> int | None:
    """Row length after padding (`[batch]` lengths in), or None without padding."""
    if options.padding == "do_not_pad" or len(lengths) == 0:
        return None
    target = int(lengths.max()) if options.padding == "longest" else options.max_length
    multiple = options.pad_to_multiple_of
    if multiple and target % multiple:
        target += multiple - target % multiple
    return target


class _Rows:
    """Turns `tokenizers.Encoding`s into `[batch, length]` padded arrays.

    Values are read row by row as flat Python lists (no per-token Python code)
    and scattered into the padded array with one boolean-mask assignment;
    padding in numpy is cheaper than asking the backend to pad every field
    (tokens, offsets, words, ...) of every encoding.
    """

    def __init__(self, encodings, lengths: np.ndarray, target: int | None, side: str):
        self.encodings, self.lengths, self.side = encodings, lengths, side
        # Rows longer than the target (padding="max_length" without truncation) stay ragged.
        self.ragged = target is None or (len(lengths) and int(lengths.max()) > target)
        self.target = target
        if not self.ragged:
            positions = np.arange(target)
            if side == "right":
                self.valid = positions[None, :] < lengths[:, None]
            else:
                self.valid = positions[None, :] >= (target - lengths)[:, None]

    def _pad_list(self, values: list, fill) -> list:
        extra = [fill] * max(0, (self.target or 0) - len(values))
        return values + extra if self.side == "right" else extra + values

    def gather(self, field: str, fill: int):
        if self.ragged:
            return [self._pad_list(getattr(e, field), fill) for e in self.encodings]
        flat = np.fromiter(itertools.chain.from_iterable(getattr(e, field) for e in self.encodings),
                           dtype=np.int64, count=int(self.lengths.sum()))
        out = np.full(self.valid.shape, fill, dtype=np.int64)
        out[self.valid] = flat
        return out

    def zeros(self):
        if self.ragged:
            return [[0] * max(int(n), self.target or 0) for n in self.lengths]
        return np.zeros(self.valid.shape, dtype=np.int64)

    def mask(self):
        if self.ragged:
            return [self._pad_list([1] * int(n), 0) for n in self.lengths]
        return self.valid.astype(np.int64)

    def offsets(self) -> list:
        return [self._pad_list(e.offsets, (0, 0)) for e in self.encodings]
