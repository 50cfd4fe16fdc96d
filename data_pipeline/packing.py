"""Sequence packing: several NSP instances per row of ``max_seq_length``, no cross-contamination.

An instance ``[CLS] A [SEP] B [SEP]`` shorter than the row wastes the rest on
padding. Packing places several instances side by side in one row; each keeps
its own token types, position ids restarting at 0, masked positions (shifted
to where it sits) and NSP label read at its own ``[CLS]``. ``segment_ids``
(1..k per instance, 0 = padding) let the model restrict attention to the
instance's own tokens, so an instance's outputs do not depend on its neighbours.

Policy (see docs/packing.md):

* **Windows.** Epoch ``e``'s permutation (the unpacked loader's) is cut into
  windows of ``window_size`` consecutive instances; the last one may be
  shorter. A window is packed on its own by first-fit decreasing (instances
  by length, longest first, ties in stream order; each goes to the first open
  row with room for its tokens, a free instance slot and room for its
  predictions). A window's rows are ordered by the stream position of their
  earliest instance, so long and short rows stay mixed in the batch order.
* **Row stream.** An epoch's rows are its windows' rows back to back; global
  batch ``s`` is the next ``global_batch_size`` rows (a batch may span two
  windows, never two epochs); process ``p`` takes rows
  ``[p * B / P, (p + 1) * B / P)``. The plan depends only on the epoch's
  instance lengths and prediction counts, so every host computes the same plan.
* **End of epoch.** Rows left over that make no full batch are dropped with
  ``drop_remainder=True``; otherwise they are padded with empty rows (all
  weights 0).
* **Masks.** Instance ``i`` of epoch ``e`` carries exactly the mask it has
  unpacked (same counter-based key), so masking statistics are unchanged.
  Packing plans with each instance's masked count (static shards) or its
  upper bound ``masking.num_to_mask`` (dynamic masking; exact except under
  whole-word masking, where fewer tokens can be taken).
* **Resume.** The position is ``(step, epoch, window, row)``: restoring it
  re-plans one window and continues exactly; ``start_step=k`` replays the
  plans (lengths only, no masking) from step 0.

No JAX here: the loader imports this module.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numpy as np


def default_max_instances_per_row(max_seq_length: int) -> int:
    """``max(1, max_seq_length // 16)``: 8 instances at 128, 32 at 512 (an instance has >= 5 tokens)."""
    return max(1, max_seq_length // 16)


def default_max_predictions_per_row(max_seq_length: int, masked_lm_prob: float, max_predictions_per_seq: int,
                                    max_instances_per_row: int) -> int:
    """A cap that never binds: an instance with ``c`` candidates masks at most ``c p + 1`` tokens
    (stochastic rounding, at least 1), so ``k`` instances of one row mask at most
    ``p * max_seq_length + k``; also at most ``k * max_predictions_per_seq``."""
    bound = math.ceil(masked_lm_prob * max_seq_length) + max_instances_per_row
    return int(min(bound, max_instances_per_row * max_predictions_per_seq, max_seq_length))


@dataclasses.dataclass(frozen=True)
class PackingConfig:
    """Row layout: ``max_seq_length`` tokens, at most ``max_instances_per_row`` instances and
    ``max_predictions_per_row`` masked positions per row; ``window_size`` instances planned together."""

    max_seq_length: int
    max_instances_per_row: int
    max_predictions_per_row: int
    window_size: int

    def validate(self, max_predictions_per_seq: int) -> None:
        """Raises ValueError naming the setting to change."""
        if self.max_instances_per_row < 1:
            raise ValueError(f"max_instances_per_row={self.max_instances_per_row} must be >= 1 "
                             "(set data.max_instances_per_row, or 0 for the default)")
        if self.max_predictions_per_row < max_predictions_per_seq:
            raise ValueError(
                f"max_predictions_per_row={self.max_predictions_per_row} is below the shards' "
                f"max_predictions_per_seq={max_predictions_per_seq}, so an instance could fit in no row; "
                f"set data.max_predictions_per_row >= {max_predictions_per_seq} (or 0 for the default)")
        if self.window_size < 1:
            raise ValueError(f"packing window_size={self.window_size} must be >= 1")


def first_fit(lengths: np.ndarray, predictions: np.ndarray, cfg: PackingConfig) -> tuple[np.ndarray, np.ndarray, int]:
    """First-fit decreasing of one window.

    Args:
      lengths: int ``[n]`` tokens of each instance (<= max_seq_length).
      predictions: int ``[n]`` masked positions of each instance (<= max_predictions_per_row).
      cfg: the row capacities.

    Returns:
      ``(row [n], slot [n], num_rows)``: instance ``i`` is the ``slot[i]``-th instance of row
      ``row[i]``; within a row, slots follow stream order; rows are numbered by the
      stream position of their earliest instance.
    """
    lengths = np.asarray(lengths, np.int64)
    predictions = np.asarray(predictions, np.int64)
    n = len(lengths)
    if n and (lengths.max() > cfg.max_seq_length or predictions.max() > cfg.max_predictions_per_row):
        raise ValueError(f"an instance of {lengths.max()} tokens / {predictions.max()} predictions exceeds the row "
                         f"({cfg.max_seq_length} tokens, {cfg.max_predictions_per_row} predictions)")
    token_room = np.full(n, cfg.max_seq_length, np.int64)
    pred_room = np.full(n, cfg.max_predictions_per_row, np.int64)
    slots_used = np.zeros(n, np.int64)
    row = np.empty(n, np.int64)
    num_rows = 0
    # Stable sort on -length: longest first, ties in stream order.
    for i in np.argsort(-lengths, kind="stable").tolist():
        length, pred = lengths[i], predictions[i]
        fits = (token_room[:num_rows] >= length) & (pred_room[:num_rows] >= pred) & \
            (slots_used[:num_rows] < cfg.max_instances_per_row)
        r = int(np.argmax(fits)) if num_rows and fits.any() else num_rows
        num_rows += r == num_rows
        token_room[r] -= length
        pred_room[r] -= pred
        slots_used[r] += 1
        row[i] = r
    # Renumber rows by their earliest instance; slots by stream order within a row.
    first = np.full(num_rows, n, np.int64)
    np.minimum.at(first, row, np.arange(n))
    rank = np.empty(num_rows, np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(num_rows)
    row = rank[row]
    order = np.lexsort((np.arange(n), row))
    slot = np.empty(n, np.int64)
    counts = np.bincount(row, minlength=num_rows)
    slot[order] = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
    return row, slot, num_rows


def assemble_rows(instances: dict[str, np.ndarray], row: np.ndarray, slot: np.ndarray, num_rows: int,
                  cfg: PackingConfig, pad_id: int) -> dict[str, np.ndarray]:
    """Packs unpacked instances into rows.

    Args:
      instances: unpacked rows as the loader makes them: ``input_ids``, ``token_type_ids``,
        ``attention_mask`` ``[n, seq]`` (real tokens first), ``masked_lm_positions``,
        ``masked_lm_ids``, ``masked_lm_weights`` ``[n, max_pred]``, ``next_sentence_label`` ``[n]``,
        optionally ``example_index`` ``[n]``.
      row, slot: int ``[n]`` placement (``first_fit``); slots of a row are 0..k-1.
      num_rows: rows to produce (rows without instances come out empty).
      cfg: the row layout.
      pad_id: the ``[PAD]`` id.

    Returns:
      ``input_ids``, ``token_type_ids``, ``attention_mask``, ``segment_ids`` (1..k, 0 = padding),
      ``position_ids`` int32 ``[num_rows, seq]``; ``masked_lm_positions``, ``masked_lm_ids`` int32 and
      ``masked_lm_weights`` float32 ``[num_rows, max_predictions_per_row]`` (positions in the row,
      ascending); ``next_sentence_positions`` (each instance's [CLS] index), ``next_sentence_label``
      int32 and ``next_sentence_weight`` float32 ``[num_rows, max_instances_per_row]`` (0 = no
      instance); ``example_index`` int64 ``[num_rows, max_instances_per_row]`` (-1 = none) when given.
    """
    seq, kmax, pmax = cfg.max_seq_length, cfg.max_instances_per_row, cfg.max_predictions_per_row
    row = np.asarray(row, np.int64)
    slot = np.asarray(slot, np.int64)
    n = len(row)
    lengths = instances["attention_mask"].astype(np.int64).sum(1)
    # Instances in (row, slot) order; an instance's offset is the length of those before it in its row.
    order = np.lexsort((slot, row))
    row_s, len_s = row[order], lengths[order]
    ends = np.cumsum(len_s)
    starts = ends - len_s
    row_first = np.searchsorted(row_s, row_s, side="left")  # index of the row's first instance
    offset_s = starts - starts[row_first]
    offset = np.empty(n, np.int64)
    offset[order] = offset_s
    if n and (offset + lengths).max() > seq:
        raise ValueError("packed instances overflow a row; the placement does not respect max_seq_length")

    out = {name: np.zeros((num_rows, seq), np.int32)
           for name in ("input_ids", "token_type_ids", "attention_mask", "segment_ids", "position_ids")}
    out["input_ids"][:] = pad_id
    inst = np.repeat(order, len_s)  # instance of every packed token
    within = np.arange(int(ends[-1]) if n else 0) - np.repeat(starts, len_s)
    r, c = row[inst], offset[inst] + within
    out["input_ids"][r, c] = instances["input_ids"][inst, within]
    out["token_type_ids"][r, c] = instances["token_type_ids"][inst, within]
    out["attention_mask"][r, c] = 1
    out["segment_ids"][r, c] = slot[inst] + 1
    out["position_ids"][r, c] = within

    weights = instances["masked_lm_weights"]
    mi, mj = np.nonzero(weights[order] > 0)  # (instance in sorted order, slot) pairs, row-major
    mi = order[mi]
    pred_row = row[mi]
    # Predictions keep (slot, position) order inside a row, so positions stay ascending.
    counts = np.bincount(pred_row, minlength=num_rows)
    if counts.size and counts.max() > pmax:
        raise ValueError(f"a packed row holds {counts.max()} predictions, more than max_predictions_per_row={pmax}")
    k = np.arange(len(mi)) - np.repeat(np.cumsum(counts) - counts, counts)
    out["masked_lm_positions"] = np.zeros((num_rows, pmax), np.int32)
    out["masked_lm_ids"] = np.zeros((num_rows, pmax), np.int32)
    out["masked_lm_weights"] = np.zeros((num_rows, pmax), np.float32)
    out["masked_lm_positions"][pred_row, k] = instances["masked_lm_positions"][mi, mj] + offset[mi]
    out["masked_lm_ids"][pred_row, k] = instances["masked_lm_ids"][mi, mj]
    out["masked_lm_weights"][pred_row, k] = weights[mi, mj]

    if n and slot.max() >= kmax:
        raise ValueError(f"a row holds {slot.max() + 1} instances, more than max_instances_per_row={kmax}")
    out["next_sentence_positions"] = np.zeros((num_rows, kmax), np.int32)
    out["next_sentence_label"] = np.zeros((num_rows, kmax), np.int32)
    out["next_sentence_weight"] = np.zeros((num_rows, kmax), np.float32)
    out["next_sentence_positions"][row, slot] = offset
    out["next_sentence_label"][row, slot] = instances["next_sentence_label"]
    out["next_sentence_weight"][row, slot] = 1.0
    if "example_index" in instances:
        out["example_index"] = np.full((num_rows, kmax), -1, np.int64)
        out["example_index"][row, slot] = instances["example_index"]
    return out


@dataclasses.dataclass(frozen=True)
class Cursor:
    """Position in the packed stream: the next ``step`` starts at row ``row`` of window ``window``
    of epoch ``epoch``."""

    step: int
    epoch: int
    window: int
    row: int


class PackedStream:
    """Global packed batches over an epoch-permuted instance stream (the loader supplies the data).

    Args:
      permutation: ``epoch -> int [num_examples]`` the epoch's instance order.
      plan_inputs: ``(epoch, example_indices [n]) -> (lengths [n], predictions [n])``.
      instances: ``(epoch, example_indices [n]) -> unpacked masked fields`` (see ``assemble_rows``).
      num_examples, global_batch_size: the stream and the rows per step.
      local_rows: ``(first, count)`` of this process's rows in each global batch.
      cfg: the row layout and window size.
      pad_id: the ``[PAD]`` id.
      drop_remainder: drop an epoch's rows that make no full batch (else pad with empty rows).
      num_epochs: stop after this many epochs (None = forever).
    """

    def __init__(self, permutation: Callable, plan_inputs: Callable, instances: Callable, num_examples: int,
                 global_batch_size: int, local_rows: tuple[int, int], cfg: PackingConfig, pad_id: int,
                 drop_remainder: bool, num_epochs: int | None):
        self.permutation, self.plan_inputs, self.instances = permutation, plan_inputs, instances
        self.num_examples, self.global_batch_size = num_examples, global_batch_size
        self.local_rows, self.cfg, self.pad_id = local_rows, cfg, pad_id
        self.drop_remainder, self.num_epochs = drop_remainder, num_epochs
        self.windows_per_epoch = -(-num_examples // cfg.window_size)
        self._plans: dict[tuple[int, int], tuple] = {}

    def plan(self, epoch: int, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """``(example_indices [n], row [n], slot [n], num_rows)`` of one window (the last two cached)."""
        key = (epoch, window)
        if key not in self._plans:
            w = self.cfg.window_size
            idx = self.permutation(epoch)[window * w:(window + 1) * w]
            lengths, predictions = self.plan_inputs(epoch, idx)
            row, slot, num_rows = first_fit(lengths, predictions, self.cfg)
            if len(self._plans) >= 2:
                self._plans.pop(next(iter(self._plans)))
            self._plans[key] = (idx, row, slot, num_rows)
        return self._plans[key]

    def _rows(self, cursor: Cursor) -> tuple[list[tuple[int, int, int]], Cursor, int] | None:
        """``(runs, cursor after, epoch)`` of the batch at ``cursor``: its rows as ``(window, first row,
        count)`` runs (fewer than ``global_batch_size`` rows only for a kept final partial batch);
        None when ``num_epochs`` is done."""
        epoch, window, row = cursor.epoch, cursor.window, cursor.row
        runs, need = [], self.global_batch_size
        while need:
            if self.num_epochs is not None and epoch >= self.num_epochs:
                return None
            if window >= self.windows_per_epoch:  # the epoch ends before the batch is full
                if runs and not self.drop_remainder:
                    return runs, Cursor(cursor.step + 1, epoch + 1, 0, 0), epoch
                runs, need = [], self.global_batch_size
                epoch, window, row = epoch + 1, 0, 0
                continue
            num_rows = self.plan(epoch, window)[3]
            take = min(need, num_rows - row)
            if take > 0:
                runs.append((window, row, take))
                need -= take
                row += take
            if row >= num_rows:
                window, row = window + 1, 0
        return runs, Cursor(cursor.step + 1, epoch, window, row), epoch

    def seek(self, step: int) -> Cursor:
        """The cursor of ``step``, replaying the plans from step 0."""
        cursor = Cursor(0, 0, 0, 0)
        while cursor.step < step:
            nxt = self._rows(cursor)
            if nxt is None:
                return Cursor(step, self.num_epochs, 0, 0)
            cursor = nxt[1]
        return cursor

    def next_batch(self, cursor: Cursor, return_example_index: bool) -> tuple[dict[str, np.ndarray], Cursor] | None:
        """This process's rows of the batch at ``cursor`` and the cursor after it (None at the end)."""
        nxt = self._rows(cursor)
        if nxt is None:
            return None
        runs, after, epoch = nxt
        first, count = self.local_rows
        # Global rows of the batch as (window, row) pairs; empty rows pad a short final batch.
        pairs = [(w, r) for w, r0, k in runs for r in range(r0, r0 + k)]
        pairs += [(-1, -1)] * (self.global_batch_size - len(pairs))
        mine = pairs[first:first + count]
        idx_parts, row_parts, slot_parts = [], [], []
        for w in sorted({w for w, _ in mine if w >= 0}):
            idx, row, slot, _ = self.plan(epoch, w)
            local = {r: i for i, (ww, r) in enumerate(mine) if ww == w}
            sel = np.flatnonzero(np.isin(row, list(local)))
            idx_parts.append(idx[sel])
            row_parts.append(np.array([local[r] for r in row[sel].tolist()], np.int64))
            slot_parts.append(slot[sel])
        idx = np.concatenate(idx_parts) if idx_parts else np.zeros(0, np.int64)
        rows = np.concatenate(row_parts) if row_parts else np.zeros(0, np.int64)
        slots = np.concatenate(slot_parts) if slot_parts else np.zeros(0, np.int64)
        inst = self.instances(epoch, idx)
        if return_example_index:
            inst = {**inst, "example_index": idx.astype(np.int64)}
        batch = assemble_rows(inst, rows, slots, count, self.cfg, self.pad_id)
        if not return_example_index:
            batch.pop("example_index", None)
        return batch, after
