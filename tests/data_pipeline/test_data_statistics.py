"""Acceptance statistics over >= 50,000 instances built from the bundled real-text corpus.

Every test runs twice: on a static build (masks written into the shards) and on
a dynamic build whose masks come from ``PretrainingLoader`` (its epoch-1 masks,
gathered back into example order), so the masking done in the loader meets the
same 15% / 80-10-10 / no-special-token checks as the masking done at build time.

Tolerances are 4 standard deviations of the exact sampling distribution:

* NSP: every pairable chunk flips a fair coin, so the random-next count is
  Binomial(n, 1/2).
* Masked fraction: an example with ``c`` ordinary tokens masks
  ``floor(c p) + Bernoulli(frac(c p))`` of them (stochastic rounding). Over the
  examples where neither the floor of 1 nor the cap binds (``1 <= c p`` and
  ``ceil(c p) <= max_predictions``), the estimator ``sum(masked) / sum(c)`` has
  mean exactly ``p`` and variance ``sum(f (1 - f)) / sum(c)^2`` with
  ``f = frac(c p)``.
* 80/10/10: each masked position independently becomes [MASK] (0.8), a
  uniform ordinary token (0.1, which equals the original with probability
  ``1/V``) or stays (0.1); each share is a binomial proportion.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from data_pipeline import build, inspect, masking
from data_pipeline.loader import PretrainingLoader
from dp_helpers import CORPUS_FILES, make_options, masked_fraction_estimate

P = 0.15


MASKED_FIELDS = ("input_ids", "masked_lm_positions", "masked_lm_ids", "masked_lm_weights")


def loader_masks(directory: str, data: dict[str, np.ndarray], epoch: int) -> dict[str, np.ndarray]:
    """``data`` with its masked fields replaced by the loader's masks of ``epoch``, in example order."""
    loader = PretrainingLoader(directory, 2048, seed=13, drop_remainder=False, return_example_index=True, prefetch=0)
    out = dict(data)
    for name in MASKED_FIELDS:
        out[name] = np.zeros_like(data[name])
    seen = np.zeros(loader.num_examples, bool)
    for step in range(epoch * loader.steps_per_epoch, (epoch + 1) * loader.steps_per_epoch):
        batch = loader.batch_at(step)
        real = batch["example_index"] >= 0
        rows = batch["example_index"][real]
        # The loader serves the stored rows: only the masked fields may differ from the shards.
        for name in ("attention_mask", "token_type_ids", "next_sentence_label"):
            assert np.array_equal(batch[name][real], data[name][rows]), name
        for name in MASKED_FIELDS:
            out[name][rows] = batch[name][real]
        seen[rows] = True
    assert seen.all()
    return out


@pytest.fixture(scope="module", params=["static", "dynamic"])
def corpus_build(request, tmp_path_factory, vocab_file):
    out = str(tmp_path_factory.mktemp(f"stats_{request.param}"))
    opts = make_options(CORPUS_FILES, vocab_file, max_seq_length=128, max_predictions_per_seq=20, dupe_factor=7,
                        num_shards=2, seed=2024, dynamic_masking=request.param == "dynamic")
    manifest = build.build(opts, out)
    _, data, tokens = inspect.collect(out)
    if request.param == "dynamic":
        assert manifest["masking"] == "dynamic"
        data = loader_masks(out, data, epoch=1)
    return manifest, data, tokens


def within(observed: float, expected: float, sd: float, k: float = 4.0) -> bool:
    return abs(observed - expected) <= k * sd + 1e-12


def test_enough_instances(corpus_build):
    manifest, data, _ = corpus_build
    assert manifest["num_examples"] >= 50_000
    assert len(data["input_ids"]) == manifest["num_examples"]


def test_nsp_random_fraction_is_binomial_half(corpus_build):
    _, data, _ = corpus_build
    labels = data["next_sentence_label"].astype(np.float64)
    n = len(labels)
    assert within(labels.mean(), 0.5, math.sqrt(0.25 / n)), labels.mean()


def test_random_b_always_from_another_document(corpus_build):
    _, data, _ = corpus_build
    rand = data["next_sentence_label"] == 1
    assert np.all(data["b_document"][rand] != data["source_document"][rand])
    assert np.all(data["b_document"][~rand] == data["source_document"][~rand])


