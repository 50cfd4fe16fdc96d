"""Length-bucketed fine-tuning batches: each training batch only as long as it needs to be. No JAX import.

GLUE-like inputs are stored padded to ``data.max_seq_length`` but most are far shorter, so most of
a step's compute goes to padding. ``BucketedArrayLoader`` (``data.bucket_lengths``) orders each
epoch so rows of similar length share a batch and cuts every global batch's sequence arrays to the
smallest bucket length that holds its longest row. Epoch ``e``, a function of the seed, ``e`` and
the step only:

  1. ``perm_e``: the ``ArrayLoader`` permutation (``np.random.default_rng([seed, e])``);
  2. cut into chunks of ``K = data.bucket_group_batches`` global batches (``K * B`` rows), each
     chunk sorted by row length (stable) and cut into batches of ``B``; only the epoch's last
     batch can be partial, and padding rows (weight 0, counted nowhere) fill it, so every
     example appears exactly once per epoch (``ceil(n / B)`` steps, where the unbucketed loader
     drops the remainder);
  3. the batch order shuffled with ``np.random.default_rng([seed, e, 1])``.

A batch's length is the smallest bucket ``>=`` the longest real row (last attended position + 1)
of the *global* batch, so every process cuts its rows to the same shape, and the jitted step
compiles at most once per bucket. Cutting removes pad positions only, which attention masks out
and a sequence-level head never reads: the loss is the same (with dropout on, the dropout masks
drawn for the shorter shape differ from the full-length ones).

Safe for heads that read no per-position output: sequence classification / regression and
multiple choice (``[b, choices, len]``, cut on the last axis). Token classification and question
answering are refused (``check_head``).
"""

from __future__ import annotations

import numpy as np

from bert_jax.tasks.arrays import ArrayLoader

BUCKETED_HEADS = ("sequence_classification", "multiple_choice")
SEQUENCE_KEYS = ("input_ids", "attention_mask", "token_type_ids")


def check_head(task: str, head: str, bucket_lengths) -> None:
    """Raise a ValueError naming the field when ``task``'s ``head`` reads per-position outputs."""
    if bucket_lengths and head not in BUCKETED_HEADS:
        why = {"token_classification": "it predicts a label per token",
               "question_answering": "it predicts span positions over the whole window (SQuAD windows are full "
                                     "anyway)"}.get(head, "its head reads per-position outputs")
        raise ValueError(f"data.bucket_lengths={tuple(bucket_lengths)} cannot be used with task={task!r} "
                         f"({head} head): {why}. Bucketing is for sequence classification / regression and "
                         "multiple choice; set --config.data.bucket_lengths=() for this task.")


def check_bucket_lengths(bucket_lengths, max_seq_length: int) -> tuple[int, ...]:
    """The buckets in increasing order, ``max_seq_length`` appended when missing (rows longer than
    the largest given bucket keep the full length).

    Raises:
      ValueError naming ``data.bucket_lengths`` for non-integers, lengths outside
      ``1..max_seq_length`` or an order that is not strictly increasing.
    """
    given = tuple(bucket_lengths)
    if not all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in given):
        raise ValueError(f"data.bucket_lengths={given!r} must be integers, e.g. --config.data.bucket_lengths=32,64,96,128.")
    if any(not 1 <= x <= max_seq_length for x in given):
        raise ValueError(f"data.bucket_lengths={given!r}: every length must be in 1..data.max_seq_length="
                         f"{max_seq_length}.")
    if any(b <= a for a, b in zip(given, given[1:])):
        raise ValueError(f"data.bucket_lengths={given!r} must be strictly increasing, e.g. (32, 64, 96, 128).")
    return tuple(int(x) for x in given) + (() if given and given[-1] == max_seq_length else (int(max_seq_length),))


def row_lengths(attention_mask: np.ndarray) -> np.ndarray:
    """``[n, ..., len]`` mask -> ``[n]`` int: last attended position + 1 (0 for an empty row),
    the largest over any inner axes (the choices of a multiple-choice row)."""
    mask = np.asarray(attention_mask) != 0
    last = mask.shape[-1] - np.argmax(mask[..., ::-1], axis=-1)
    lengths = np.where(mask.any(-1), last, 0)
    return lengths.reshape(len(lengths), -1).max(-1)


def padding_fraction(attention_mask: np.ndarray) -> float:
    """Pad positions / all positions of ``[n, ..., len]`` rows at their stored length."""
    mask = np.asarray(attention_mask)
    return float(1.0 - np.count_nonzero(mask) / max(mask.size, 1))


