"""Entity-level NER scores (CoNLL style), equal to ``seqeval.metrics``.

An entity is a ``(sentence, type, start, end)`` span; a predicted entity is
right only when type and both boundaries match a gold one. Precision, recall
and F1 are micro-averaged over entities; each type also gets its own row.
Zero divisions give 0.0, as seqeval's default ``zero_division`` does (which
also warns): precision with no predicted entity, recall with no gold entity,
F1 when precision + recall is 0 -- so all-``O`` predictions score 0.0.

Two ways to read entities from tags:

  * ``mode="default"``: seqeval's ``get_entities`` (the conlleval.pl rules).
    Lenient: an ``I-X`` after ``O`` or after another type starts an entity,
    and the same rules read IOB1, IOB2 and IOBES, so ``scheme`` plays no part.
  * ``mode="strict"``: seqeval's ``mode="strict"`` with ``scheme`` one of
    IOB1 / IOB2 / IOBES. An entity counts only if it starts, continues and
    ends exactly as the scheme allows (e.g. IOB2: ``B-X`` then ``I-X``s; a
    dangling ``I-X`` is no entity); a prefix the scheme does not allow (``E-``
    under IOB2) is an error naming the sentence and position.

Tags are ``<prefix>-<type>`` (``B-PER``) or ``O``; as in seqeval the prefix is
the first character.
"""

from __future__ import annotations

import logging
from collections import defaultdict

_SCHEMES = ("IOB1", "IOB2", "IOBES")
_MODES = ("default", "strict")

# ---- default mode: seqeval.get_entities (conlleval) -------------------------------------


def _chunk_end(prev_tag, tag, prev_type, type_) -> bool:
    """Whether an entity ended between the previous and the current token."""
    if prev_tag in ("E", "S"):
        return True
    if prev_tag in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return prev_tag not in ("O", ".") and prev_type != type_


def _chunk_start(prev_tag, tag, prev_type, type_) -> bool:
    """Whether an entity starts at the current token."""
    if tag in ("B", "S"):
        return True
    if prev_tag in ("E", "S", "O") and tag in ("E", "I"):
        return True
    return tag not in ("O", ".") and prev_type != type_


def conll_entities(tags: list[str]) -> list[tuple[str, int, int]]:
    """One sentence's tags -> ``[(type, start, end)]`` with ``end`` inclusive (conlleval rules)."""
    prev_tag, prev_type, begin = "O", "", 0
    chunks = []
    for i, label in enumerate([*tags, "O"]):
        tag = label[0]
        type_ = label[1:].split("-", maxsplit=1)[-1] or "_"
        if _chunk_end(prev_tag, tag, prev_type, type_):
            chunks.append((prev_type, begin, i - 1))
        if _chunk_start(prev_tag, tag, prev_type, type_):
            begin = i
        prev_tag, prev_type = tag, type_
    return chunks


# ---- strict mode: seqeval.scheme.Tokens ------------------------------------------------

_ANY = "IOBES"
# (previous prefixes, current prefixes, type condition) for each scheme, as seqeval.scheme.
_PATTERNS = {
    "IOB1": dict(
        allowed="IOB",
        start=[("O", "I", "any"), ("I", "I", "diff"), ("B", "I", "any"), ("I", "B", "same"), ("B", "B", "same")],
        inside=[("B", "I", "same"), ("I", "I", "same")],
        end=[("I", "I", "diff"), ("I", "O", "any"), ("I", "B", "any"), ("B", "O", "any"), ("B", "I", "diff"),
             ("B", "B", "same")],
    ),
    "IOB2": dict(
        allowed="IOB",
        start=[(_ANY, "B", "any")],
        inside=[("B", "I", "same"), ("I", "I", "same")],
        end=[("I", "O", "any"), ("I", "I", "diff"), ("I", "B", "any"), ("B", "O", "any"), ("B", "I", "diff"),
             ("B", "B", "any")],
    ),
    "IOBES": dict(
        allowed="IOBES",
        start=[(_ANY, "B", "any"), (_ANY, "S", "any")],
        inside=[("B", "I", "same"), ("B", "E", "same"), ("I", "I", "same"), ("I", "E", "same")],
        end=[("S", _ANY, "any"), ("E", _ANY, "any")],
    ),
}


def _matches(patterns, prev, cur) -> bool:
    for prev_prefixes, cur_prefixes, condition in patterns:
        if prev[0] in prev_prefixes and cur[0] in cur_prefixes:
            if condition == "any" or (condition == "same") == (prev[1] == cur[1]):
                return True
    return False


