"""SQuAD v1.1 and v2.0 scores with the official evaluation scripts' definitions.

Answers are normalised as the scripts do (lower case, drop ASCII punctuation
``string.punctuation``, drop the articles a/an/the as whole words, collapse
whitespace); a question scores the maximum over its gold answers of exact match
and of token-bag F1. Results are percentages under the scripts' keys.

v1.1: every gold answer is used as given; F1 is 0 when prediction and gold
share no token (so "" vs "" has EM 1 but F1 0, as in the script).
v2.0: gold answers that normalise to "" are dropped, and a question left with
none has the single gold answer "" (unanswerable); F1 of an empty against a
non-empty answer is 0, of two empty answers 1. A question counts as answerable
(HasAns) when its raw ``answers`` list is non-empty. With ``na_probs`` (the
model's no-answer probability or score per question), a question whose value
exceeds ``na_prob_thresh`` is scored as if "" was predicted, and the best
threshold is searched exactly like the script's ``find_best_thresh``:
questions sorted by no-answer value (a stable sort in the insertion order of
``na_probs``, so ties keep that order), a running score that starts with every
question predicted unanswerable, and the threshold moved only on a strict
improvement.

Missing predictions: the v1.1 script scores them 0 (with a message); the v2.0
script prints a message, leaves the question out of its overall total and then
fails on a ``KeyError`` in the HasAns/NoAns split. Here both versions score a
missing prediction 0 against the full question count (in the best-threshold
search too), log a warning, and report the count as ``missing``. With every
question predicted, every number equals the scripts'.
"""

from __future__ import annotations

