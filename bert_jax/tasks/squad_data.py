"""SQuAD data: reading the official JSON layout and turning questions into windows.

Reading (``read_squad_file``, ``parse_squad``, ``load_squad_dataset``) checks
every question: an empty context, an answer whose ``answer_start`` does not
point at its text, an empty answer, or an ``is_impossible`` question with
answers is an error naming the question, or, with ``allow_skips=True``, a
skip counted by reason in ``SquadData.skipped`` (and logged); nothing is
dropped silently.

Features (``squad_features``) follow BERT's recipe on the fast tokenizer:
the question is cut to ``max_query_length`` tokens, then question + context
are encoded as a pair with ``truncation="only_second"``, ``stride`` and
``return_overflowing_tokens``, which ``BertTokenizerFast`` supports (each
overflow window is a row, ``overflow_to_sample_mapping`` names its example).
``doc_stride`` is therefore the number of context tokens consecutive windows
share (Hugging Face's meaning), not the step between window starts (the
original BERT script's meaning). Each window records its context-token
offsets (-1 on question, special and padding tokens) and which of its tokens
have "max context" (BERT's ``_check_is_max_context``: over the windows
holding a token, the one maximising ``min(left, right context) + 0.01 *
window length``, the first on ties). No JAX here.
"""

from __future__ import annotations

import json
import logging
import shlex
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

SKIP_REASONS = ("empty_context", "answer_mismatch", "empty_answer", "impossible_with_answer")
_ENCODE_BATCH = 256  # examples per tokenizer call: bounds memory of the Python-side offsets lists


@dataclass(frozen=True)
class SquadExample:
    """One question. ``answers``: ``((text, answer_start), ...)``; empty when unanswerable."""

    qid: str
    question: str
    context: str
    answers: tuple[tuple[str, int], ...]
    is_impossible: bool
    title: str = ""


@dataclass
class SquadData:
    """Parsed questions, the counted skips, and the raw ``data`` list (for ``squad_evaluate``)."""

    examples: list[SquadExample]
    skipped: dict[str, int]
    dataset: list
    source: str = ""

    @property
    def version(self) -> str:
        """"2.0" when any question is unanswerable, else "1.1"."""
        return "2.0" if any(e.is_impossible for e in self.examples) else "1.1"


def read_squad_file(path: str, allow_skips: bool = False, require_answers: bool = True,
                    config_key: str = "") -> SquadData:
    """Reads a SQuAD v1.1 / v2.0 JSON file (see ``parse_squad``); ``config_key`` (``"train_file"``
    ...) is the config field that named it, for the advice of a refusal."""
    try:  # utf-8-sig: a byte-order mark (as some Windows editors save) is not an error
        with open(path, encoding="utf-8-sig") as f:
            text = f.read()
    except UnicodeDecodeError as error:
        fixed = shlex.quote(f"{path}.utf8")
        then = f", then pass --config.data.{config_key}={fixed}" if config_key else ""
        raise ValueError(f"{path}: not UTF-8 text (byte {error.start}: {error.reason}); SQuAD files are UTF-8 "
                         f"JSON: convert it, e.g. iconv -f UTF-16 -t UTF-8 {shlex.quote(path)} > {fixed} "
                         f"(with its own encoding after -f){then}.") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON at line {error.lineno}, column {error.colno} "
                         f"(character {error.pos}): {error.msg}.") from None
    return parse_squad(obj, source=path, allow_skips=allow_skips, require_answers=require_answers)


def _field(obj, key, where, source, kind):
    if not isinstance(obj, dict) or key not in obj:
        raise ValueError(f"{source}: {where} has no {key!r} field; the SQuAD layout is "
                         '{"data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question", "answers"}]}]}]}.')
    value = obj[key]
    if not isinstance(value, kind):
        expected = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise ValueError(f"{source}: {where}.{key} is {type(value).__name__}, expected {expected}.")
    return value


