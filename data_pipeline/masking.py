"""Masked-LM masking, vectorised over a batch, shared by the static build and the dynamic loader.

Randomness is *counter based*: every random number is a hash of
``(seed words, example key, position, stream)``. An example's mask therefore
depends only on its key, never on which batch, worker or host processes it,
so static shards are identical for any worker count and dynamic masks are
identical for any process count and resume point. The seed words are explicit
arguments (no global RNG).

Rounding of the masked count: with ``n`` candidate (ordinary) tokens and
probability ``p``, the count is ``floor(n p) + Bernoulli(frac(n p))``
(stochastic rounding), so its expectation is exactly ``n p``; it is then
raised to at least 1 and capped by ``max_predictions_per_seq`` and ``n``.
The original BERT code counts the special tokens in ``n`` and rounds up,
which masks about 17% instead of 15%.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_UNUSED = re.compile(r"^\[unused\d+\]$")
_M64 = (1 << 64) - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)

# Stream identifiers: one independent random stream per decision.
STREAM_ROUND, STREAM_SELECT, STREAM_ACTION, STREAM_TOKEN = 1, 2, 3, 4


@dataclasses.dataclass(frozen=True)
class VocabInfo:
    """What masking needs to know about a vocabulary.

    Attributes:
      ordinary: bool ``[vocab]``, True for tokens that may be masked or inserted
        (everything except the special tokens and ``[unused*]``).
      is_subword: bool ``[vocab]``, True for ``##`` continuation pieces.
      ordinary_ids: int32 ``[num_ordinary]``, the ids drawn for random replacement.
    """

    mask_id: int
    cls_id: int
    sep_id: int
    pad_id: int
    unk_id: int
    ordinary: np.ndarray
    is_subword: np.ndarray
    ordinary_ids: np.ndarray

    @property
    def vocab_size(self) -> int:
        return int(self.ordinary.shape[0])

    @classmethod
    def from_vocab(cls, vocab: dict[str, int], source: str = "the vocabulary") -> "VocabInfo":
        """Builds from a token -> id mapping; raises naming any missing special token."""
        missing = [t for t in SPECIAL_TOKENS if t not in vocab]
        if missing:
            raise ValueError(
                f"{source} lacks the special token(s) {missing}; BERT pretraining needs "
                f"all of {list(SPECIAL_TOKENS)} (add them to vocab.txt or train a new vocabulary)"
            )
        size = max(vocab.values()) + 1
        ordinary = np.ones(size, bool)
        is_subword = np.zeros(size, bool)
        for token, i in vocab.items():
            if token in SPECIAL_TOKENS or _UNUSED.match(token):
                ordinary[i] = False
            elif token.startswith("##"):
                is_subword[i] = True
        return cls(
            mask_id=vocab["[MASK]"],
            cls_id=vocab["[CLS]"],
            sep_id=vocab["[SEP]"],
            pad_id=vocab["[PAD]"],
            unk_id=vocab["[UNK]"],
            ordinary=ordinary,
            is_subword=is_subword,
            ordinary_ids=np.flatnonzero(ordinary).astype(np.int32),
        )


@dataclasses.dataclass(frozen=True)
class MaskingConfig:
    masked_lm_prob: float = 0.15
    max_predictions_per_seq: int = 20
    whole_word_masking: bool = False


def mix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def seed_key(*words: int) -> int:
    """Folds integer seed words (seed, shard, epoch, ...) into one 64-bit key."""
    key = 0x6A09E667F3BCC908
    for w in words:
        key = int(mix64(np.array([(key ^ (int(w) & _M64)) & _M64], np.uint64))[0])
        key = (key + 0x9E3779B97F4A7C15) & _M64
    return key


def example_keys(key: int, example_ids: np.ndarray) -> np.ndarray:
    """Per-example 64-bit keys ``[n]`` from a seed key and example indices ``[n]``."""
    ids = np.asarray(example_ids).astype(np.uint64)
    return mix64(ids * _GOLDEN + np.uint64(key))


def uniform(keys: np.ndarray, num_cols: int | None, stream) -> np.ndarray:
    """Uniform floats in [0, 1): ``[n]`` if ``num_cols`` is None, else ``[n, num_cols]``.

    ``stream`` is an int, or an int array ``[n]`` (one stream per key, e.g. per position).
    """
    stream = np.atleast_1d(np.asarray(stream)).astype(np.uint64)
    base = keys + stream * np.uint64(0xD1B54A32D192ED03)
    if num_cols is None:
        bits = mix64(base)
    else:
        cols = (np.arange(1, num_cols + 1, dtype=np.uint64) * _GOLDEN)[None, :]
        bits = mix64(mix64(base)[:, None] ^ cols)
    return (bits >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def num_to_mask(num_candidates: np.ndarray, keys: np.ndarray, cfg: MaskingConfig) -> np.ndarray:
    """Masked count per example ``[n]``: stochastic rounding of ``n p``, >= 1, <= cap."""
    target = num_candidates * cfg.masked_lm_prob
    base = np.floor(target)
    count = base + (uniform(keys, None, STREAM_ROUND) < target - base)
    count = np.maximum(count, 1)
    count = np.minimum(count, np.minimum(cfg.max_predictions_per_seq, num_candidates))
    return count.astype(np.int64)


def _word_starts(candidates: np.ndarray, input_ids: np.ndarray, vocab: VocabInfo) -> np.ndarray:
    """True where a candidate starts a word (not a ``##`` piece, or after a non-candidate)."""
    prev = np.zeros_like(candidates)
    prev[:, 1:] = candidates[:, :-1]
    return candidates & (~vocab.is_subword[input_ids] | ~prev)


def mask_batch(
    input_ids: np.ndarray, keys: np.ndarray, vocab: VocabInfo, cfg: MaskingConfig
) -> dict[str, np.ndarray]:
    """Masks a batch of unmasked sequences.

    Args:
      input_ids: int ``[batch, length]``, unmasked, ``[CLS] A [SEP] B [SEP] [PAD]...``.
      keys: uint64 ``[batch]`` per-example keys (see ``example_keys``).
      vocab: special/ordinary/subword tables.
      cfg: probability, cap and whole-word flag.

    Returns:
      ``input_ids`` int32 ``[batch, length]`` (masked), ``masked_lm_positions``,
      ``masked_lm_ids`` int32 ``[batch, max_pred]`` (ascending positions, 0-padded),
      ``masked_lm_weights`` float32 ``[batch, max_pred]`` (1 real, 0 padding).
    """
    input_ids = np.asarray(input_ids, np.int32)
    batch, length = input_ids.shape
    max_pred = cfg.max_predictions_per_seq
    rows = np.arange(batch)[:, None]
    candidates = vocab.ordinary[input_ids]
    count = num_to_mask(candidates.sum(1), keys, cfg)

    select = uniform(keys, length, STREAM_SELECT)
    # Non-candidates get distinct keys above every candidate's, so no two keys
    # tie and any sort algorithm gives the same ranks.
    above = 2.0 + np.arange(length)[None, :]
    if cfg.whole_word_masking:
        starts = _word_starts(candidates, input_ids, vocab)
        # Each position takes the random key of the start of its word.
        start_pos = np.maximum.accumulate(np.where(starts, np.arange(length)[None, :], 0), axis=1)
        order = np.argsort(np.where(starts, select, above), axis=1)
        # Word lengths, listed at their start positions.
        word_id = np.cumsum(starts, axis=1) - 1
        word_len = np.zeros((batch, length + 1), np.int64)
        np.add.at(word_len, (np.broadcast_to(rows, word_id.shape)[candidates], word_id[candidates]), 1)
        len_at_start = np.where(starts, word_len[rows, np.maximum(word_id, 0)], 0)
        # Words in random order are taken while the running total stays <= count
        # (a prefix, so a whole word is never split).
        running = np.cumsum(len_at_start[rows, order], axis=1)
        accepted_sorted = (running <= count[:, None]) & starts[rows, order]
        accepted = np.zeros_like(starts)
        accepted[rows, order] = accepted_sorted
        chosen = candidates & accepted[rows, start_pos]
    else:
        order = np.argsort(np.where(candidates, select, above), axis=1)
        rank = np.empty_like(order)
        rank[rows, order] = np.arange(length)[None, :]
        chosen = candidates & (rank < count[:, None])

    r, c = np.nonzero(chosen)  # row-major: ascending positions within each row
    # The 80/10/10 decision and the random token, drawn only where needed.
    action = uniform(keys[r], None, (STREAM_ACTION << 20) + c)
    token_u = uniform(keys[r], None, (STREAM_TOKEN << 20) + c)
    original = input_ids[r, c]
    random_ids = vocab.ordinary_ids[(token_u * len(vocab.ordinary_ids)).astype(np.int64)]
    masked = input_ids.copy()
    masked[r, c] = np.where(action < 0.8, vocab.mask_id, np.where(action < 0.9, random_ids, original))

    per_row = chosen.sum(1)
    slot = np.arange(r.size) - np.repeat(np.cumsum(per_row) - per_row, per_row)
    positions = np.zeros((batch, max_pred), np.int32)
    ids = np.zeros((batch, max_pred), np.int32)
    weights = np.zeros((batch, max_pred), np.float32)
    positions[r, slot] = c
    ids[r, slot] = original
    weights[r, slot] = 1.0
    return {
        "input_ids": masked,
        "masked_lm_positions": positions,
        "masked_lm_ids": ids,
        "masked_lm_weights": weights,
    }
