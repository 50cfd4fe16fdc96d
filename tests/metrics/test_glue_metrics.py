"""GLUE scores against sklearn / scipy on random and crafted predictions."""

import warnings

import numpy as np
import pytest

sklearn_metrics = pytest.importorskip("sklearn.metrics")
stats = pytest.importorskip("scipy.stats")

from bert_jax.metrics import glue_metrics  # noqa: E402
from bert_jax.metrics.glue import canonical_task, rank_average  # noqa: E402

TOL = 1e-12


def sk_mcc(y, p):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sklearn_metrics.matthews_corrcoef(y, p)


def sk_f1(y, p):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sklearn_metrics.f1_score(y, p, pos_label=1, average="binary", zero_division=0.0)


def sp_corr(fn, x, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(x, y)[0]


@pytest.mark.parametrize("spelling,expected", [
    ("CoLA", "cola"), ("SST-2", "sst2"), ("sst2", "sst2"), ("STS-B", "stsb"), ("stsb", "stsb"),
    ("MNLI-m", "mnli_matched"), ("MNLI-mm", "mnli_mismatched"), ("mnli_matched", "mnli_matched"),
    ("MNLI", "mnli"), ("QQP", "qqp"), ("MRPC", "mrpc"), ("qnli", "qnli"), ("RTE", "rte"), ("WNLI", "wnli"),
    ("AX", "ax"),
])
def test_task_spellings(spelling, expected):
    assert canonical_task(spelling) == expected


def test_unknown_task_lists_valid_names():
    with pytest.raises(ValueError, match=r"Unknown GLUE task 'sst3'.*cola.*sst2.*stsb"):
        glue_metrics("sst3", [1], [1])


def test_random_classification_against_sklearn():
    rng = np.random.default_rng(0)
    for trial in range(300):
        n = int(rng.integers(1, 60))
        num_classes = int(rng.integers(2, 4))
        y = rng.integers(0, num_classes, n)
        # Mix of independent, correlated and anti-correlated predictions.
        p = np.where(rng.random(n) < rng.random(), y, rng.integers(0, num_classes, n))
        if trial % 5 == 0:
            p = (num_classes - 1) - p
        assert abs(glue_metrics("cola", p, y)["mcc"] - sk_mcc(y, p)) < TOL
        acc = sklearn_metrics.accuracy_score(y, p)
        assert abs(glue_metrics("MNLI-m", p, y)["accuracy"] - acc) < TOL
        yb, pb = (y == 1).astype(int), (p == 1).astype(int)
        out = glue_metrics("mrpc", pb, yb)
        assert abs(out["f1"] - sk_f1(yb, pb)) < TOL
        assert abs(out["accuracy"] - sklearn_metrics.accuracy_score(yb, pb)) < TOL
        assert out["combined_score"] == pytest.approx((out["f1"] + out["accuracy"]) / 2, abs=TOL)


@pytest.mark.parametrize("y,p", [
    ([1, 1, 1, 1], [1, 1, 1, 1]),  # all one class, all right
    ([0, 1, 0, 1], [1, 1, 1, 1]),  # constant prediction
    ([1, 1, 1, 1], [0, 1, 0, 1]),  # constant labels
    ([0, 0, 0], [0, 0, 0]),  # no positive anywhere (F1 undefined)
    ([0, 1], [1, 0]),  # perfectly wrong
    ([0, 1, 1, 0], [0, 1, 1, 0]),
    ([1], [0]),
])
def test_degenerate_classification(y, p):
    y, p = np.array(y), np.array(p)
    mcc = glue_metrics("CoLA", p, y)["mcc"]
    assert mcc == pytest.approx(sk_mcc(y, p), abs=TOL) and np.isfinite(mcc)
    out = glue_metrics("QQP", p, y)
    assert out["f1"] == pytest.approx(sk_f1(y, p), abs=TOL)
    assert out["accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(y, p), abs=TOL)


def test_logits_are_argmaxed():
    logits = np.array([[2.0, -1.0], [0.1, 0.3], [-5.0, 5.0]])
    assert glue_metrics("sst2", logits, [0, 1, 0])["accuracy"] == pytest.approx(2 / 3)


def test_random_regression_against_scipy():
    rng = np.random.default_rng(1)
    for trial in range(300):
        n = int(rng.integers(2, 80))
        y = rng.uniform(0, 5, n)
        if trial % 3 == 0:
            y = np.round(y)  # gold STS-B scores repeat: ties for Spearman
        p = y * rng.normal() + rng.normal(scale=rng.uniform(0.01, 3), size=n)
        if trial % 4 == 0:
            p = np.round(p, 1)  # tied predictions
        out = glue_metrics("STS-B", p, y)
        ref_p = sp_corr(stats.pearsonr, p, y)
        ref_s = sp_corr(stats.spearmanr, p, y)
        if np.isnan(ref_p):  # rounding made one side constant
            assert out["pearson"] == 0.0 and out["spearmanr"] == 0.0
            continue
        assert abs(out["pearson"] - ref_p) < TOL
        assert abs(out["spearmanr"] - ref_s) < TOL
        assert out["combined_score"] == pytest.approx((ref_p + ref_s) / 2, abs=TOL)


@pytest.mark.parametrize("p,y", [
    ([1, 2, 2, 2, 3], [1, 2, 3, 4, 5]),  # ties in the prediction
    ([3, 3, 1, 1, 2, 2], [1, 1, 2, 2, 3, 3]),  # ties on both sides
    ([1, 2, 3, 4], [4, 3, 2, 1]),  # perfectly anti-correlated
    ([1e9 + 1, 1e9 + 2, 1e9 + 4], [0.0, 1.0, 2.0]),  # large offset
    ([0.0, 1e-300, 2e-300], [1.0, 2.0, 3.0]),
])
def test_crafted_regression(p, y):
    out = glue_metrics("stsb", p, y)
    assert abs(out["pearson"] - sp_corr(stats.pearsonr, p, y)) < TOL
    assert abs(out["spearmanr"] - sp_corr(stats.spearmanr, p, y)) < TOL


def test_ranks_match_scipy():
    rng = np.random.default_rng(2)
    for _ in range(50):
        x = rng.integers(0, 6, int(rng.integers(1, 30))).astype(float)
        np.testing.assert_array_equal(rank_average(x), stats.rankdata(x))


@pytest.mark.parametrize("p,y", [([2.5, 2.5, 2.5], [1.0, 2.0, 3.0]), ([1.0, 2.0, 3.0], [4.0, 4.0, 4.0]),
                                 ([1.0], [2.0])])
def test_constant_regression_is_zero_where_scipy_is_undefined(p, y):
    # scipy: NaN with ConstantInputWarning (constant), ValueError (n=1). Defined as 0.0 here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ref = stats.pearsonr(p, y)[0]
        except ValueError:
            ref = float("nan")
    assert np.isnan(ref)
    out = glue_metrics("stsb", p, y)
    assert out == {"pearson": 0.0, "spearmanr": 0.0, "combined_score": 0.0}


def test_input_errors():
    with pytest.raises(ValueError, match="no examples"):
        glue_metrics("rte", [], [])
    with pytest.raises(ValueError, match="3 predictions but 2 labels"):
        glue_metrics("rte", [0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match=r"1 of 3 predictions are NaN"):
        glue_metrics("stsb", [0.1, np.nan, 2.0], [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="shapes"):
        glue_metrics("stsb", np.zeros((2, 2)), [0.0, 1.0])
