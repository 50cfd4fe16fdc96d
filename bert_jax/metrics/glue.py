"""GLUE scores, as the benchmark defines them, in plain numpy (no JAX, no sklearn).

Per task: CoLA -> Matthews correlation (``mcc``); SST-2, MNLI (matched,
mismatched, the AX diagnostic), QNLI, RTE, WNLI -> ``accuracy``; MRPC, QQP ->
``f1`` of the positive class (label 1) and ``accuracy``; STS-B -> ``pearson``
and ``spearmanr``. Tasks with two scores also get ``combined_score``, their
mean, which is the number GLUE puts in its per-task column (and what Hugging
Face's ``run_glue`` logs under that name).

The values equal ``sklearn.metrics.matthews_corrcoef / f1_score /
accuracy_score`` and ``scipy.stats.pearsonr / spearmanr`` (tested to 1e-12).
Where those are undefined the value here is still a number:

  * MCC with a constant prediction or constant labels: 0.0 (sklearn returns
    0.0 too);
  * F1 with no positive label and no positive prediction: 0.0 (sklearn's
    ``zero_division`` default gives 0.0 with a warning);
  * Pearson / Spearman when either side is constant (or has one element):
    scipy returns NaN with a ``ConstantInputWarning`` (and raises for one
    element); here the correlation is defined as 0.0 -- a constant
    regressor carries no information about the ranking or the trend, and a
    NaN would poison the averages a GLUE score is made of.

Empty inputs, length mismatches and non-finite STS-B predictions raise ``ValueError``.
"""

from __future__ import annotations

import math

import numpy as np

# canonical task -> metric kind
_TASKS = {
    "cola": "mcc",
    "sst2": "accuracy",
    "mnli": "accuracy",
    "mnli_matched": "accuracy",
    "mnli_mismatched": "accuracy",
    "ax": "accuracy",
    "qnli": "accuracy",
    "rte": "accuracy",
    "wnli": "accuracy",
    "mrpc": "f1_accuracy",
    "qqp": "f1_accuracy",
    "stsb": "correlation",
}
# key with "-", "_" and case removed -> canonical task
_ALIASES = {name.replace("_", ""): name for name in _TASKS}
_ALIASES.update({"mnlim": "mnli_matched", "mnlimm": "mnli_mismatched", "sts": "stsb"})


def canonical_task(task: str) -> str:
    """GLUE task name in any usual spelling (``SST-2``, ``sst2``, ``MNLI-mm``) -> canonical key."""
    key = str(task).lower().replace("-", "").replace("_", "").replace(" ", "")
    if key not in _ALIASES:
        raise ValueError(
            f"Unknown GLUE task {task!r}. Valid names: {', '.join(_TASKS)} "
            "(case-insensitive; dashes optional, e.g. 'SST-2', 'STS-B', 'MNLI-m', 'MNLI-mm')."
        )
    return _ALIASES[key]


def glue_metrics(task: str, predictions, labels) -> dict[str, float]:
    """Scores of one GLUE task.

    Args:
      task: task name, e.g. ``"CoLA"``, ``"sst2"``, ``"STS-B"``, ``"MNLI-mm"``.
      predictions: ``[n]`` predicted labels (regression scores for STS-B), or
        ``[n, num_classes]`` logits/probabilities for a classification task
        (the argmax is taken).
      labels: ``[n]`` gold labels (gold similarity scores for STS-B).

    Returns:
      ``{"mcc"}``, ``{"accuracy"}``, ``{"f1", "accuracy", "combined_score"}`` or
      ``{"pearson", "spearmanr", "combined_score"}`` as Python floats.
    """
    name = canonical_task(task)
    kind = _TASKS[name]
    predictions = np.asarray(predictions)
    labels = np.asarray(labels)
    if kind != "correlation" and predictions.ndim == 2:
        predictions = predictions.argmax(axis=-1)
    if predictions.ndim != 1 or labels.ndim != 1:
        raise ValueError(
            f"GLUE task {name!r}: predictions must be [n] (or [n, num_classes] logits) and labels [n]; "
            f"got shapes {predictions.shape} and {labels.shape}."
        )
    if len(predictions) != len(labels):
        raise ValueError(
            f"GLUE task {name!r}: {len(predictions)} predictions but {len(labels)} labels; "
            "they must be the same examples in the same order."
        )
    if len(labels) == 0:
        raise ValueError(f"GLUE task {name!r}: no examples to score (empty predictions and labels).")
    if kind == "correlation":
        bad = int(np.sum(~np.isfinite(predictions.astype(np.float64))))
        if bad:
            raise ValueError(f"GLUE task {name!r}: {bad} of {len(predictions)} predictions are NaN or infinite; "
                             "the regression head diverged -- check the run's loss before scoring.")
    if kind == "mcc":
        return {"mcc": matthews_corrcoef(labels, predictions)}
    if kind == "accuracy":
        return {"accuracy": accuracy(labels, predictions)}
    if kind == "f1_accuracy":
        f1, acc = binary_f1(labels, predictions), accuracy(labels, predictions)
        return {"f1": f1, "accuracy": acc, "combined_score": (f1 + acc) / 2}
    pearson = pearson_corr(predictions, labels)
    spearman = spearman_corr(predictions, labels)
    return {"pearson": pearson, "spearmanr": spearman, "combined_score": (pearson + spearman) / 2}