def parse_squad(obj, source: str = "<data>", allow_skips: bool = False, require_answers: bool = True) -> SquadData:
    """The official layout (``{"data": [...]}`` or the ``data`` list) -> ``SquadData``.

    ``require_answers=False`` reads files to predict on, whose questions may lack the
    ``answers`` field (read as an empty list).

    Raises ValueError naming ``source`` and the question id on the first bad
    question, unless ``allow_skips`` (then bad questions are counted by reason).
    """
    articles = obj if isinstance(obj, list) else _field(obj, "data", "the top level", source, list)
    examples, skipped, seen = [], Counter(), set()

    def reject(reason, qid, message):
        if not allow_skips:
            raise ValueError(f"{source}: question {qid!r}: {message} "
                             "(--config.data.allow_skips=True, or allow_skips=True in Python, skips and counts "
                             "such questions).")
        skipped[reason] += 1

    for a, article in enumerate(articles):
        title = article.get("title", "") if isinstance(article, dict) else ""
        for p, paragraph in enumerate(_field(article, "paragraphs", f"data[{a}]", source, list)):
            where = f"data[{a}].paragraphs[{p}]"
            context = _field(paragraph, "context", where, source, str)
            for q, qa in enumerate(_field(paragraph, "qas", where, source, list)):
                qwhere = f"{where}.qas[{q}]"
                qid = str(_field(qa, "id", qwhere, source, (str, int)))
                if qid in seen:
                    raise ValueError(f"{source}: {qwhere}: question id {qid!r} appears twice; ids must be unique.")
                seen.add(qid)
                question = _field(qa, "question", qwhere, source, str)
                raw_answers = (_field(qa, "answers", qwhere, source, list)
                               if require_answers or "answers" in qa else [])
                answers = []
                for k, answer in enumerate(raw_answers):
                    text = _field(answer, "text", f"{qwhere}.answers[{k}]", source, str)
                    start = _field(answer, "answer_start", f"{qwhere}.answers[{k}]", source, int)
                    answers.append((text, start))
                impossible = bool(qa.get("is_impossible", False))
                if not context.strip():
                    reject("empty_context", qid, f"the context ({where}) is empty")
                elif impossible and answers:
                    reject("impossible_with_answer", qid, "is_impossible is true but it has answers")
                elif any(not text.strip() for text, _ in answers):
                    reject("empty_answer", qid, "an answer text is empty")
                elif any(context[s:s + len(t)] != t for t, s in answers):
                    t, s = next((t, s) for t, s in answers if context[s:s + len(t)] != t)
                    reject("answer_mismatch", qid, f"answer {t!r} is not at answer_start {s} of the context "
                                                   f"(found {context[s:s + len(t)]!r})")
                else:
                    examples.append(SquadExample(qid, question, context, tuple(answers),
                                                 impossible or not answers, title))
    if skipped:
        logging.warning("%s: skipped %d question(s): %s", source, sum(skipped.values()), dict(skipped))
    return SquadData(examples, {reason: skipped.get(reason, 0) for reason in SKIP_REASONS}, articles, source)


def squad_from_hf(rows) -> dict:
    """Hugging Face ``squad`` / ``squad_v2`` rows -> the official JSON layout.

    Rows: ``{"id", "title", "context", "question", "answers": {"text": [...],
    "answer_start": [...]}}`` (a ``datasets.Dataset`` iterates as such dicts).
    Questions are grouped into articles by title and paragraphs by context, in
    first-seen order; an empty answer list means unanswerable.
    """
    articles, paragraphs = {}, {}
    for row in rows:
        title, context = row.get("title", ""), row["context"]
        article = articles.setdefault(title, {"title": title, "paragraphs": []})
        key = (title, context)
        if key not in paragraphs:
            paragraphs[key] = {"context": context, "qas": []}
            article["paragraphs"].append(paragraphs[key])
        texts, starts = row["answers"]["text"], row["answers"]["answer_start"]
        paragraphs[key]["qas"].append({
            "id": row["id"], "question": row["question"],
            "answers": [{"text": t, "answer_start": int(s)} for t, s in zip(texts, starts)],
            "is_impossible": len(texts) == 0,
        })
    return {"version": "hf", "data": list(articles.values())}


