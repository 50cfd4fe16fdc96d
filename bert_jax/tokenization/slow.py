"""`BertTokenizer`: the BERT tokenizer API in pure Python.

Readable reference for the algorithm (see `wordpiece.py`) and the Hugging Face
Python tokenizer's post-processing: truncation removes tokens per sequence
(`longest_first` breaks a tie by shortening the second text), overflow is
returned as `overflowing_tokens`, and padding is applied to the whole batch.
"""

from __future__ import annotations

import re

from bert_jax.tokenization.base import BertTokenizerBase
from bert_jax.tokenization.options import EncodeOptions, check_strings
from bert_jax.tokenization.encoding import BatchEncoding
from bert_jax.tokenization.wordpiece import BasicTokenizer, WordpieceTokenizer

_WORD_CACHE_SIZE = 200_000


class BertTokenizer(BertTokenizerBase):
    """Pure-Python BERT WordPiece tokenizer; ids match Hugging Face's Python one.

    Same arguments as `BertTokenizerBase`. `return_offsets_mapping` and
    `word_ids()` need `BertTokenizerFast`.
    """

    is_fast = False

    def __init__(self, vocab_file: str | None = None, *args, **kwargs):
        super().__init__(vocab_file, *args, **kwargs)
        self.basic_tokenizer = BasicTokenizer(
            do_lower_case=self.do_lower_case,
            strip_accents=self.strip_accents,
            tokenize_chinese_chars=self.tokenize_chinese_chars,
            never_split=set(self.never_split) | set(self.all_special_tokens),
        )
        self.wordpiece_tokenizer = WordpieceTokenizer(
            self._vocab, self.unk_token, max_input_chars_per_word=self.max_input_chars_per_word
        )
        # Special tokens written in the text ("a [MASK] b") stay whole, matched
        # case-sensitively before any normalisation; longest first on overlap.
        specials = sorted(self.all_special_tokens, key=len, reverse=True)
        self._special_split = re.compile("(" + "|".join(re.escape(t) for t in specials) + ")")
        self._special_set = frozenset(specials)
        self._never_split = frozenset(self.never_split)
        self._word_cache: dict[str, list[str]] = {}

    def tokenize(self, text: str) -> list[str]:
        """Text -> WordPiece tokens (no special tokens added)."""
        check_strings([text], "text{}")
        tokens: list[str] = []
        for chunk in self._special_split.split(text):
            if not chunk:
                continue
            if chunk in self._special_set:
                tokens.append(chunk)
                continue
            for word in self.basic_tokenizer.split_words(chunk):
                pieces = self._word_cache.get(word)
                if pieces is None:
                    pieces = self._word_pieces(word)
                tokens.extend(pieces)
        return tokens

    def _word_pieces(self, word: str) -> list[str]:
        """Stages 1 and 2 for one whitespace-free word, memoised: natural text
        repeats words, so most are looked up rather than re-tokenized."""
        pieces = []
        for piece in self.basic_tokenizer.process_word(word):
            if piece in self._never_split:
                pieces.append(piece)
            else:
                pieces.extend(self.wordpiece_tokenizer.tokenize_word(piece))
        if len(self._word_cache) >= _WORD_CACHE_SIZE:
            self._word_cache.clear()  # bounded memory on endless streams of new words
        self._word_cache[word] = pieces
        return pieces

    def _encode_batch(self, firsts: list[str], seconds: list[str] | None, options: EncodeOptions) -> BatchEncoding:
        if options.return_offsets_mapping:
            raise NotImplementedError(
                "return_offsets_mapping needs character offsets, which only BertTokenizerFast tracks; "
                "use BertTokenizerFast."
            )
        prepared = []
        for i, first in enumerate(firsts):
            ids = self.convert_tokens_to_ids(self.tokenize(first))
            pair = None if seconds is None else self.convert_tokens_to_ids(self.tokenize(seconds[i]))
            prepared.append(self._prepare_one(ids, pair, options))
        keys = (prepared[0] if prepared else self._prepare_one([], None, options)).keys()
        rows = {key: [row[key] for row in prepared] for key in keys if key != "overflowing_tokens"}
        if any("overflowing_tokens" in row for row in prepared):
            # Rows that did not overflow get [] and 0, so every key stays row-aligned.
            rows["overflowing_tokens"] = [row.get("overflowing_tokens", []) for row in prepared]
            rows["num_truncated_tokens"] = [row.get("num_truncated_tokens", 0) for row in prepared]
        if options.return_tensors is not None:
            rows.pop("overflowing_tokens", None)
            rows.pop("num_truncated_tokens", None)
        return BatchEncoding(self._pad(rows, options))

    def _prepare_one(self, ids: list[int], pair: list[int] | None, options: EncodeOptions) -> dict:
        """Truncates one input, adds special tokens, builds its per-token fields."""
        if options.return_overflowing_tokens and options.truncation == "longest_first" and pair is not None:
            raise ValueError(
                "overflowing tokens of a pair cannot be returned with truncation='longest_first' "
                "(it cuts both texts); use 'only_second' or 'only_first'."
            )
        num_special = self.num_special_tokens_to_add(pair is not None) if options.add_special_tokens else 0
        total = len(ids) + len(pair or []) + num_special
        overflow: list[int] = []
        if options.truncation != "do_not_truncate" and options.max_length and total > options.max_length:
            ids, pair, overflow = self.truncate_sequences(
                ids, pair, total - options.max_length, options.truncation, options.stride
            )
        if options.add_special_tokens:
            input_ids = self.build_inputs_with_special_tokens(ids, pair)
            type_ids = self.create_token_type_ids_from_sequences(ids, pair)
            special_mask = self.get_special_tokens_mask(ids, pair)
        else:
            input_ids = ids + (pair or [])
            type_ids = [0] * len(input_ids)
            special_mask = [0] * len(input_ids)
        row = {"input_ids": input_ids}
        if options.return_token_type_ids:
            row["token_type_ids"] = type_ids
        if options.return_special_tokens_mask:
            row["special_tokens_mask"] = special_mask
        if options.return_overflowing_tokens and overflow:
            row["overflowing_tokens"] = overflow
            row["num_truncated_tokens"] = total - options.max_length
        if options.return_length:
            row["length"] = len(input_ids)
        return row

    def truncate_sequences(self, ids, pair_ids=None, num_tokens_to_remove=0, truncation_strategy="longest_first", stride=0):
        """Removes `num_tokens_to_remove` tokens as Hugging Face's Python tokenizer does.

        Returns:
          (ids, pair_ids, overflowing_tokens); the overflow keeps `stride`
          tokens of context from the kept part.
        """
        if num_tokens_to_remove <= 0:
            return ids, pair_ids, []
        right = self.truncation_side == "right"
        if truncation_strategy == "only_first" or (truncation_strategy == "longest_first" and pair_ids is None):
            window = min(len(ids), stride + num_tokens_to_remove)
            overflow = ids[-window:] if right else ids[:window]
            return (ids[:-num_tokens_to_remove] if right else ids[num_tokens_to_remove:]), pair_ids, overflow
        if truncation_strategy == "longest_first":
            # Shorten the longer text down to the other's length, then both
            # alternately; on an odd remainder the second text loses the extra token.
            len_a, len_b = len(ids), len(pair_ids)
            first_remove = min(abs(len_b - len_a), num_tokens_to_remove)
            rest = num_tokens_to_remove - first_remove
            if len_a > len_b:
                cut_a, cut_b = first_remove + rest // 2, rest - rest // 2
            else:
                cut_a, cut_b = rest // 2, first_remove + rest - rest // 2
            if right:
                return (ids[:-cut_a] if cut_a else ids), (pair_ids[:-cut_b] if cut_b else pair_ids), []
            return ids[cut_a:], pair_ids[cut_b:], []
        if truncation_strategy == "only_second" and pair_ids:
            window = min(len(pair_ids), stride + num_tokens_to_remove)
            overflow = pair_ids[-window:] if right else pair_ids[:window]
            return ids, (pair_ids[:-num_tokens_to_remove] if right else pair_ids[num_tokens_to_remove:]), overflow
        return ids, pair_ids, []

    def _pad(self, rows: dict[str, list], options: EncodeOptions) -> dict[str, list]:
        """Pads every row to the batch's target length and adds attention_mask."""
        lengths = [len(r) for r in rows["input_ids"]]
        target = None
        if options.padding == "longest":
            target = max(lengths, default=0)
        elif options.padding == "max_length":
            target = options.max_length
        if target is not None and options.pad_to_multiple_of:
            multiple = options.pad_to_multiple_of
            target = -(-target // multiple) * multiple
        fill = {"input_ids": self.pad_token_id, "token_type_ids": 0, "special_tokens_mask": 1}
        if options.return_attention_mask:
            rows["attention_mask"] = [[1] * n for n in lengths]
            fill["attention_mask"] = 0
        if target is None:
            return rows
        for key, value in fill.items():
            if key not in rows:
                continue
            padded = []
            for row in rows[key]:
                extra = [value] * max(0, target - len(row))
                padded.append(row + extra if self.padding_side == "right" else extra + row)
            rows[key] = padded
        return rows

    def _decode(self, token_ids: list[int], skip_special_tokens: bool) -> str:
        tokens = self.convert_ids_to_tokens(token_ids, skip_special_tokens=skip_special_tokens)
        return " ".join(tokens).replace(" ##", "").strip()