def accuracy(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Fraction of ``[n]`` predictions equal to the labels."""
    return float(np.mean(labels == predictions))


def binary_f1(labels: np.ndarray, predictions: np.ndarray, positive=1) -> float:
    """F1 of class ``positive``; 0.0 when it is neither predicted nor present."""
    true_pos = int(np.sum((predictions == positive) & (labels == positive)))
    pred_pos = int(np.sum(predictions == positive))
    gold_pos = int(np.sum(labels == positive))
    if pred_pos + gold_pos == 0:
        return 0.0
    return 2.0 * true_pos / (pred_pos + gold_pos)


def matthews_corrcoef(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Multi-class Matthews correlation from the confusion matrix (sklearn's formula).

    0.0 when labels or predictions take a single value (the denominator vanishes).
    """
    classes, inverse = np.unique(np.concatenate([labels, predictions]), return_inverse=True)
    n = len(labels)
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(confusion, (inverse[:n], inverse[n:]), 1)
    # Python ints: exact, and no int64 overflow of n**2 on large sets.
    t_sum = [int(v) for v in confusion.sum(axis=1)]
    p_sum = [int(v) for v in confusion.sum(axis=0)]
    correct = int(np.trace(confusion))
    cov_tp = correct * n - sum(t * p for t, p in zip(t_sum, p_sum))
    cov_pp = n * n - sum(p * p for p in p_sum)
    cov_tt = n * n - sum(t * t for t in t_sum)
    if cov_pp * cov_tt == 0:
        return 0.0
    return float(cov_tp / math.sqrt(cov_pp * cov_tt))


def pearson_corr(x, y) -> float:
    """Pearson correlation of ``[n]`` x and y; 0.0 if either is constant or n < 2."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    # Exactly-constant input is checked on the raw values, so float noise in
    # the mean cannot make it look non-constant.
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return 0.0
    xm = x - x.mean()
    ym = y - y.mean()
    # Scale by the largest deviation first so tiny (1e-300) or huge values
    # neither underflow nor overflow when squared in the norm.
    x_scale, y_scale = np.max(np.abs(xm)), np.max(np.abs(ym))
    if x_scale == 0 or y_scale == 0:
        return 0.0
    xm, ym = xm / x_scale, ym / y_scale
    x_norm = np.linalg.norm(xm)
    y_norm = np.linalg.norm(ym)
    r = float(np.dot(xm / x_norm, ym / y_norm))
    return max(-1.0, min(1.0, r))


def rank_average(values) -> np.ndarray:
    """1-based ranks of ``[n]`` values, ties sharing their mean rank (scipy's ``rankdata``)."""
    values = np.asarray(values)
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # Boundaries of runs of equal values.
    new_run = np.concatenate([[True], sorted_values[1:] != sorted_values[:-1]])
    run_id = np.cumsum(new_run) - 1
    starts = np.flatnonzero(new_run)
    ends = np.concatenate([starts[1:], [len(values)]])
    mean_rank = (starts + 1 + ends) / 2.0  # mean of ranks start+1 .. end
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = mean_rank[run_id]
    return ranks


def spearman_corr(x, y) -> float:
    """Spearman rank correlation (Pearson of tie-averaged ranks); 0.0 if either is constant."""
    return pearson_corr(rank_average(x), rank_average(y))