class BucketedArrayLoader(ArrayLoader):
    """An ``ArrayLoader`` for training whose batches are grouped by length and cut to a bucket.

    Args (besides ``ArrayLoader``'s, which must include ``attention_mask`` ``[n, ..., len]``):
      bucket_lengths: strictly increasing lengths (``check_bucket_lengths``).
      group_batches: ``K``, global batches per length-sorted chunk (larger: less padding,
        batches less random in their composition).
      sequence_keys: the arrays whose last axis is the position (cut to the batch's length).
    """

    def __init__(self, arrays: dict[str, np.ndarray], global_batch_size: int, *, bucket_lengths,
                 group_batches: int = 16, sequence_keys=SEQUENCE_KEYS, **kwargs):
        if "attention_mask" not in arrays:
            raise ValueError("length bucketing needs the attention_mask array to find each row's length.")
        max_len = int(arrays["attention_mask"].shape[-1])
        if int(group_batches) < 1:
            raise ValueError(f"data.bucket_group_batches={group_batches} must be >= 1.")
        self.buckets = check_bucket_lengths(bucket_lengths, max_len)
        self.group_batches = int(group_batches)
        self.sequence_keys = tuple(k for k in sequence_keys if k in arrays)
        for k in self.sequence_keys:
            if arrays[k].shape[-1] != max_len:
                raise ValueError(f"{k} has {arrays[k].shape[-1]} positions but attention_mask {max_len}.")
        super().__init__(arrays, global_batch_size, shuffle=True, drop_remainder=False, **kwargs)
        self.lengths = row_lengths(arrays["attention_mask"])
        self.manifest.update(bucket_lengths=list(self.buckets), bucket_group_batches=self.group_batches)
        self._plan_epoch, self._plan = None, None

    def order(self) -> dict:
        return {"bucket_lengths": list(self.buckets), "bucket_group_batches": self.group_batches}

    def bucket_of(self, length: int) -> int:
        """The smallest bucket ``>= length``."""
        return self.buckets[int(np.searchsorted(self.buckets, max(int(length), 1)))]

    def epoch_plan(self, epoch: int) -> tuple[list[np.ndarray], list[int]]:
        """Epoch ``epoch``'s global batches in order: their row indices and their lengths."""
        if self._plan_epoch != epoch:
            perm = self._permutation(epoch)
            chunk = self.group_batches * self.batch
            batches = []
            for start in range(0, len(perm), chunk):
                part = perm[start:start + chunk]
                part = part[np.argsort(self.lengths[part], kind="stable")]
                batches += [part[i:i + self.batch] for i in range(0, len(part), self.batch)]
            order = np.random.default_rng([self.seed, epoch, 1]).permutation(len(batches))
            batches = [batches[i] for i in order]
            self._plan = (batches, [self.bucket_of(self.lengths[b].max()) for b in batches])
            self._plan_epoch = epoch
        return self._plan

    def batch_at(self, step: int) -> dict[str, np.ndarray]:
        """This process's rows of global batch ``step``, sequence arrays ``[b, ..., bucket]``."""
        epoch, s = divmod(step, self.steps_per_epoch)
        batches, lengths = self.epoch_plan(epoch)
        out = self.rows(batches[s])
        for k in self.sequence_keys:
            out[k] = np.ascontiguousarray(out[k][..., :lengths[s]])
        return out

    def padding_report(self, epoch: int = 0) -> dict:
        """Pad positions / all positions of the training data: stored at ``max_seq_length`` and
        as epoch ``epoch``'s bucketed batches compute them (padding rows of the last batch count
        as padding), with the number of batches per length."""
        mask = self.arrays["attention_mask"]
        per_row = int(np.prod(mask.shape[1:-1], dtype=np.int64))  # choices of a multiple-choice row
        _, lengths = self.epoch_plan(epoch)
        computed = sum(lengths) * self.batch * per_row
        counts = {str(b): int(sum(1 for x in lengths if x == b)) for b in self.buckets}
        return {"at_max_seq_length": round(padding_fraction(mask), 4),
                "bucketed": round(float(1.0 - np.count_nonzero(mask) / computed), 4),
                "bucket_lengths": list(self.buckets), "bucket_group_batches": self.group_batches,
                "batches_per_length": counts, "epoch": int(epoch)}