def load_squad_dataset(name: str = "squad", split: str = "validation", allow_skips: bool = False) -> SquadData:
    """Loads ``squad`` / ``squad_v2`` with ``datasets.load_dataset`` (needs network or a cache)."""
    import datasets  # only this path needs it

    rows = datasets.load_dataset(name, split=split)
    return parse_squad(squad_from_hf(rows), source=f"datasets:{name}[{split}]", allow_skips=allow_skips)


@dataclass
class SquadFeatures:
    """Windows of question + context, the model inputs and what post-processing needs.

    Arrays (``W`` windows, ``L`` = max_seq_length):
      input_ids, attention_mask, token_type_ids: int32 ``[W, L]``.
      start_positions, end_positions: int32 ``[W]``; the gold answer's tokens when
        the (first) gold answer lies wholly in the window, else 0 ([CLS]).
      example_index: int32 ``[W]``, index into the examples (-1 marks padding rows
        a caller may append; post-processing ignores them).
      context_offsets: int32 ``[W, L, 2]``; character span in the context of each
        context token, -1 elsewhere.
      max_context: bool ``[W, L]``; the token's best window is this one.
      window_start: int32 ``[W]``; index of the window's first context token among
        all the context's tokens (identifies a window within its example).
    """

    input_ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray
    start_positions: np.ndarray
    end_positions: np.ndarray
    example_index: np.ndarray
    context_offsets: np.ndarray
    max_context: np.ndarray
    window_start: np.ndarray
    example_ids: list[str] = field(default_factory=list)

    _ARRAYS = ("input_ids", "attention_mask", "token_type_ids", "start_positions", "end_positions",
               "example_index", "context_offsets", "max_context", "window_start")

    def __len__(self) -> int:
        return len(self.input_ids)

    def model_inputs(self) -> dict[str, np.ndarray]:
        """The batch arrays a QA head trains or predicts on."""
        return {k: getattr(self, k) for k in ("input_ids", "attention_mask", "token_type_ids",
                                              "start_positions", "end_positions", "example_index")}

    def select(self, indices) -> SquadFeatures:
        """The windows at ``indices`` (a permutation, a subset or a chunk), in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        return SquadFeatures(**{k: getattr(self, k)[indices] for k in self._ARRAYS},
                             example_ids=[self.example_ids[i] for i in indices])


def truncate_question(tokenizer, question: str, max_query_length: int) -> str:
    """The question cut after its ``max_query_length``-th token (at that token's end)."""
    enc = tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    if len(offsets) <= max_query_length:
        return question
    return question[:offsets[max_query_length - 1][1]]


def squad_features(examples: list[SquadExample], tokenizer, max_seq_length: int = 384, doc_stride: int = 128,
                   max_query_length: int = 64) -> SquadFeatures:
    """Questions -> overlapping windows of ``max_seq_length`` tokens (see ``SquadFeatures``).

    Args:
      examples: parsed questions.
      tokenizer: a ``BertTokenizerFast`` (offsets are needed).
      max_seq_length: tokens per window, [CLS] question [SEP] context [SEP] + padding.
      doc_stride: context tokens shared by consecutive windows.
      max_query_length: question tokens kept.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("squad_features needs BertTokenizerFast (character offsets); got "
                         f"{type(tokenizer).__name__}.")
    if max_query_length < 1 or doc_stride < 0:
        raise ValueError(f"max_query_length={max_query_length} must be >= 1 and doc_stride={doc_stride} >= 0.")
    if not examples:
        raise ValueError("no SQuAD examples to turn into features.")
    columns = {k: [] for k in ("input_ids", "attention_mask", "token_type_ids", "context_offsets", "example_index")}
    for begin in range(0, len(examples), _ENCODE_BATCH):
        batch = examples[begin:begin + _ENCODE_BATCH]
        questions = [truncate_question(tokenizer, e.question, max_query_length) for e in batch]
        q_lengths = [len(tokenizer(q, add_special_tokens=False)["input_ids"]) for q in questions]
        for example, q_len in zip(batch, q_lengths):
            room = max_seq_length - q_len - 3  # [CLS] q [SEP] c [SEP]
            if room <= doc_stride:
                raise ValueError(
                    f"question {example.qid!r} takes {q_len} tokens, leaving {room} context tokens per window of "
                    f"max_seq_length={max_seq_length}; that must exceed doc_stride={doc_stride}. Lower "
                    "max_query_length or doc_stride, or raise max_seq_length.")
        enc = tokenizer(questions, [e.context for e in batch], truncation="only_second", max_length=max_seq_length,
                        stride=doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True,
                        padding="max_length", return_tensors="np")
        offsets = np.asarray(enc["offset_mapping"], dtype=np.int32).reshape(len(enc["input_ids"]), max_seq_length, 2)
        for row in range(len(offsets)):
            is_context = np.array([s == 1 for s in enc.sequence_ids(row)])
            offsets[row][~is_context] = -1
        for key in ("input_ids", "attention_mask", "token_type_ids"):
            columns[key].append(np.asarray(enc[key], dtype=np.int32))
        columns["context_offsets"].append(offsets)
        columns["example_index"].append(np.asarray(enc["overflow_to_sample_mapping"], dtype=np.int32) + begin)
    arrays = {k: np.concatenate(v) for k, v in columns.items()}
    starts, ends, window_start, max_context = _positions_and_context(examples, arrays, doc_stride)
    return SquadFeatures(**arrays, start_positions=starts, end_positions=ends, window_start=window_start,
                         max_context=max_context, example_ids=[examples[i].qid for i in arrays["example_index"]])


def _positions_and_context(examples, arrays, doc_stride):
    """Per window: gold start/end, first context token's index, max-context mask."""
    offsets, example_index = arrays["context_offsets"], arrays["example_index"]
    num_windows, length = example_index.shape[0], offsets.shape[1]
    starts = np.zeros(num_windows, np.int32)
    ends = np.zeros(num_windows, np.int32)
    window_start = np.zeros(num_windows, np.int32)
    max_context = np.zeros((num_windows, length), bool)
    boundaries = np.flatnonzero(np.diff(example_index, prepend=-1, append=-1))
    for lo, hi in zip(boundaries[:-1], boundaries[1:]):
        example = examples[example_index[lo]]
        positions = [np.flatnonzero(offsets[w, :, 0] >= 0) for w in range(lo, hi)]
        # Consecutive windows share doc_stride context tokens, so window k starts
        # len(window k-1) - doc_stride tokens after window k-1; the shared tokens'
        # offsets are checked so a tokenizer that windows differently cannot pass.
        first = 0
        spans = []
        for k, pos in enumerate(positions):
            if k:
                prev = positions[k - 1]
                step = len(prev) - doc_stride
                shared = min(doc_stride, len(pos))
                if step <= 0 or not np.array_equal(offsets[lo + k - 1, prev[step:step + shared]],
                                                   offsets[lo + k, pos[:shared]]):
                    raise RuntimeError(f"question {example.qid!r}: the tokenizer's overflow windows do not overlap "
                                       f"by doc_stride={doc_stride} context tokens; cannot place window {k}.")
                first += step
            spans.append((first, len(pos)))
            window_start[lo + k] = first
        # Max context: score of every (window, token) pair, best window per token.
        total = spans[-1][0] + spans[-1][1]
        best = np.full(total, -1.0)
        owner = np.full(total, -1)
        for k, (s, n) in enumerate(spans):
            g = np.arange(s, s + n)
            score = np.minimum(g - s, s + n - 1 - g) + 0.01 * n
            better = score > best[g]
            best[g[better]] = score[better]
            owner[g[better]] = k
        for k, (s, n) in enumerate(spans):
            max_context[lo + k, positions[k]] = owner[s:s + n] == k
        if example.is_impossible:
            continue
        text, char_start = example.answers[0]
        char_end = char_start + len(text)
        for k, pos in enumerate(positions):
            w = lo + k
            token_starts, token_ends = offsets[w, pos, 0], offsets[w, pos, 1]
            if token_starts[0] > char_start or token_ends[-1] < char_end:
                continue  # answer not wholly in this window: [CLS]
            starts[w] = pos[np.flatnonzero(token_ends > char_start)[0]]
            ends[w] = pos[np.flatnonzero(token_starts < char_end)[-1]]
    return starts, ends, window_start, max_context
