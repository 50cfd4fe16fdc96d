"""Next-sentence-prediction pairs from tokenized documents, and their fixed-shape assembly.

The recipe is the original BERT one with its biases removed:

* A chunk of consecutive sentences (up to the target length) is split at a
  random sentence boundary into A and B.
* The coin for "B is random" is flipped for every chunk that *could* take an
  actual next segment, independent of the chunk's shape. A chunk of a single
  sentence takes the document's following sentence as its actual B. A chunk
  that cannot be paired (a lone last sentence, a one-sentence document) is
  skipped whatever the coin says, so the random-next fraction is exactly 0.5
  in expectation (the original forces random-next for single-segment chunks:
  about 55%).
* A random B comes from a different document of the same shard (drawn
  uniformly from the others, never a retry loop); the chunk's unused
  sentences are put back.
* The pair is truncated from a random end: the longer side loses tokens
  first, and how many of a side's removed tokens come off its front is
  Binomial(removed, 1/2), the distribution of the original token-by-token coin.

Segments are contiguous token ranges of one flat token array, so a pair is
four integers until ``assemble`` turns many of them into ``[n, length]``
arrays in one vectorised step.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class InstanceConfig:
    max_seq_length: int = 128
    short_seq_prob: float = 0.1
    dupe_factor: int = 5


@dataclasses.dataclass
class TokenizedDocuments:
    """Documents of one shard as flat arrays.

    Attributes:
      tokens: int32 ``[num_tokens]``, all sentences back to back.
      sentence_bounds: int64 ``[num_sentences + 1]``, token offsets of sentences.
      document_bounds: int64 ``[num_documents + 1]``, sentence offsets of documents.
      document_index: int64 ``[num_documents]``, global input index of each document.
    """

    tokens: np.ndarray
    sentence_bounds: np.ndarray
    document_bounds: np.ndarray
    document_index: np.ndarray

    @property
    def num_documents(self) -> int:
        return len(self.document_index)


@dataclasses.dataclass
class Pairs:
    """NSP pairs as token ranges ``[n]``: A is tokens[a_start : a_start + a_len], same for B."""

    a_start: np.ndarray
    a_len: np.ndarray
    b_start: np.ndarray
    b_len: np.ndarray
    next_sentence_label: np.ndarray  # 1 = B is random
    source_document: np.ndarray  # global index of A's document
    b_document: np.ndarray  # global index of B's document

    def __len__(self) -> int:
        return len(self.a_start)


def _truncate(a_len: int, b_len: int, max_tokens: int) -> tuple[int, int]:
    """New lengths after removing tokens from the longer side first (ties trim B)."""
    excess = a_len + b_len - max_tokens
    if excess <= 0:
        return a_len, b_len
    if a_len > b_len:
        cut = min(excess, a_len - b_len)
        a_len, excess = a_len - cut, excess - cut
    elif b_len > a_len:
        cut = min(excess, b_len - a_len)
        b_len, excess = b_len - cut, excess - cut
    # Equal lengths: the original alternates B, A, B, ...
    return a_len - excess // 2, b_len - (excess - excess // 2)


def _uniforms(rng: np.random.Generator, block: int = 1 << 16):
    """Endless uniforms in [0, 1), drawn from ``rng`` in blocks."""
    while True:
        yield from rng.random(block).tolist()


def _binomial_half(n: int, u) -> int:
    """Binomial(n, 1/2): set bits of n random bits, 53 bits per uniform from ``u``."""
    total = 0
    while n > 0:
        k = min(n, 53)
        total += int(u() * (1 << k)).bit_count()
        n -= k
    return total


def create_pairs(docs: TokenizedDocuments, cfg: InstanceConfig, rng: np.random.Generator) -> Pairs:
    """All NSP pairs of one shard: ``dupe_factor`` passes over the documents in shuffled order.

    Uniforms come in blocks from a child generator and are taken one at a time
    with a generator's ``__next__``, far cheaper than a Generator call per draw.
    Integers in ``[lo, hi)`` are ``lo + floor(u * (hi - lo))`` (bias below 2^-40
    here); Binomial(n, 1/2) is the number of set bits among n random bits.
    """
    if docs.num_documents < 2:
        raise ValueError(
            f"a shard holds {docs.num_documents} document(s); random-next pairs need at least 2 "
            "per shard (use fewer --num-shards or more input)"
        )
    max_tokens = cfg.max_seq_length - 3
    short_prob = cfg.short_seq_prob
    sb = docs.sentence_bounds.tolist()
    db = docs.document_bounds.tolist()
    gidx = docs.document_index.tolist()
    n_docs = docs.num_documents
    order_rng, draw_rng = rng.spawn(2)
    u = _uniforms(draw_rng).__next__
    out: list[tuple[int, int, int, int, int, int, int]] = []
    append = out.append
    for _ in range(cfg.dupe_factor):
        for d in order_rng.permutation(n_docs).tolist():
            s0, s1 = db[d], db[d + 1]
            target = max_tokens
            if u() < short_prob:
                target = 2 + int(u() * (max_tokens - 1))
            chunk_start, i = s0, s0
            while i < s1:
                if i < s1 - 1 and sb[i + 1] - sb[chunk_start] < target:
                    i += 1
                    continue
                # The chunk is sentences [chunk_start, i].
                n_chunk = i + 1 - chunk_start
                if n_chunk >= 2 or i + 1 < s1:
                    is_random = u() < 0.5
                    a_end = chunk_start + 1 + int(u() * (n_chunk - 1)) if n_chunk >= 2 else i + 1
                    a_start, a_len = sb[chunk_start], sb[a_end] - sb[chunk_start]
                    if is_random:
                        other = int(u() * (n_docs - 1))
                        other += other >= d
                        r0, r1 = db[other], db[other + 1]
                        b_first = r0 + int(u() * (r1 - r0))
                        target_b = target - a_len
                        b_last = b_first + 1
                        while b_last < r1 and sb[b_last] - sb[b_first] < target_b:
                            b_last += 1
                        b_start, b_len, b_doc = sb[b_first], sb[b_last] - sb[b_first], gidx[other]
                        i = a_end - 1  # put the unused sentences back
                    elif n_chunk >= 2:
                        b_start, b_len, b_doc = sb[a_end], sb[i + 1] - sb[a_end], gidx[d]
                    else:
                        i += 1  # the following sentence is B; consume it
                        b_start, b_len, b_doc = sb[i], sb[i + 1] - sb[i], gidx[d]
                    if a_len + b_len > max_tokens:
                        new_a, new_b = _truncate(a_len, b_len, max_tokens)
                        if new_a < a_len:
                            a_start += _binomial_half(a_len - new_a, u)
                        if new_b < b_len:
                            b_start += _binomial_half(b_len - new_b, u)
                        a_len, b_len = new_a, new_b
                    append((a_start, a_len, b_start, b_len, is_random, gidx[d], b_doc))
                chunk_start = i + 1
                i += 1
    arr = np.asarray(out, np.int64).reshape(-1, 7)
    return Pairs(
        a_start=arr[:, 0],
        a_len=arr[:, 1],
        b_start=arr[:, 2],
        b_len=arr[:, 3],
        next_sentence_label=arr[:, 4].astype(np.int8),
        source_document=arr[:, 5],
        b_document=arr[:, 6],
    )


def assemble(
    tokens: np.ndarray, pairs: Pairs, max_seq_length: int, cls_id: int, sep_id: int, pad_id: int
) -> dict[str, np.ndarray]:
    """Builds ``[CLS] A [SEP] B [SEP] [PAD]...`` rows.

    Returns:
      ``input_ids`` int32, ``token_type_ids`` int8, ``attention_mask`` int8,
      each ``[n, max_seq_length]``.
    """
    pos = np.arange(max_seq_length, dtype=np.int32)[None, :]
    a_len = pairs.a_len.astype(np.int32)[:, None]
    sep1 = 1 + a_len
    end = sep1 + 1 + pairs.b_len.astype(np.int32)[:, None]  # position of the final [SEP]
    # Index into tokens extended by [CLS], [SEP], [PAD] at the end.
    n = len(tokens)
    ext = np.concatenate([tokens.astype(np.int32), np.array([cls_id, sep_id, pad_id], np.int32)])
    idx = np.where(pos < sep1, (pairs.a_start - 1).astype(np.int32)[:, None] + pos,
                   (pairs.b_start.astype(np.int32)[:, None] - sep1 - 1) + pos)
    idx[:, 0] = n
    idx[(pos == sep1) | (pos == end)] = n + 1
    idx[pos > end] = n + 2
    ids = ext[idx]
    return {
        "input_ids": ids,
        "token_type_ids": ((pos > sep1) & (pos <= end)).astype(np.int8),
        "attention_mask": (pos <= end).astype(np.int8),
    }
