"""SQuAD post-processing: window logits -> answer text per question, n-best lists,
no-answer odds, and the prediction files. No JAX here.

For each question, over all its windows: the ``n_best_size`` highest start and
end logits of each window are paired; a pair is kept when both tokens are in
the context, end >= start, it spans at most ``max_answer_length`` tokens and
the start token has its max context in that window. The answer text is the
context's characters from the start token's first to the end token's last
character, so spacing, accents and punctuation are the original's.

v2.0: the null score is the minimum over windows of ``start[CLS] + end[CLS]``;
the question is predicted unanswerable ("") when ``null score - best span
score > null_score_diff_threshold``; ``null_odds`` holds that difference
(+inf when no span is valid in any window).

Deterministic and independent of window order or of how windows were split
into batches: windows are put in context order (``window_start``), top-k
picks break ties by lower index, and candidates by (window, start, end).
Rows with ``example_index < 0`` (batch padding) are ignored.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass

import numpy as np


@dataclass
class SquadPredictions:
    """``predictions {qid: text}``, ``nbest {qid: [{"text", "probability", "start_logit",
    "end_logit"}]}`` and, for v2.0, ``null_odds {qid: null score - best span score}``."""

    predictions: dict[str, str]
    nbest: dict[str, list[dict]]
    null_odds: dict[str, float] | None = None


def _top(values: np.ndarray, k: int) -> np.ndarray:
    # Stable sort of the negated logits: equal logits keep index order.
    return np.argsort(-values, kind="stable")[:k]


def postprocess_squad(examples, features, start_logits, end_logits, *, version_2: bool = False,
                      n_best_size: int = 20, max_answer_length: int = 30,
                      null_score_diff_threshold: float = 0.0) -> SquadPredictions:
    """Answer text per question from the windows' logits.

    Args:
      examples: the ``SquadExample`` list the features were built from.
      features: ``SquadFeatures`` (only ``example_index``, ``context_offsets``,
        ``max_context`` and ``window_start`` are read), any window order.
      start_logits, end_logits: ``[num_windows, max_seq_length]``, rows matching ``features``.
      version_2: allow "no answer" (SQuAD v2.0).
      n_best_size: candidates per window and side, and the n-best list length.
      max_answer_length: longest answer in tokens.
      null_score_diff_threshold: v2.0 threshold on null score - best span score.
    """
    start_logits = np.asarray(start_logits, dtype=np.float64)
    end_logits = np.asarray(end_logits, dtype=np.float64)
    shape = features.context_offsets.shape[:2]
    if start_logits.shape != shape or end_logits.shape != shape:
        raise ValueError(f"start_logits {start_logits.shape} and end_logits {end_logits.shape} must both be "
                         f"[num_windows, max_seq_length] = {shape}, one row per feature window.")
    example_index = np.asarray(features.example_index)
    if example_index.size and example_index.max() >= len(examples):
        raise ValueError(f"features refer to example {int(example_index.max())} but only {len(examples)} "
                         "examples were given; pass the examples the features were built from.")
    valid = np.flatnonzero(example_index >= 0)
    # Windows of one example together, in context order.
    order = valid[np.lexsort((features.window_start[valid], example_index[valid]))]
    result = SquadPredictions({}, {}, {} if version_2 else None)
    groups = np.split(order, np.flatnonzero(np.diff(example_index[order])) + 1) if len(order) else []
    no_span = 0
    for windows in groups:
        example = examples[int(example_index[windows[0]])]
        found = _predict_one(example, windows, features, start_logits, end_logits, version_2, n_best_size,
                             max_answer_length, null_score_diff_threshold, result)
        no_span += not found
    missing = len(examples) - len(groups)
    if missing:
        logging.warning("%d of %d questions have no window among the features; they get no prediction.",
                        missing, len(examples))
    if no_span:
        logging.warning("%d question(s) had no valid answer span in any window; predicted \"\".", no_span)
    return result


def _predict_one(example, windows, features, start_logits, end_logits, version_2, n_best_size,
                 max_answer_length, threshold, result) -> bool:
    candidates = []  # (score, window_start, start, end, text, start_logit, end_logit)
    null = None  # (score, start_logit, end_logit)
    for w in windows:
        s_logits, e_logits = start_logits[w], end_logits[w]
        offsets, max_context = features.context_offsets[w], features.max_context[w]
        if version_2:
            score = s_logits[0] + e_logits[0]
            if null is None or score < null[0]:
                null = (score, s_logits[0], e_logits[0])
        for i in _top(s_logits, n_best_size):
            if offsets[i, 0] < 0 or not max_context[i]:
                continue
            for j in _top(e_logits, n_best_size):
                if offsets[j, 0] < 0 or j < i or j - i + 1 > max_answer_length:
                    continue
                text = example.context[offsets[i, 0]:offsets[j, 1]]
                candidates.append((s_logits[i] + e_logits[j], int(features.window_start[w]), int(i), int(j),
                                   text, s_logits[i], e_logits[j]))
    candidates.sort(key=lambda c: (-c[0], c[1], c[2], c[3]))
    nbest, seen = [], set()
    null_in_order = version_2
    for candidate in candidates:
        if len(nbest) >= n_best_size:
            break
        if null_in_order and null[0] > candidate[0]:
            # The null answer ranks above this span (spans win ties, as they sort first).
            nbest.append({"text": "", "start_logit": float(null[1]), "end_logit": float(null[2])})
            seen.add("")
            null_in_order = False
            if len(nbest) >= n_best_size:
                break
        if candidate[4] in seen:
            continue
        seen.add(candidate[4])
        nbest.append({"text": candidate[4], "start_logit": float(candidate[5]), "end_logit": float(candidate[6])})
    if version_2 and "" not in seen:
        nbest.append({"text": "", "start_logit": float(null[1]), "end_logit": float(null[2])})
    found = any(entry["text"] for entry in nbest)
    if not nbest:  # v1.1 with no valid span anywhere
        nbest.append({"text": "", "start_logit": 0.0, "end_logit": 0.0})
    totals = np.array([entry["start_logit"] + entry["end_logit"] for entry in nbest])
    probs = np.exp(totals - totals.max())
    probs /= probs.sum()
    result.nbest[example.qid] = [
        {"text": e["text"], "probability": float(p), "start_logit": e["start_logit"], "end_logit": e["end_logit"]}
        for e, p in zip(nbest, probs)]
    if not version_2:
        result.predictions[example.qid] = nbest[0]["text"]
        return found
    best = next((e for e in nbest if e["text"]), None)
    diff = math.inf if best is None else float(null[0]) - best["start_logit"] - best["end_logit"]
    result.null_odds[example.qid] = diff
    result.predictions[example.qid] = "" if best is None or diff > threshold else best["text"]
    return found


def write_json_atomic(path: str, obj) -> None:
    """Writes ``obj`` as JSON to ``path`` through a temporary file and a rename (readers never see
    a half-written file)."""
    from data_pipeline.shards import atomic_write_bytes
    atomic_write_bytes(path, json.dumps(obj, ensure_ascii=False, indent=2).encode("utf-8"))


def write_squad_predictions(output_dir: str, result: SquadPredictions) -> dict[str, str]:
    """Writes ``predictions.json``, ``nbest_predictions.json`` and (v2.0) ``null_odds.json``.

    Each file is written to a temporary name and renamed into place. A +inf
    null odd (no valid span) is written as JSON ``Infinity``, which Python's
    ``json`` and the official v2.0 script read back. Returns ``{name: path}``.
    """
    os.makedirs(output_dir, exist_ok=True)
    files = {"predictions": result.predictions, "nbest_predictions": result.nbest}
    if result.null_odds is not None:
        files["null_odds"] = result.null_odds
    paths = {}
    for name, obj in files.items():
        paths[name] = os.path.join(output_dir, f"{name}.json")
        write_json_atomic(paths[name], obj)
    return paths