def test_masked_fraction_centres_on_p(corpus_build):
    _, data, tokens = corpus_build
    vocab = masking.VocabInfo.from_vocab({t: i for i, t in enumerate(tokens)})
    c = vocab.ordinary[data["original_ids"]].sum(1).astype(np.float64)
    k = (data["masked_lm_weights"] > 0).sum(1)
    observed, expected, sd, free_share = masked_fraction_estimate(c, k, P, 20)
    assert free_share > 0.9
    assert within(observed, expected, sd), f"masked fraction {observed:.5f}, expected {expected} +- 4 x {sd:.2g}"
    # Where the floor binds, exactly one token is masked.
    assert np.all(k[(c * P < 1) & (c > 0)] == 1)


def test_80_10_10_split(corpus_build):
    _, data, tokens = corpus_build
    vocab = masking.VocabInfo.from_vocab({t: i for i, t in enumerate(tokens)})
    r, s = np.nonzero(data["masked_lm_weights"] > 0)
    pos = data["masked_lm_positions"][r, s]
    target = data["masked_lm_ids"][r, s]
    shown = data["input_ids"][r, pos]
    m = len(shown)
    v = len(vocab.ordinary_ids)
    for observed, p in [
        ((shown == vocab.mask_id).mean(), 0.8),
        (((shown != vocab.mask_id) & (shown != target)).mean(), 0.1 * (1 - 1 / v)),
        ((shown == target).mean(), 0.1 + 0.1 / v),
    ]:
        sd = math.sqrt(p * (1 - p) / m)
        assert within(observed, p, sd), f"share {observed:.5f} of {m} masked positions, expected {p:.5f} +- 4 x {sd:.2g}"


def test_no_special_token_masked_or_inserted(corpus_build):
    _, data, tokens = corpus_build
    vocab = masking.VocabInfo.from_vocab({t: i for i, t in enumerate(tokens)})
    w = data["masked_lm_weights"] > 0
    r, s = np.nonzero(w)
    pos = data["masked_lm_positions"][r, s]
    assert vocab.ordinary[data["masked_lm_ids"][r, s]].all()
    assert vocab.ordinary[data["original_ids"][r, pos]].all()
    shown = data["input_ids"][r, pos]
    assert (vocab.ordinary[shown] | (shown == vocab.mask_id)).all()
    # Targets match the unmasked text, and padding slots carry nothing.
    assert np.all(data["masked_lm_positions"][~w] == 0) and np.all(data["masked_lm_ids"][~w] == 0)
    # Outside the masked positions the ids are untouched.
    changed = data["input_ids"] != data["original_ids"]
    masked_pos = np.zeros_like(changed)
    masked_pos[r, pos] = True
    assert not np.any(changed & ~masked_pos)


def test_sequences_fit_with_correct_segments(corpus_build):
    _, data, tokens = corpus_build
    vocab = {t: i for i, t in enumerate(tokens)}
    ids, tt, am = data["original_ids"], data["token_type_ids"], data["attention_mask"]
    assert ids.shape[1] == 128
    length = am.sum(1)
    pos = np.arange(128)[None, :]
    assert np.all(am == (pos < length[:, None]))
    assert np.all(ids[:, 0] == vocab["[CLS]"])
    is_sep = ids == vocab["[SEP]"]
    assert np.all(is_sep.sum(1) == 2)
    last = length - 1
    assert np.all(ids[np.arange(len(ids)), last] == vocab["[SEP]"])
    first_sep = np.argmax(is_sep, axis=1)
    assert np.all(first_sep >= 2) and np.all(last - first_sep >= 2)  # A and B non-empty
    expected_tt = (pos > first_sep[:, None]) & (pos <= last[:, None])
    assert np.all(tt == expected_tt)
    assert np.all(ids[~am.astype(bool)] == vocab["[PAD]"])


def test_whole_word_masking_never_splits_a_word(tmp_path, vocab_file):
    opts = make_options(CORPUS_FILES[:3], vocab_file, max_seq_length=128, max_predictions_per_seq=20, dupe_factor=1, num_shards=1, whole_word_masking=True)
    build.build(opts, str(tmp_path))
    _, data, tokens = inspect.collect(str(tmp_path))
    vocab = masking.VocabInfo.from_vocab({t: i for i, t in enumerate(tokens)})
    orig = data["original_ids"]
    masked = np.zeros(orig.shape, bool)
    r, s = np.nonzero(data["masked_lm_weights"] > 0)
    masked[r, data["masked_lm_positions"][r, s]] = True
    # A ## piece and the ordinary token before it belong to one word: masked together.
    cont = vocab.is_subword[orig[:, 1:]] & vocab.ordinary[orig[:, :-1]]
    assert cont.sum() > 1000
    assert np.all(masked[:, 1:][cont] == masked[:, :-1][cont])
    assert masked.sum() > 0.1 * vocab.ordinary[orig].sum()
    assert (data["masked_lm_weights"].sum(1) <= 20).all()
