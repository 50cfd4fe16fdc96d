"""Multiple-choice data in the SWAG CSV layout: reading and encoding to ``[examples, choices, length]``.

Columns used: ``sent1`` (the context), ``sent2`` (the start of the continuation), ``ending0`` ..
``ending{N-1}`` (the number of choices is the number of consecutive ``ending<i>`` columns) and
``label`` (absent in test files). Other columns (``video-id``, ``fold-ind``, ``startphrase``,
``gold-source``, and the unnamed index column the released SWAG files start with) are ignored.
Each choice is encoded as the pair ``(sent1, sent2 + " " + ending_i)``, as Hugging Face's
``run_swag`` does. No JAX import here.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass

import numpy as np

from bert_jax.text_files import read_utf8

IGNORE_LABEL = -100  # unlabelled (test) examples


@dataclass(frozen=True)
class SwagExample:
    """One question: ``label`` is the index of the right ending, None when unlabelled."""

    guid: str
    context: str  # sent1
    start: str  # sent2
    endings: tuple[str, ...]
    label: int | None


def choice_columns(columns) -> tuple[int, list[str]]:
    """``(number of choices, missing column names)`` of a SWAG header: ``ending0, ending1, ..``
    count as choices up to the first gap; ``sent1``, ``sent2`` and two endings are required."""
    num_choices = 0
    while f"ending{num_choices}" in columns:
        num_choices += 1
    missing = [c for c in ("sent1", "sent2") if c not in columns]
    return num_choices, missing + ([] if num_choices >= 2 else [f"ending{num_choices}"])


def read_swag(path: str) -> list[SwagExample]:
    """Examples of a SWAG-layout CSV file, in file order."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found; the SWAG layout has train.csv, val.csv and test.csv.")
    # read whole, so that a line in another encoding is refused with its number
    reader = csv.reader(io.StringIO(read_utf8(path, "SWAG file"), newline=""))
    header = next(reader, None)
    if header is None:
        raise ValueError(f"{path}: empty file; expected a header with sent1, sent2, ending0, ending1, ...")
    columns = {name: i for i, name in enumerate(header)}
    num_choices, missing = choice_columns(columns)
    if missing:
        raise ValueError(f"{path}:1: the header lacks {', '.join(missing)} (has: {', '.join(header)}); a SWAG "
                         "file has sent1, sent2, ending0 .. ending<N-1> and, except test files, label.")
    has_label = "label" in columns
    out = []
    for row in reader:
        line = reader.line_num
        if len(row) != len(header):
            raise ValueError(f"{path}:{line}: {len(row)} fields, the header has {len(header)}; quote fields "
                             "that contain commas.")
        label = None
        if has_label:
            value = row[columns["label"]]
            if not value.strip().lstrip("-").isdigit() or not 0 <= int(value) < num_choices:
                raise ValueError(f"{path}:{line}: label {value!r} is not a choice index 0..{num_choices - 1} "
                                 f"(the file has {num_choices} endings).")
            label = int(value)
        guid = row[columns[""]] if "" in columns else str(len(out))
        out.append(SwagExample(guid, row[columns["sent1"]], row[columns["sent2"]],
                               tuple(row[columns[f"ending{i}"]] for i in range(num_choices)), label))
    if not out:
        raise ValueError(f"{path}: no examples after the header.")
    return out


def encode_swag(examples: list[SwagExample], tokenizer, max_seq_length: int) -> dict[str, np.ndarray]:
    """Encodes every choice as ``[CLS] sent1 [SEP] sent2 ending_i [SEP]`` (truncated longest-first, padded).

    Returns:
      ``input_ids, attention_mask, token_type_ids`` int32 ``[examples, choices, max_seq_length]``,
      ``labels`` int32 ``[examples]`` (``IGNORE_LABEL`` when unlabelled).
    """
    if not examples:
        raise ValueError("no examples to encode.")
    choices = {len(e.endings) for e in examples}
    if len(choices) != 1:
        raise ValueError(f"examples have different numbers of endings {sorted(choices)}; encode them separately.")
    (num_choices,) = choices
    firsts = [e.context for e in examples for _ in e.endings]
    seconds = [f"{e.start} {ending}".strip() for e in examples for ending in e.endings]
    enc = tokenizer(firsts, seconds, padding="max_length", truncation=True, max_length=max_seq_length,
                    return_tensors="np")
    shape = (len(examples), num_choices, max_seq_length)
    out = {k: np.asarray(enc[k], np.int32).reshape(shape) for k in ("input_ids", "attention_mask", "token_type_ids")}
    out["labels"] = np.array([IGNORE_LABEL if e.label is None else e.label for e in examples], np.int32)
    return out
