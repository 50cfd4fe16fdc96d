"""Masking and pair construction against direct (numpy / pure Python) reference computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from data_pipeline import instances, masking

TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", "[unused1]"] + [f"w{i}" for i in range(40)] + [
    f"##p{i}" for i in range(20)
]
VOCAB = masking.VocabInfo.from_vocab({t: i for i, t in enumerate(TOKENS)})


def random_rows(rng, batch, length, min_len=8):
    """``[CLS] A [SEP] B [SEP] [PAD]...`` rows of ordinary ids (words and ## pieces)."""
    ids = np.zeros((batch, length), np.int32)
    for r in range(batch):
        n = int(rng.integers(min_len, length + 1))
        body = rng.choice(VOCAB.ordinary_ids, n - 3)
        body[0] = 7  # a word start
        cut = int(rng.integers(1, n - 3))
        ids[r, :n] = [2, *body[:cut], 3, *body[cut:], 3]
    return ids


def test_vocab_lacking_mask_names_it():
    with pytest.raises(ValueError, match=r"vocab.txt lacks the special token\(s\) \['\[MASK\]'\]"):
        masking.VocabInfo.from_vocab({t: i for i, t in enumerate(TOKENS) if t != "[MASK]"}, "vocab.txt")


def test_ordinary_excludes_special_and_unused():
    ordinary = {TOKENS[i] for i in VOCAB.ordinary_ids}
    assert ordinary == set(TOKENS[7:])


def test_count_rounding_cap_and_floor():
    cfg = masking.MaskingConfig(0.15, 5, False)
    n = np.array([0, 1, 3, 10, 20, 200])
    keys = masking.example_keys(1, np.arange(6))
    count = masking.num_to_mask(n, keys, cfg)
    assert count[0] == 0 and count[1] == 1 and count[2] == 1 and count[5] == 5
    assert count[3] in (1, 2) and count[4] in (3, 4)
    # Stochastic rounding: the mean count of c=10 (target 1.5) is 1.5 within 4 sd.
    many = masking.num_to_mask(np.full(40_000, 10), masking.example_keys(2, np.arange(40_000)), cfg)
    assert abs(many.mean() - 1.5) < 4 * math.sqrt(0.25 / 40_000)


@pytest.mark.parametrize("wwm", [False, True])
def test_mask_batch_against_reference(wwm):
    rng = np.random.default_rng(0)
    ids = random_rows(rng, 300, 48)
    cfg = masking.MaskingConfig(0.15, 6, wwm)
    keys = masking.example_keys(masking.seed_key(3, 1), np.arange(300))
    out = masking.mask_batch(ids, keys, VOCAB, cfg)
    select = masking.uniform(keys, 48, masking.STREAM_SELECT)
    count = masking.num_to_mask(VOCAB.ordinary[ids].sum(1), keys, cfg)
    for r in range(300):
        chosen = out["masked_lm_positions"][r][out["masked_lm_weights"][r] > 0].tolist()
        assert chosen == sorted(chosen)
        assert all(VOCAB.ordinary[ids[r, p]] for p in chosen)
        assert out["masked_lm_ids"][r, : len(chosen)].tolist() == ids[r, chosen].tolist()
        cand = [p for p in range(48) if VOCAB.ordinary[ids[r, p]]]
        if not wwm:
            # Exactly the `count` candidates with the smallest keys.
            assert chosen == sorted(sorted(cand, key=lambda p: select[r, p])[: count[r]])
        else:
            # Reference: words in key order, taken while the total stays <= count.
            words, cur = [], None
            for p in cand:
                if cur is None or not VOCAB.is_subword[ids[r, p]] or p - 1 not in cand:
                    cur = [p]
                    words.append(cur)
                else:
                    cur.append(p)
            taken, total = [], 0
            for w in sorted(words, key=lambda w: select[r, w[0]]):
                if total + len(w) > count[r]:
                    break
                taken += w
                total += len(w)
            assert chosen == sorted(taken)
        untouched = [p for p in range(48) if p not in chosen]
        assert out["input_ids"][r, untouched].tolist() == ids[r, untouched].tolist()


def test_mask_depends_only_on_example_key():
    rng = np.random.default_rng(1)
    ids = random_rows(rng, 64, 32)
    cfg = masking.MaskingConfig()
    keys = masking.example_keys(masking.seed_key(9), np.arange(64))
    whole = masking.mask_batch(ids, keys, VOCAB, cfg)
    perm = rng.permutation(64)
    part = masking.mask_batch(ids[perm[:20]], keys[perm[:20]], VOCAB, cfg)
    for name in whole:
        assert np.array_equal(whole[name][perm[:20]], part[name])


def test_truncate_matches_token_by_token_reference():
    def reference(a, b, m):
        while a + b > m:
            if a > b:
                a -= 1
            else:
                b -= 1
        return a, b

    for a in range(0, 30):
        for b in range(0, 30):
            assert instances._truncate(a, b, 25) == reference(a, b, 25)


def test_pairs_and_assembly():
    rng = np.random.default_rng(4)
    # 12 documents of 3-8 sentences of 2-30 tokens each.
    lengths, doc_sents = [], []
    for _ in range(12):
        k = int(rng.integers(3, 9))
        doc_sents.append(k)
        lengths += rng.integers(2, 31, k).tolist()
    tokens = rng.choice(VOCAB.ordinary_ids, sum(lengths)).astype(np.int32)
    docs = instances.TokenizedDocuments(
        tokens=tokens,
        sentence_bounds=np.concatenate([[0], np.cumsum(lengths)]),
        document_bounds=np.concatenate([[0], np.cumsum(doc_sents)]),
        document_index=np.arange(100, 112),
    )
    cfg = instances.InstanceConfig(max_seq_length=40, short_seq_prob=0.2, dupe_factor=3)
    pairs = instances.create_pairs(docs, cfg, np.random.default_rng(5))
    assert len(pairs) > 50
    assert np.all(pairs.a_len >= 1) and np.all(pairs.b_len >= 1)
    assert np.all(pairs.a_len + pairs.b_len <= 37)
    rand = pairs.next_sentence_label == 1
    assert np.all(pairs.b_document[rand] != pairs.source_document[rand])
    assert np.all(pairs.b_document[~rand] == pairs.source_document[~rand])
    # Actual-next B starts after A ends (same document, later tokens).
    assert np.all(pairs.b_start[~rand] >= pairs.a_start[~rand] + pairs.a_len[~rand])
    rows = instances.assemble(tokens, pairs, 40, 2, 3, 0)
    for i in range(len(pairs)):
        a = tokens[pairs.a_start[i] : pairs.a_start[i] + pairs.a_len[i]].tolist()
        b = tokens[pairs.b_start[i] : pairs.b_start[i] + pairs.b_len[i]].tolist()
        expect = [2, *a, 3, *b, 3]
        expect += [0] * (40 - len(expect))
        assert rows["input_ids"][i].tolist() == expect
        tt = [0] * (len(a) + 2) + [1] * (len(b) + 1)
        assert rows["token_type_ids"][i].tolist() == tt + [0] * (40 - len(tt))
        assert rows["attention_mask"][i].sum() == len(a) + len(b) + 3
    with pytest.raises(ValueError, match="at least 2"):
        one = instances.TokenizedDocuments(tokens, docs.sentence_bounds, docs.document_bounds[:2], docs.document_index[:1])
        instances.create_pairs(one, cfg, np.random.default_rng(0))


def test_binomial_half_from_random_bits():
    """Mean and variance of Binomial(n, 1/2) draws, each within 4 sd of its estimator.

    The variance estimator is ``mean((x - n/2)^2)`` (the mean is known), whose
    expectation is exactly sigma^2 = n/4 and whose variance is (mu4 - sigma^4) / N
    with the binomial's mu4 = n/4 (1 + 3 (n - 2) / 4): sd = sigma^2 sqrt((2 - 2/n) / N),
    1% of n/4 at N = 20,000 (zero at n = 1, where every draw gives exactly 1/4).
    """
    draws = 20_000
    u = instances._uniforms(np.random.default_rng(1)).__next__
    for n in (1, 7, 53, 70, 200):
        x = np.array([instances._binomial_half(n, u) for _ in range(draws)])
        assert x.min() >= 0 and x.max() <= n
        var = n / 4
        assert abs(x.mean() - n / 2) <= 4 * math.sqrt(var / draws), (n, x.mean())
        second = np.mean((x - n / 2) ** 2)
        sd = var * math.sqrt((2 - 2 / n) / draws)
        assert abs(second - var) <= 4 * sd + 1e-12, f"n={n}: variance {second:.4f}, expected {var} +- 4 x {sd:.3g}"
