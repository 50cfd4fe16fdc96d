"""Entity-level NER scores against seqeval on crafted and random tag sequences."""

import warnings
import zlib

import numpy as np
import pytest

seqeval_metrics = pytest.importorskip("seqeval.metrics")
seqeval_scheme = pytest.importorskip("seqeval.scheme")

from bert_jax.metrics import ner_metrics  # noqa: E402

SCHEMES = {"IOB1": seqeval_scheme.IOB1, "IOB2": seqeval_scheme.IOB2, "IOBES": seqeval_scheme.IOBES}


def reference(y_true, y_pred, scheme, mode):
    kwargs = {} if mode == "default" else dict(mode="strict", scheme=SCHEMES[scheme])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        overall = (seqeval_metrics.precision_score(y_true, y_pred, **kwargs),
                   seqeval_metrics.recall_score(y_true, y_pred, **kwargs),
                   seqeval_metrics.f1_score(y_true, y_pred, **kwargs))
        report = seqeval_metrics.classification_report(y_true, y_pred, output_dict=True, **kwargs)
    per_type = {k: v for k, v in report.items() if not k.endswith(" avg")}
    return overall, per_type, report["micro avg"]["support"]


def assert_same(y_true, y_pred, scheme="IOB2", mode="default"):
    ours = ner_metrics(y_true, y_pred, scheme=scheme, mode=mode)
    (p, r, f), per_type, support = reference(y_true, y_pred, scheme, mode)
    assert (ours["precision"], ours["recall"], ours["f1"]) == pytest.approx((p, r, f), abs=1e-12)
    assert ours["support"] == support
    assert set(ours["per_type"]) == set(per_type)
    for name, row in per_type.items():
        mine = ours["per_type"][name]
        for key in ("precision", "recall", "f1"):
            ref_key = "f1-score" if key == "f1" else key
            assert mine[key] == pytest.approx(row[ref_key], abs=1e-12), (name, key)
        assert mine["support"] == row["support"]
    return ours


GOLD_IOB2 = [["B-PER", "I-PER", "O", "B-LOC", "O"], ["O", "B-ORG", "I-ORG", "I-ORG", "O", "B-PER"]]
CRAFTED_IOB2 = [
    GOLD_IOB2,  # perfect
    [["B-PER", "I-PER", "O", "B-LOC", "O"], ["O", "O", "I-ORG", "I-ORG", "O", "B-PER"]],  # I- without B-
    [["B-PER", "I-LOC", "O", "B-LOC", "O"], ["O", "B-ORG", "I-PER", "I-ORG", "O", "B-PER"]],  # wrong-type continuation
    [["O"] * 5, ["O"] * 6],  # all O
    [["B-MISC", "I-MISC", "O", "B-LOC", "O"], ["O", "B-ORG", "I-ORG", "I-ORG", "O", "B-PER"]],  # type not in gold
    [["B-PER", "B-PER", "O", "B-LOC", "I-LOC"], ["B-ORG", "I-ORG", "I-ORG", "I-ORG", "I-ORG", "I-PER"]],  # cut/extended
]


@pytest.mark.parametrize("mode", ["default", "strict"])
@pytest.mark.parametrize("pred", CRAFTED_IOB2)
def test_crafted_iob2(pred, mode):
    assert_same(GOLD_IOB2, pred, "IOB2", mode)


def test_dangling_inside_tag_differs_between_modes():
    gold = [["O", "B-ORG", "I-ORG", "O"]]
    pred = [["O", "I-ORG", "I-ORG", "O"]]
    # conlleval reads the dangling I-ORG run as an entity (right); strict IOB2 finds none.
    assert assert_same(gold, pred, mode="default")["f1"] == 1.0
    assert assert_same(gold, pred, mode="strict")["f1"] == 0.0


def test_all_o_and_empty_gold_are_zero():
    out = assert_same([["O", "O"]], [["O", "O"]])
    assert out == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0, "per_type": {}}
    out = assert_same([["B-PER", "O"]], [["O", "O"]], mode="strict")
    assert out["f1"] == 0.0 and out["per_type"]["PER"]["support"] == 1