def strict_entities(tags: list[str], scheme: str, sentence: int = 0) -> list[tuple[str, int, int]]:
    """One sentence's tags -> ``[(type, start, end)]`` with ``end`` exclusive (strict rules)."""
    rules = _PATTERNS[scheme]
    tokens = []
    for position, label in enumerate(tags):
        if not label or label[0] not in rules["allowed"]:
            raise ValueError(
                f"sentence {sentence}, position {position}: tag {label!r} has a prefix {scheme} does not allow "
                f"(allowed: {', '.join(rules['allowed'])}). Pass the scheme the tags are written in, "
                "or mode='default'."
            )
        tokens.append((label[0], label[1:].strip("-") or "_"))
    outside = ("O", "_")
    tokens.append(outside)
    entities, prev, i = [], outside, 0
    while i < len(tokens):
        token = tokens[i]
        if _matches(rules["start"], prev, token):
            # Extend while each token continues the entity.
            end, inner = len(tokens) - 1, token
            for j in range(i + 1, len(tokens)):
                if _matches(rules["inside"], inner, tokens[j]):
                    inner = tokens[j]
                else:
                    end = j
                    break
            if _matches(rules["end"], tokens[end - 1], tokens[end]):
                entities.append((token[1], i, end))
            i = end
        else:
            i += 1
        prev = tokens[i - 1]
    return entities


# ---- scores ----------------------------------------------------------------------------------


def _check(y_true, y_pred) -> tuple[list[list[str]], list[list[str]]]:
    y_true = [list(s) for s in y_true]
    y_pred = [list(s) for s in y_pred]
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} sentences but y_pred has {len(y_pred)}.")
    if not y_true:
        raise ValueError("no sentences to score (y_true and y_pred are empty).")
    for i, (gold, pred) in enumerate(zip(y_true, y_pred)):
        if len(gold) != len(pred):
            raise ValueError(f"sentence {i}: y_true has {len(gold)} tags but y_pred has {len(pred)}; "
                             "predict one tag per gold tag (drop sub-word and padding positions first).")
        for where, seq in (("y_true", gold), ("y_pred", pred)):
            for j, tag in enumerate(seq):
                if not isinstance(tag, str) or not tag:
                    raise ValueError(f"{where}[{i}][{j}] is {tag!r}; tags are non-empty strings like 'B-PER' or 'O' "
                                     "(map label ids to names first).")
    return y_true, y_pred


def _warn_non_tags(sequences) -> None:
    # seqeval warns too: a label like "PER" is read by its first character.
    for i, seq in enumerate(sequences):
        for j, tag in enumerate(seq):
            if tag not in ("O", "B", "I", "E", "S") and not tag.startswith(("B-", "I-", "E-", "S-")):
                logging.warning("tag %r (sentence %d, position %d) is not of the form B-/I-/E-/S-<type> or O; "
                                "it is read by its first character.", tag, i, j)
                return


def _prf(correct: int, predicted: int, gold: int) -> tuple[float, float, float]:
    precision = correct / predicted if predicted else 0.0
    recall = correct / gold if gold else 0.0
    denominator = precision + recall
    # Same operation order as seqeval, so values agree to the last bit.
    f1 = 2.0 * precision * recall / denominator if denominator else 0.0
    return precision, recall, f1


def ner_metrics(y_true, y_pred, scheme: str = "IOB2", mode: str = "default") -> dict:
    """Entity-level precision / recall / F1, overall and per entity type.

    Args:
      y_true: gold tags, one list per sentence, e.g. ``[["B-PER", "I-PER", "O"], ...]``.
      y_pred: predicted tags, same shape.
      scheme: "IOB1", "IOB2" or "IOBES"; used by ``mode="strict"`` only.
      mode: "default" (conlleval rules) or "strict".

    Returns:
      ``{"precision", "recall", "f1", "support", "per_type": {type: {"precision",
      "recall", "f1", "support"}}}``; ``support`` = number of gold entities; types
      are those found in gold or predictions, sorted.
    """
    scheme = str(scheme).upper()
    if scheme not in _SCHEMES:
        raise ValueError(f"scheme={scheme!r}: use one of {', '.join(_SCHEMES)}.")
    if mode not in _MODES:
        raise ValueError(f"mode={mode!r}: use 'default' or 'strict'.")
    y_true, y_pred = _check(y_true, y_pred)
    if mode == "default":
        _warn_non_tags(y_true)
        _warn_non_tags(y_pred)
        extract = lambda tags, sentence: conll_entities(tags)  # noqa: E731
    else:
        extract = lambda tags, sentence: strict_entities(tags, scheme, sentence)  # noqa: E731
    gold, pred = defaultdict(set), defaultdict(set)
    for sentence, (gold_tags, pred_tags) in enumerate(zip(y_true, y_pred)):
        for type_, start, end in extract(gold_tags, sentence):
            gold[type_].add((sentence, start, end))
        for type_, start, end in extract(pred_tags, sentence):
            pred[type_].add((sentence, start, end))
    per_type, totals = {}, [0, 0, 0]
    for type_ in sorted(set(gold) | set(pred)):
        counts = (len(gold[type_] & pred[type_]), len(pred[type_]), len(gold[type_]))
        precision, recall, f1 = _prf(*counts)
        per_type[type_] = {"precision": precision, "recall": recall, "f1": f1, "support": counts[2]}
        totals = [t + c for t, c in zip(totals, counts)]
    precision, recall, f1 = _prf(*totals)
    return {"precision": precision, "recall": recall, "f1": f1, "support": totals[2], "per_type": per_type}
