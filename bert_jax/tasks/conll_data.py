"""Token classification data in the CoNLL-2003 layout: reading, word -> word-piece alignment,
word-aligned windows for long sentences, merging window predictions back to words, writing.

Layout: one token per line, space-separated columns (CoNLL-2003: ``token POS chunk NER``), a
blank line between sentences, ``-DOCSTART- ...`` lines between documents (skipped, but their
positions are kept so predictions can be written back in the same layout).

Alignment: every word is tokenized on its own (our tokenizers take no ``is_split_into_words``;
one batched call over all words does the same job). The label goes on the first word piece of a
word; the other pieces get ``IGNORE_INDEX`` or, with ``label_all_tokens``, the word's label with
``B-`` turned into ``I-`` (as Hugging Face's ``run_ner`` does). A word that tokenizes to nothing
(control characters only) gets one ``[UNK]`` piece so that every word keeps a label.

Windows: a sentence longer than ``max_seq_length - 2`` pieces is cut at word boundaries into
windows; with ``stride`` > 0 consecutive windows share up to that many pieces of context.
``merge_word_predictions`` reads each word's prediction at its first piece in the window where the
word has the most context on both sides. No JAX import here.
"""

from __future__ import annotations

import io
import os
import shlex
from dataclasses import dataclass

import numpy as np

from bert_jax.text_files import read_utf8

IGNORE_INDEX = -100
DOCSTART = "-DOCSTART-"
CONLL2003_LABELS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC")


@dataclass(frozen=True)
class ConllSentence:
    """One sentence: ``columns[i]`` is token i's full row (``columns[i][0]`` the word)."""

    words: tuple[str, ...]
    labels: tuple[str, ...]
    columns: tuple[tuple[str, ...], ...]
    document: int  # how many -DOCSTART- lines came before it, minus one (-1: the file has none yet)
    line: int  # line number of its first token, for messages


