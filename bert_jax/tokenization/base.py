"""The API both BERT tokenizers share, whatever computes the tokens.

`BertTokenizerBase` owns the vocabulary, special tokens, argument handling of
`__call__` (input checks, padding/truncation strategies, batching, arrays),
special-token layout (`[CLS] A [SEP] B [SEP]`), `decode`, and loading/saving in
the Hugging Face file layout. Subclasses supply `_encode_batch` and
`tokenize`: `BertTokenizer` in pure Python, `BertTokenizerFast` in Rust.
"""

from __future__ import annotations

import json
import numbers
import os
from typing import Any

from bert_jax.tokenization.backend import build_backend, read_normalizer_settings
from bert_jax.tokenization.encoding import BatchEncoding
from bert_jax.tokenization.options import EncodeOptions, resolve_options, split_inputs
from bert_jax.tokenization.vocab_file import (
    SPECIAL_TOKEN_ATTRS,
    check_special_tokens,
    load_vocab,
    load_vocab_from_tokenizer_json,
    write_vocab,
)

VOCAB_FILE = "vocab.txt"
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"


def _token_content(value) -> str:
    # special_tokens_map.json / tokenizer_config.json store either "[CLS]" or
    # an AddedToken dict {"content": "[CLS]", ...}.
    return value["content"] if isinstance(value, dict) else str(value)


