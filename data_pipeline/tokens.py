"""Tokenizing shard text with the project tokenizer, fast: flat id arrays for a whole shard.

The vocabulary is loaded with ``bert_jax.tokenization.BertTokenizerFast`` (no
JAX import); its Rust backend does all tokenization. For BERT's normaliser and
pre-tokenizer, tokenizing a text equals tokenizing its space-separated chunks
one by one, so each distinct chunk of a shard is encoded once and reused.
"""

from __future__ import annotations

import itertools
import os

import numpy as np


class VocabError(ValueError):
    """A vocabulary that cannot be used."""


def load_tokenizer(vocab_file: str, do_lower_case: bool):
    """Returns ``(backend tokenizers.Tokenizer, vocab dict, tokenizer settings)``."""
    from bert_jax.tokenization import BertTokenizerFast

    if not os.path.exists(vocab_file):
        raise VocabError(f"vocabulary {vocab_file!r} does not exist; pass --vocab path/to/vocab.txt")
    # A tokenizer folder's own casing is overridden too: the build records and uses one setting.
    tok = BertTokenizerFast.from_pretrained(vocab_file, do_lower_case=do_lower_case) if os.path.isdir(vocab_file) else (
        BertTokenizerFast(vocab_file, do_lower_case=do_lower_case)
    )
    vocab = dict(tok.vocab)
    settings = {"class": "BertTokenizerFast", "do_lower_case": bool(getattr(tok, "do_lower_case", do_lower_case))}
    return tok.backend_tokenizer, vocab, settings


def vocab_casing(vocab_file: str) -> bool:
    """``do_lower_case`` for a vocabulary given without a casing flag: what the tokenizer files
    beside it declare (``bert-jax tokenizer train --cased`` writes false; a cased vocabulary was
    lower-cased by default, unsaid), else True (BERT's uncased default)."""
    from bert_jax.tokenization.vocab_file import declared_lowercase
    folder = vocab_file if os.path.isdir(vocab_file) else os.path.dirname(os.path.abspath(vocab_file))
    value = declared_lowercase(folder)
    return True if value is None else value


def vocab_tokens(vocab: dict[str, int]) -> list[str]:
    return [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]


def space_additive(backend) -> bool:
    """True when tokenizing a text equals tokenizing its ' '-separated chunks and concatenating.

    Holds for BERT's normaliser (character by character: clean-up, CJK spacing,
    accents, lower case) with its pre-tokenizer (which splits at every space).
    """
    normalizer = type(backend.normalizer).__name__ if backend.normalizer is not None else None
    return normalizer in (None, "BertNormalizer") and type(backend.pre_tokenizer).__name__ == "BertPreTokenizer"


def tokenize_sentences(backend, sentences: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of all sentences back to back, and each sentence's length.

    Returns:
      ``tokens`` int32 ``[num_tokens]``, ``lengths`` int64 ``[num_sentences]``.

    With a BERT tokenizer each distinct space-separated chunk is tokenized once
    (natural text repeats its words, so this is about 2x faster than encoding
    every sentence, and gives the same ids); any other tokenizer encodes whole sentences.
    """
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
    if not sentences:
        return np.zeros(0, np.int32), np.zeros(0, np.int64)
    if not space_additive(backend):
        ids = [e.ids for e in encode(sentences, add_special_tokens=False)]
        lengths = np.fromiter(map(len, ids), np.int64, len(ids))
        return np.fromiter(itertools.chain.from_iterable(ids), np.int32, int(lengths.sum())), lengths
    # Joining with single spaces keeps each sentence's chunks contiguous and in order.
    parts = " ".join(sentences).split(" ")
    chunks_per_sentence = np.fromiter(map(str.count, sentences, itertools.repeat(" ")), np.int64, len(sentences)) + 1
    unique = {p: i for i, p in enumerate(dict.fromkeys(parts))}
    ci = np.fromiter(map(unique.__getitem__, parts), np.int64, len(parts))
    ids_u = [e.ids for e in encode(list(unique), add_special_tokens=False)]
    len_u = np.fromiter(map(len, ids_u), np.int64, len(ids_u))
    flat_u = np.fromiter(itertools.chain.from_iterable(ids_u), np.int32, int(len_u.sum()))
    start_u = np.cumsum(len_u) - len_u
    lens = len_u[ci]
    # Token t of chunk j sits at start_u[ci[j]] + t in flat_u.
    tokens = flat_u[np.repeat(start_u[ci] - (np.cumsum(lens) - lens), lens) + np.arange(int(lens.sum()))]
    ends = np.concatenate([[0], np.cumsum(lens)])[np.cumsum(chunks_per_sentence)]
    return tokens, np.diff(np.concatenate([[0], ends]))