import collections
import logging
import math
import re
import string

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (the scripts' normalisation)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(gold: str, prediction: str) -> int:
    """1 if the normalised texts are equal, else 0."""
    return int(normalize_answer(gold) == normalize_answer(prediction))


def token_f1(gold: str, prediction: str, version: str = "2.0") -> float:
    """Token-bag F1 of the normalised texts; see the module docstring for empty answers."""
    gold_tokens = normalize_answer(gold).split()
    pred_tokens = normalize_answer(prediction).split()
    if version == "2.0" and (not gold_tokens or not pred_tokens):
        return float(gold_tokens == pred_tokens)
    common = sum((collections.Counter(gold_tokens) & collections.Counter(pred_tokens)).values())
    if common == 0:
        return 0.0
    precision = common / len(pred_tokens)
    recall = common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def _questions(dataset) -> list[dict]:
    """The official layout (or its ``data`` list) -> flat list of ``qas`` entries, ids checked."""
    articles = dataset["data"] if isinstance(dataset, dict) else dataset
    if not isinstance(articles, list):
        raise ValueError("dataset must be the SQuAD JSON object (with a 'data' list) or that 'data' list; "
                         f"got {type(dataset).__name__}.")
    questions, seen = [], set()
    for a, article in enumerate(articles):
        for p, paragraph in enumerate(article["paragraphs"]):
            for q, qa in enumerate(paragraph["qas"]):
                if qa["id"] in seen:
                    raise ValueError(f"data[{a}].paragraphs[{p}].qas[{q}]: question id {qa['id']!r} appears twice; "
                                     "ids must be unique for predictions to be matched.")
                seen.add(qa["id"])
                questions.append(qa)
    if not questions:
        raise ValueError("dataset holds no questions; nothing to score.")
    return questions


def squad_evaluate(dataset, predictions: dict, version: str = "1.1", na_probs: dict | None = None,
                   na_prob_thresh: float = 1.0) -> dict:
    """Official SQuAD scores.

    Args:
      dataset: the SQuAD JSON object ``{"data": [...]}`` or its ``data`` list.
      predictions: ``{question id: answer text}`` ("" = no answer, v2.0).
      version: "1.1" or "2.0".
      na_probs: v2.0 only: ``{question id: no-answer probability or score}``;
        None = 0.0 for every question and no best-threshold search (as the script).
      na_prob_thresh: v2.0: questions with ``na_probs`` above it count as answered "".

    Returns:
      v1.1: ``{"exact_match", "f1", "missing"}``; v2.0: ``{"exact", "f1", "total",
      "HasAns_exact", "HasAns_f1", "HasAns_total", "NoAns_exact", "NoAns_f1",
      "NoAns_total", "missing"}`` (a HasAns/NoAns group only when not empty) plus,
      with ``na_probs``, ``"best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh"``.
    """
    version = str(version).lstrip("v")
    if version not in ("1.1", "2.0"):
        raise ValueError(f"version={version!r}: use '1.1' or '2.0'.")
    if version == "1.1" and na_probs is not None:
        raise ValueError("na_probs is a SQuAD v2.0 option; pass version='2.0' or drop na_probs.")
    questions = _questions(dataset)
    missing = [qa["id"] for qa in questions if qa["id"] not in predictions]
    if missing:
        logging.warning("%d of %d questions have no prediction and score 0 (first: %r).",
                        len(missing), len(questions), missing[0])
    if version == "1.1":
        return _evaluate_v1(questions, predictions, len(missing))
    return _evaluate_v2(questions, predictions, na_probs, na_prob_thresh, len(missing))


def _evaluate_v1(questions, predictions, num_missing) -> dict:
    exact_total = f1_total = 0.0
    for qa in questions:
        golds = [answer["text"] for answer in qa["answers"]]
        if not golds:
            raise ValueError(f"question {qa['id']!r} has no gold answer; SQuAD v1.1 needs one. "
                             "Unanswerable questions are scored with version='2.0'.")
        if qa["id"] not in predictions:
            continue
        prediction = predictions[qa["id"]]
        exact_total += max(exact_match(gold, prediction) for gold in golds)
        f1_total += max(token_f1(gold, prediction, version="1.1") for gold in golds)
    total = len(questions)
    return {"exact_match": 100.0 * exact_total / total, "f1": 100.0 * f1_total / total, "missing": num_missing}


def _evaluate_v2(questions, predictions, na_probs, na_prob_thresh, num_missing) -> dict:
    has_answer = {qa["id"]: bool(qa["answers"]) for qa in questions}
    exact_raw, f1_raw = {}, {}
    for qa in questions:
        qid = qa["id"]
        if qid not in predictions:
            continue
        golds = [answer["text"] for answer in qa["answers"] if normalize_answer(answer["text"])] or [""]
        prediction = predictions[qid]
        exact_raw[qid] = max(exact_match(gold, prediction) for gold in golds)
        f1_raw[qid] = max(token_f1(gold, prediction) for gold in golds)
    probs = {qid: 0.0 for qid in predictions} if na_probs is None else na_probs
    absent = [qid for qid in exact_raw if qid not in probs]
    if absent:
        raise ValueError(f"na_probs has no value for {len(absent)} predicted question(s), e.g. {absent[0]!r}; "
                         "give one per prediction (the null_odds file of the same run).")

    def thresholded(raw):
        # Above the threshold the question counts as answered "": right iff unanswerable.
        return {qid: float(not has_answer[qid]) if probs[qid] > na_prob_thresh else score
                for qid, score in raw.items()}

    exact, f1 = thresholded(exact_raw), thresholded(f1_raw)

    def group(qids):
        total = len(qids)
        return {"exact": 100.0 * sum(exact.get(q, 0) for q in qids) / total,
                "f1": 100.0 * sum(f1.get(q, 0) for q in qids) / total, "total": total}

    out = group([qa["id"] for qa in questions])
    for prefix, wanted in (("HasAns", True), ("NoAns", False)):
        qids = [qid for qid, has in has_answer.items() if has == wanted]
        if qids:
            out.update({f"{prefix}_{key}": value for key, value in group(qids).items()})
    out["missing"] = num_missing
    if na_probs is not None:
        total = len(questions)
        out["best_exact"], out["best_exact_thresh"] = _best_threshold(predictions, exact_raw, probs, has_answer, total)
        out["best_f1"], out["best_f1_thresh"] = _best_threshold(predictions, f1_raw, probs, has_answer, total)
    return out


def _best_threshold(predictions, raw, na_probs, has_answer, total) -> tuple[float, float]:
    """The no-answer threshold with the highest score (the v2.0 script's search).

    Starts with every question predicted unanswerable (each unanswerable
    question scores 1), then admits questions in increasing no-answer order:
    an answerable one adds its score, an unanswerable one answered non-empty
    loses its point. Questions absent from ``raw`` (no prediction) are skipped.

    The script's starting threshold, 0.0, stands for "below every value" of its no-answer
    probabilities (>= 0). Null-score differences can be negative, where 0.0 would answer the
    questions whose best the search found unanswered: then it starts just below the lowest, so
    the threshold returned, applied, gives the best score (a value of exactly 0.0 keeps the
    script's start, as its probabilities do).
    """
    score = best = sum(1 for qid in raw if not has_answer[qid])
    lowest = min(na_probs.values(), default=0.0)
    best_thresh = 0.0 if lowest >= 0 else math.nextafter(lowest, -math.inf)
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):
        if qid not in raw:
            continue
        if has_answer[qid]:
            score += raw[qid]
        elif predictions[qid]:
            score -= 1
        if score > best:
            best, best_thresh = score, na_probs[qid]
    return 100.0 * best / total, float(best_thresh)