def test_type_never_in_gold_has_zero_support():
    out = assert_same([["B-PER", "O"]], [["B-PER", "B-DATE"]])
    assert out["per_type"]["DATE"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert out["precision"] == 0.5 and out["recall"] == 1.0


IOB1_GOLD = [["I-PER", "I-PER", "B-PER", "O", "I-LOC"], ["I-ORG", "I-LOC", "O", "I-MISC", "I-MISC"]]
IOB1_PREDS = [
    IOB1_GOLD,
    [["I-PER", "I-PER", "I-PER", "O", "I-LOC"], ["I-ORG", "I-ORG", "O", "B-MISC", "I-MISC"]],
    [["B-PER", "I-PER", "B-PER", "O", "B-LOC"], ["O", "I-LOC", "O", "I-MISC", "B-MISC"]],
    [["O"] * 5, ["O"] * 5],
]


@pytest.mark.parametrize("mode", ["default", "strict"])
@pytest.mark.parametrize("pred", IOB1_PREDS)
def test_crafted_iob1(pred, mode):
    assert_same(IOB1_GOLD, pred, "IOB1", mode)


IOBES_GOLD = [["S-PER", "O", "B-LOC", "I-LOC", "E-LOC"], ["B-ORG", "E-ORG", "S-ORG", "O", "S-MISC"]]
IOBES_PREDS = [
    IOBES_GOLD,
    [["S-PER", "O", "B-LOC", "I-LOC", "I-LOC"], ["B-ORG", "E-ORG", "B-ORG", "O", "S-MISC"]],  # missing E-
    [["B-PER", "O", "I-LOC", "I-LOC", "E-LOC"], ["B-ORG", "I-ORG", "E-ORG", "O", "E-MISC"]],
    [["S-PER", "O", "B-LOC", "E-PER", "E-LOC"], ["S-ORG", "E-ORG", "S-ORG", "O", "S-LOC"]],
    [["O"] * 5, ["O"] * 5],
]


@pytest.mark.parametrize("mode", ["default", "strict"])
@pytest.mark.parametrize("pred", IOBES_PREDS)
def test_crafted_iobes(pred, mode):
    assert_same(IOBES_GOLD, pred, "IOBES", mode)


@pytest.mark.parametrize("scheme,prefixes", [("IOB2", "BIO"), ("IOB1", "BIO"), ("IOBES", "BIOES")])
@pytest.mark.parametrize("mode", ["default", "strict"])
def test_random_sequences(scheme, prefixes, mode):
    rng = np.random.default_rng(zlib.crc32(f"{scheme}:{mode}".encode()))
    types = ["PER", "LOC", "ORG"]

    def random_tags(n):
        return [("O" if p == "O" else f"{p}-{rng.choice(types)}") for p in rng.choice(list(prefixes), size=n)]

    for _ in range(200):
        lengths = rng.integers(1, 12, size=int(rng.integers(1, 5)))
        gold = [random_tags(n) for n in lengths]
        # Predictions: the gold with a fraction of tags replaced, so some entities match.
        noise = rng.uniform(0, 0.6)
        pred = [[t if rng.random() > noise else random_tags(1)[0] for t in seq] for seq in gold]
        assert_same(gold, pred, scheme, mode)


def test_errors():
    with pytest.raises(ValueError, match="sentence 1: y_true has 2 tags but y_pred has 3"):
        ner_metrics([["O"], ["O", "O"]], [["O"], ["O", "O", "O"]])
    with pytest.raises(ValueError, match="2 sentences but y_pred has 1"):
        ner_metrics([["O"], ["O"]], [["O"]])
    with pytest.raises(ValueError, match="no sentences"):
        ner_metrics([], [])
    with pytest.raises(ValueError, match=r"sentence 0, position 1: tag 'E-PER'.*IOB2"):
        ner_metrics([["B-PER", "E-PER"]], [["O", "O"]], scheme="IOB2", mode="strict")
    with pytest.raises(ValueError, match=r"y_pred\[0\]\[0\] is 3"):
        ner_metrics([["O"]], [[3]])
    with pytest.raises(ValueError, match="scheme='BILOU'"):
        ner_metrics([["O"]], [["O"]], scheme="BILOU")