def read_conll(path: str, label_list: tuple[str, ...] | list[str] | None = None, *, label_column: int = -1,
               num_columns: int | None = 4, tokens_only_ok: bool = False) -> list[ConllSentence]:
    """Sentences of a CoNLL file.

    Args:
      path: the file.
      label_list: valid labels; a label outside it is an error (None: accept any).
      label_column: which column holds the label (default the last).
      num_columns: columns every token line must have (None: any number, but the same on every line).
      tokens_only_ok: a file whose first token line has one column is read as tokens without tags
        (every line one column; each sentence's ``labels`` is ``()``), for prediction.

    Returns:
      The sentences in file order.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found; a CoNLL-2003 directory holds train.txt, dev.txt (or "
                                "valid.txt) and test.txt.")
    valid = None if label_list is None else set(label_list)
    sentences, rows, first_line, document, expected = [], [], 0, -1, num_columns
    tokens_only = 0  # the number of the first token line, when it made the file one of tokens only

    def flush():
        if rows:
            labels = () if tokens_only else tuple(r[label_column] for r in rows)
            sentences.append(ConllSentence(tuple(r[0] for r in rows), labels, tuple(rows), document, first_line))
            rows.clear()

    # read whole, so that a line in another encoding is refused with its number
    for number, text in enumerate(io.StringIO(read_utf8(path, "CoNLL file"), newline=None), 1):
        fields = tuple(text.split())
        if not fields:
            flush()
            continue
        if fields[0] == DOCSTART:
            flush()
            document += 1
            continue
        first_token_line = not sentences and not rows
        if first_token_line and tokens_only_ok and len(fields) == 1:
            expected, tokens_only = 1, number
        elif expected is None:
            expected = len(fields)
        if len(fields) != expected or (len(fields) < 2 and not tokens_only):
            if tokens_only:
                raise ValueError(f"{path}:{number}: {len(fields)} columns, but line {tokens_only} has one, so the "
                                 "file was read as tokens without tags: tag every token line (token ... label) "
                                 "or none.")
            if first_token_line and len(fields) == 1:  # tokens without tags
                why = ("a file of tokens without tags is read only as the test split, to predict: "
                       "bert-jax predict --split test with it as test.txt in data.data_dir; to train or "
                       "evaluate, each line needs its tag")
            else:
                why = ("as on its first token line" if num_columns is None else
                       "data.num_columns; set --config.data.num_columns to the file's own count if every line "
                       "has it" if len(fields) >= 2 else "data.num_columns")
            raise ValueError(f"{path}:{number}: {len(fields)} columns, expected {expected} ({why}; token ... "
                             "label, space-separated; a token may not contain spaces).")
        if not tokens_only and valid is not None and fields[label_column] not in valid:
            wider = ",".join([*label_list, fields[label_column]])
            raise ValueError(f"{path}:{number}: label {fields[label_column]!r} (column {label_column}) is not "
                             f"in the label list (data.labels, in classifier order) {list(label_list)}; fix the "
                             f"file, or, for a new fine-tuning run, add the label: "
                             f"--config.data.labels={shlex.quote(wider)}")
        if not rows:
            first_line = number
        rows.append(fields)
    flush()
    if not sentences:
        raise ValueError(f"{path}: no sentences; the file is empty or holds only -DOCSTART- lines.")
    return sentences


def label_list_of(sentences: list[ConllSentence]) -> tuple[str, ...]:
    """The labels present: ``O`` first, then the others sorted by type and B- before I-."""
    labels = {lab for s in sentences for lab in s.labels}
    rest = sorted(labels - {"O"}, key=lambda lab: (lab[2:], lab[:2]))
    return (("O",) if "O" in labels else ()) + tuple(rest)


def word_pieces(sentences: list[ConllSentence], tokenizer) -> list[list[list[int]]]:
    """Piece ids per word per sentence (one tokenizer call for all words; empty words get ``[UNK]``)."""
    flat = [w for s in sentences for w in s.words]
    ids = tokenizer(flat, add_special_tokens=False, return_attention_mask=False,
                    return_token_type_ids=False)["input_ids"] if flat else []
    out, k = [], 0
    for s in sentences:
        out.append([list(ids[k + i]) or [tokenizer.unk_token_id] for i in range(len(s.words))])
        k += len(s.words)
    return out


def windows(pieces: list[list[int]], budget: int, stride: int = 0) -> list[tuple[int, int]]:
    """Word ranges ``[start, end)`` whose pieces fit ``budget``; consecutive ones overlap by at most
    ``stride`` pieces (whole words) and always advance. A word longer than the budget gets a window
    of its own (its pieces are cut there)."""
    lengths = [len(p) for p in pieces]
    out, start = [], 0
    while start < len(lengths):
        end, used = start, 0
        while end < len(lengths) and (end == start or used + lengths[end] <= budget):
            used += lengths[end]
            end += 1
        out.append((start, end))
        if end == len(lengths):
            break
        nxt, shared = end, 0
        while nxt - 1 > start and shared + lengths[nxt - 1] <= stride:
            nxt -= 1
            shared += lengths[nxt]
        start = nxt
    return out


def encode_conll(sentences: list[ConllSentence], tokenizer, label_list, max_seq_length: int, *,
                 label_all_tokens: bool = False, stride: int = 0) -> dict[str, np.ndarray]:
    """Windows of word pieces with aligned labels.

    Returns:
      ``input_ids, attention_mask, token_type_ids, labels`` int32 ``[windows, max_seq_length]``
      (``labels`` ``IGNORE_INDEX`` on [CLS]/[SEP]/padding and, unless ``label_all_tokens``, on
      continuation pieces); ``word_ids`` int32 ``[windows, max_seq_length]`` (word index in its
      sentence, -1 elsewhere); ``first_piece`` bool ``[windows, max_seq_length]``;
      ``example_index`` int32 ``[windows]`` (the sentence); ``word_range`` int32 ``[windows, 2]``.
    """
    if max_seq_length < 3:
        raise ValueError(f"max_seq_length={max_seq_length} leaves no room for a word between [CLS] and [SEP].")
    label_to_id = {lab: i for i, lab in enumerate(label_list)}
    # B-X continues as I-X when the label list has it, as run_ner's b_to_i_label.
    b_to_i = {i: label_to_id.get("I-" + lab[2:], i) if lab.startswith("B-") else i for lab, i in label_to_id.items()}
    budget = max_seq_length - 2
    rows = {k: [] for k in ("input_ids", "attention_mask", "labels", "word_ids", "first_piece", "example_index",
                            "word_range")}
    for index, (sentence, pieces) in enumerate(zip(sentences, word_pieces(sentences, tokenizer))):
        unknown = [k for k, lab in enumerate(sentence.labels) if lab not in label_to_id]
        if unknown:
            k = unknown[0]  # a sentence's tokens are on consecutive lines
            raise ValueError(f"line {sentence.line + k}: label {sentence.labels[k]!r} is not in label_list "
                             f"{list(label_list)}; pass the labels of the training file (label_list_of).")
        # a sentence without tags (to predict) has no targets
        ids = [label_to_id[lab] for lab in sentence.labels] or [IGNORE_INDEX] * len(sentence.words)
        for start, end in windows(pieces, budget, stride):
            tokens, labels, words, first = [tokenizer.cls_token_id], [IGNORE_INDEX], [-1], [False]
            for w in range(start, end):
                for j, piece in enumerate(pieces[w][:budget]):
                    tokens.append(piece)
                    labels.append(ids[w] if j == 0 else b_to_i.get(ids[w], IGNORE_INDEX) if label_all_tokens
                                  else IGNORE_INDEX)
                    words.append(w)
                    first.append(j == 0)
            tokens.append(tokenizer.sep_token_id)
            labels.append(IGNORE_INDEX)
            words.append(-1)
            first.append(False)
            pad = max_seq_length - len(tokens)
            rows["input_ids"].append(tokens + [tokenizer.pad_token_id] * pad)
            rows["attention_mask"].append([1] * len(tokens) + [0] * pad)
            rows["labels"].append(labels + [IGNORE_INDEX] * pad)
            rows["word_ids"].append(words + [-1] * pad)
            rows["first_piece"].append(first + [False] * pad)
            rows["example_index"].append(index)
            rows["word_range"].append((start, end))
    out = {k: np.asarray(v, np.int32) for k, v in rows.items() if k != "first_piece"}
    out["first_piece"] = np.asarray(rows["first_piece"], bool)
    out["token_type_ids"] = np.zeros_like(out["input_ids"])
    return out


def merge_word_predictions(features: dict[str, np.ndarray], predictions: np.ndarray,
                           num_words: list[int]) -> list[list[int]]:
    """One predicted label id per word, from window predictions.

    Args:
      features: the output of ``encode_conll``.
      predictions: ``[windows, max_seq_length]`` label ids or ``[windows, max_seq_length, labels]`` logits.
      num_words: words per sentence (``len(sentence.words)``).

    Returns:
      Per sentence, a label id per word: read at the word's first piece, in the window where the
      word is farthest from both window edges (most context).
    """
    predictions = np.asarray(predictions)
    if predictions.ndim == 3:
        predictions = predictions.argmax(-1)
    if predictions.shape != features["input_ids"].shape:
        raise ValueError(f"predictions have shape {predictions.shape}, the features {features['input_ids'].shape}.")
    out = [[None] * n for n in num_words]
    score = [[-1] * n for n in num_words]
    for w in range(len(predictions)):
        sentence = int(features["example_index"][w])
        start, end = (int(x) for x in features["word_range"][w])
        for t in np.flatnonzero(features["first_piece"][w]):
            word = int(features["word_ids"][w, t])
            context = min(word - start, end - 1 - word)
            if context > score[sentence][word]:
                score[sentence][word], out[sentence][word] = context, int(predictions[w, t])
    for sentence, labels in enumerate(out):
        if None in labels:
            raise ValueError(f"sentence {sentence}: word {labels.index(None)} is in no window; the features do "
                             "not belong to these sentences.")
    return out


def write_conll(path: str, sentences: list[ConllSentence], predictions: list[list[str]], *,
                keep_gold: bool = False, label_column: int = -1) -> None:
    """Writes sentences back in their layout with predicted labels.

    ``keep_gold=False`` replaces the label column by the prediction; ``keep_gold=True`` appends the
    prediction as a last column (the ``token ... gold predicted`` input of ``conlleval``).
    ``-DOCSTART- -X- -X- O`` lines are written where documents started.
    """
    if len(predictions) != len(sentences):
        raise ValueError(f"{len(predictions)} predicted sentences for {len(sentences)} sentences.")
    lines, document = [], None
    for k, (sentence, labels) in enumerate(zip(sentences, predictions)):
        if len(labels) != len(sentence.words):
            raise ValueError(f"sentence {k} (line {sentence.line}): {len(labels)} predicted labels for "
                             f"{len(sentence.words)} words.")
        if sentence.document != document and sentence.document >= 0:
            width = len(sentence.columns[0]) - 1
            lines.append(" ".join([DOCSTART] + ["-X-"] * (width - 1) + ["O"]) + "\n\n")
        document = sentence.document
        for row, label in zip(sentence.columns, labels):
            if keep_gold:
                row = (*row, label)
            else:
                row = list(row)
                row[label_column] = label
            lines.append(" ".join(row) + "\n")
        lines.append("\n")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("".join(lines))