class BertTokenizerBase:
    """Shared BERT tokenizer API; see `BertTokenizer` / `BertTokenizerFast`.

    Args:
      vocab_file: path of a `vocab.txt` (one token per line, id = line index).
      do_lower_case: lower-case the text (uncased models).
      strip_accents: strip accents; None follows `do_lower_case` as original BERT.
      tokenize_chinese_chars: put spaces around CJK ideographs.
      never_split: tokens the basic tokenizer keeps whole.
      unk_token, sep_token, pad_token, cls_token, mask_token: special tokens.
      model_max_length: max_length used when truncating/padding without one.
      padding_side, truncation_side: "right" (default) or "left".
      vocab: a `{token: id}` dict instead of `vocab_file`.
    """

    is_fast = False
    model_input_names = ("input_ids", "token_type_ids", "attention_mask")

    def __init__(
        self,
        vocab_file: str | None = None,
        do_lower_case: bool = True,
        strip_accents: bool | None = None,
        tokenize_chinese_chars: bool = True,
        never_split=None,
        unk_token: str = "[UNK]",
        sep_token: str = "[SEP]",
        pad_token: str = "[PAD]",
        cls_token: str = "[CLS]",
        mask_token: str = "[MASK]",
        model_max_length: int = 512,
        padding_side: str = "right",
        truncation_side: str = "right",
        clean_up_tokenization_spaces: bool = True,
        max_input_chars_per_word: int = 100,
        vocab: dict[str, int] | None = None,
    ):
        if vocab is None:
            if vocab_file is None:
                raise ValueError("pass vocab_file (a vocab.txt) or vocab (a {token: id} dict).")
            vocab = load_vocab(os.fspath(vocab_file))
        for side_name, side in (("padding_side", padding_side), ("truncation_side", truncation_side)):
            if side not in ("right", "left"):
                raise ValueError(f"{side_name} must be 'right' or 'left', got {side!r}.")
        self.special_tokens = {
            "unk_token": _token_content(unk_token),
            "sep_token": _token_content(sep_token),
            "pad_token": _token_content(pad_token),
            "cls_token": _token_content(cls_token),
            "mask_token": _token_content(mask_token),
        }
        check_special_tokens(vocab, self.special_tokens, repr(vocab_file) if vocab_file else "(dict)")
        self._vocab = dict(vocab)
        self.ids_to_tokens = {i: tok for tok, i in self._vocab.items()}
        self.vocab_file = vocab_file
        self.do_lower_case = do_lower_case
        self.strip_accents = strip_accents
        self.tokenize_chinese_chars = tokenize_chinese_chars
        self.never_split = list(never_split) if never_split else []
        self.model_max_length = model_max_length
        self.padding_side = padding_side
        self.truncation_side = truncation_side
        self.clean_up_tokenization_spaces = clean_up_tokenization_spaces
        self.max_input_chars_per_word = max_input_chars_per_word

    # ----------------------------------------------------------- vocabulary
    @property
    def vocab(self) -> dict[str, int]:
        """`{token: id}`."""
        return self._vocab

    def get_vocab(self) -> dict[str, int]:
        return dict(self._vocab)

    @property
    def vocab_size(self) -> int:
        return len(self._vocab)

    def __len__(self) -> int:
        return len(self._vocab)

    def __getattr__(self, name: str):
        # unk_token, cls_token_id, ... resolved from self.special_tokens.
        specials = self.__dict__.get("special_tokens")
        if specials is not None:
            if name in specials:
                return specials[name]
            if name.endswith("_id") and name[:-3] in specials:
                return self._vocab.get(specials[name[:-3]])
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def all_special_tokens(self) -> list[str]:
        """Special tokens in Hugging Face's order (unk, sep, pad, cls, mask), without repeats."""
        return list(dict.fromkeys(self.special_tokens[a] for a in SPECIAL_TOKEN_ATTRS))

    @property
    def all_special_ids(self) -> list[int]:
        return [self._vocab[tok] for tok in self.all_special_tokens if tok in self._vocab]

    def convert_tokens_to_ids(self, tokens: str | list[str]) -> int | list[int]:
        """Token(s) -> id(s); unknown tokens map to the `[UNK]` id."""
        unk_id = self._vocab[self.special_tokens["unk_token"]]
        if isinstance(tokens, str):
            return self._vocab.get(tokens, unk_id)
        return [self._vocab.get(tok, unk_id) for tok in tokens]

    def convert_ids_to_tokens(self, ids: int | list[int], skip_special_tokens: bool = False):
        """Id(s) -> token(s); raises on ids outside the vocabulary."""
        if isinstance(ids, numbers.Integral):
            return self._id_to_token(int(ids))
        skip = set(self.all_special_ids) if skip_special_tokens else ()
        return [self._id_to_token(int(i)) for i in ids if int(i) not in skip]

    def _id_to_token(self, index: int) -> str:
        try:
            return self.ids_to_tokens[index]
        except KeyError:
            raise IndexError(f"token id {index} is outside the vocabulary (size {len(self._vocab)}).") from None

    # ------------------------------------------------- special-token layout
    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return 3 if pair else 2

    def build_inputs_with_special_tokens(self, token_ids_0: list[int], token_ids_1: list[int] | None = None):
        """`[CLS] A [SEP]` or `[CLS] A [SEP] B [SEP]`."""
        cls, sep = [self.cls_token_id], [self.sep_token_id]
        if token_ids_1 is None:
            return cls + list(token_ids_0) + sep
        return cls + list(token_ids_0) + sep + list(token_ids_1) + sep

    def create_token_type_ids_from_sequences(self, token_ids_0: list[int], token_ids_1: list[int] | None = None):
        """0 over `[CLS] A [SEP]`, 1 over `B [SEP]`."""
        first = [0] * (len(token_ids_0) + 2)
        return first if token_ids_1 is None else first + [1] * (len(token_ids_1) + 1)

    def get_special_tokens_mask(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None, already_has_special_tokens: bool = False
    ) -> list[int]:
        """1 where `build_inputs_with_special_tokens` puts a special token, else 0.

        With `already_has_special_tokens`, marks the special ids already in `token_ids_0`.
        """
        if already_has_special_tokens:
            if token_ids_1 is not None:
                raise ValueError(
                    "already_has_special_tokens=True takes one sequence that already holds "
                    "[CLS]/[SEP]; pass token_ids_1=None."
                )
            special = set(self.all_special_ids)
            return [1 if int(i) in special else 0 for i in token_ids_0]
        mask = [1] + [0] * len(token_ids_0) + [1]
        return mask if token_ids_1 is None else mask + [0] * len(token_ids_1) + [1]

    # --------------------------------------------------------------- encode
    def tokenize(self, text: str) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _encode_batch(self, firsts: list[str], seconds: list[str] | None, options: EncodeOptions) -> BatchEncoding:
        raise NotImplementedError  # pragma: no cover - abstract

    def __call__(
        self,
        text,
        text_pair=None,
        *,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        stride: int = 0,
        pad_to_multiple_of: int | None = None,
        return_tensors: str | None = None,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool | None = None,
        return_overflowing_tokens: bool = False,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        return_length: bool = False,
    ) -> BatchEncoding:
        """Encodes a text, a pair, or a batch of either (as `transformers` does).

        Args:
          text: a string, or a list of strings / of `(a, b)` pairs.
          text_pair: the second string, or a list of them, for pairs.
          padding: False, True / "longest", or "max_length".
          truncation: True / "longest_first", "only_first", "only_second" or False;
            None truncates to `max_length` only when one is given without padding.
          max_length: length limit including special tokens.
          stride: tokens shared by consecutive overflow windows.
          return_tensors: None (lists), "np" or "jax" (`[batch, length]` arrays).

        Returns:
          A `BatchEncoding` with `input_ids`, `token_type_ids`, `attention_mask`
          (and the optional keys asked for); flat lists for a single input.
        """
        is_batched, firsts, seconds = split_inputs(text, text_pair)
        options = resolve_options(
            model_max_length=self.model_max_length,
            pad_token_id=self.pad_token_id,
            add_special_tokens=add_special_tokens,
            padding=padding,
            truncation=truncation,
            max_length=max_length,
            stride=stride,
            pad_to_multiple_of=pad_to_multiple_of,
            return_tensors=return_tensors,
            return_token_type_ids=return_token_type_ids,
            return_attention_mask=return_attention_mask,
            return_overflowing_tokens=return_overflowing_tokens,
            return_special_tokens_mask=return_special_tokens_mask,
            return_offsets_mapping=return_offsets_mapping,
            return_length=return_length,
        )
        encoding = self._encode_batch(firsts, seconds, options)
        if not is_batched and return_tensors is None and not self._keeps_batch_axis(encoding, options):
            for key in list(encoding):
                encoding[key] = encoding[key][0]
        return encoding.convert_to_tensors(return_tensors)

    def _keeps_batch_axis(self, encoding: BatchEncoding, options: EncodeOptions) -> bool:
        """Whether a single input's output stays `[batch, ...]` (fast overflow windows)."""
        return False

    def encode(self, text, text_pair=None, **kwargs) -> list[int]:
        """The `input_ids` of one text (or pair)."""
        if not isinstance(text, str):
            raise TypeError(f"encode() takes one string, got {type(text).__name__}; use __call__ for batches.")
        return self(text, text_pair, **kwargs)["input_ids"]

    # --------------------------------------------------------------- decode
    def decode(self, token_ids, skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool | None = None) -> str:
        """Ids -> text: joins `##` pieces onto the previous token."""
        if hasattr(token_ids, "tolist"):
            token_ids = token_ids.tolist()
        if isinstance(token_ids, numbers.Integral):
            token_ids = [token_ids]
        clean = self.clean_up_tokenization_spaces if clean_up_tokenization_spaces is None else clean_up_tokenization_spaces
        token_ids = [int(i) for i in token_ids]
        for i in token_ids:
            if i not in self.ids_to_tokens:  # the Rust decoder would silently drop it
                raise IndexError(f"token id {i} is outside the vocabulary (size {len(self._vocab)}).")
        text = self._decode(token_ids, skip_special_tokens)
        return clean_up_tokenization(text) if clean else text

    def batch_decode(self, sequences, **kwargs) -> list[str]:
        return [self.decode(ids, **kwargs) for ids in sequences]

    def _decode(self, token_ids: list[int], skip_special_tokens: bool) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------ loading, saving
    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **overrides):
        """Loads a directory in the Hugging Face layout, or a single `vocab.txt`.

        Reads `vocab.txt` (else the vocabulary in `tokenizer.json`), and the
        options in `tokenizer_config.json` / `special_tokens_map.json` /
        `tokenizer.json`'s normalizer; keyword arguments override them.
        """
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"no tokenizer at {path!r}: pass a directory holding vocab.txt (and optionally "
                "tokenizer.json, tokenizer_config.json) or the path of a vocab.txt."
            )
        if os.path.isfile(path):
            return cls(vocab_file=path, **overrides)
        kwargs: dict[str, Any] = {}
        tokenizer_json = os.path.join(path, TOKENIZER_FILE)
        if os.path.isfile(tokenizer_json):
            kwargs.update(read_normalizer_settings(tokenizer_json))
        for name in (SPECIAL_TOKENS_MAP_FILE, CONFIG_FILE):
            file = os.path.join(path, name)
            if os.path.isfile(file):
                with open(file, encoding="utf-8") as handle:
                    try:
                        config = json.load(handle)
                    except json.JSONDecodeError as error:
                        raise ValueError(f"{file}:{error.lineno}: invalid JSON ({error.msg}).") from None
                kwargs.update(cls._config_kwargs(config))
        kwargs.update(overrides)
        vocab_file = os.path.join(path, VOCAB_FILE)
        if os.path.isfile(vocab_file):
            kwargs.setdefault("vocab_file", vocab_file)
        elif os.path.isfile(tokenizer_json):
            kwargs.setdefault("vocab", load_vocab_from_tokenizer_json(tokenizer_json))
        else:
            raise FileNotFoundError(f"{path!r} holds neither {VOCAB_FILE} nor {TOKENIZER_FILE}.")
        if cls.is_fast and os.path.isfile(tokenizer_json):
            kwargs.setdefault("tokenizer_file", tokenizer_json)
        return cls(**kwargs)

    @staticmethod
    def _config_kwargs(config: dict) -> dict:
        kwargs = {}
        for key in ("do_lower_case", "strip_accents", "tokenize_chinese_chars", "never_split",
                    "model_max_length", "padding_side", "truncation_side", "clean_up_tokenization_spaces"):
            if key in config:
                kwargs[key] = config[key]
        for attr in SPECIAL_TOKEN_ATTRS:
            if config.get(attr) is not None:
                kwargs[attr] = _token_content(config[attr])
        return kwargs

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str]:
        """Writes `vocab.txt` (`<prefix>-vocab.txt` with a prefix); returns its path."""
        name = f"{filename_prefix}-{VOCAB_FILE}" if filename_prefix else VOCAB_FILE
        path = os.path.join(save_directory, name) if os.path.isdir(save_directory) else save_directory
        write_vocab(self._vocab, path)
        return (path,)

    def save_pretrained(self, save_directory: str | os.PathLike) -> tuple[str, ...]:
        """Writes vocab.txt, tokenizer.json, tokenizer_config.json, special_tokens_map.json."""
        save_directory = os.fspath(save_directory)
        os.makedirs(save_directory, exist_ok=True)
        written = list(self.save_vocabulary(save_directory))
        backend = build_backend(self._vocab, self.special_tokens, **self._normalizer_kwargs())
        tokenizer_json = os.path.join(save_directory, TOKENIZER_FILE)
        backend.save(f"{tokenizer_json}.tmp-{os.getpid()}")
        os.replace(f"{tokenizer_json}.tmp-{os.getpid()}", tokenizer_json)
        written.append(tokenizer_json)
        for name, data in ((CONFIG_FILE, self.tokenizer_config()), (SPECIAL_TOKENS_MAP_FILE, dict(self.special_tokens))):
            file = os.path.join(save_directory, name)
            with open(f"{file}.tmp-{os.getpid()}", "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=2, ensure_ascii=False)
                handle.write("\n")
            os.replace(f"{file}.tmp-{os.getpid()}", file)
            written.append(file)
        return tuple(written)

    def _normalizer_kwargs(self) -> dict:
        return {
            "do_lower_case": self.do_lower_case,
            "strip_accents": self.strip_accents,
            "tokenize_chinese_chars": self.tokenize_chinese_chars,
            "max_input_chars_per_word": self.max_input_chars_per_word,
        }

    def tokenizer_config(self) -> dict:
        """The `tokenizer_config.json` contents, in the form `transformers` reads."""
        added = {
            str(self._vocab[tok]): {"content": tok, "lstrip": False, "normalized": False, "rstrip": False,
                                    "single_word": False, "special": True}
            for tok in self.all_special_tokens if tok in self._vocab
        }
        return {
            "tokenizer_class": "BertTokenizer",
            "do_lower_case": self.do_lower_case,
            "strip_accents": self.strip_accents,
            "tokenize_chinese_chars": self.tokenize_chinese_chars,
            "never_split": self.never_split or None,
            **self.special_tokens,
            "model_max_length": self.model_max_length,
            "padding_side": self.padding_side,
            "truncation_side": self.truncation_side,
            "clean_up_tokenization_spaces": self.clean_up_tokenization_spaces,
            "added_tokens_decoder": dict(sorted(added.items(), key=lambda kv: int(kv[0]))),
        }

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(vocab_size={self.vocab_size}, do_lower_case={self.do_lower_case}, "
                f"strip_accents={self.strip_accents}, model_max_length={self.model_max_length})")


def clean_up_tokenization(text: str) -> str:
    """Removes the spaces decoding leaves before punctuation and English contractions."""
    for before, after in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"),
                          (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        text = text.replace(before, after)
    return text
