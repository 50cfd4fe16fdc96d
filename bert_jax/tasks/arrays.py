"""Per-process batches over in-memory arrays: the fine-tuning loader. No JAX import.

Follows the ``PretrainingLoader`` interface the training loop uses:
``__iter__`` yields this process's rows of each global batch as numpy dicts,
``state()``/``restore()`` give exact resume, ``steps_per_epoch`` and
``manifest`` describe the data.

Global batch ``s`` of epoch ``e`` is ``perm_e[s * B : (s + 1) * B]`` with
``perm_e`` drawn from ``np.random.default_rng([seed, e])`` (the identity when
``shuffle=False``); process ``p`` of ``P`` takes rows ``[p * B / P, (p + 1) * B / P)``.
Every batch also carries ``row_id`` int32 ``[b]`` (the row's index, -1 on
padding) and ``row_weight`` float32 ``[b]`` (1, or 0 on padding), so an
evaluation pass over a split that is not a batch multiple predicts every row
exactly once and counts padding nowhere.
"""

from __future__ import annotations

import numpy as np

IGNORE_LABEL = -100
# loader settings that change the batch order (``ArrayLoader.order``), checked on restore
ORDER_FIELDS = ("bucket_lengths", "bucket_group_batches")


class ArrayLoader:
    """Args:
      arrays: ``{name: [num_rows, ...]}``; every array has the same first dimension.
      global_batch_size: rows per step over all processes (B).
      process_index, process_count: this host (p) and the number of hosts (P).
      seed: epoch permutations derive from it.
      shuffle: permute each epoch (training) or keep the order (evaluation).
      drop_remainder: drop the last partial batch of each epoch (training); otherwise pad it.
      num_epochs: stop after this many epochs (None = forever).
      manifest: description of the data kept for the run.
    """

    def __init__(self, arrays: dict[str, np.ndarray], global_batch_size: int, *, process_index: int = 0,
                 process_count: int = 1, seed: int = 0, shuffle: bool = True, drop_remainder: bool = True,
                 num_epochs: int | None = None, manifest: dict | None = None):
        sizes = {k: len(v) for k, v in arrays.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"arrays of different lengths: {sizes}")
        self.num_examples = int(next(iter(sizes.values())))
        if global_batch_size % process_count:
            raise ValueError(f"global_batch_size={global_batch_size} is not divisible by the "
                             f"{process_count} processes.")
        self.arrays = dict(arrays)
        self.arrays.setdefault("row_weight", np.ones((self.num_examples,), np.float32))
        self.arrays["row_id"] = np.arange(self.num_examples, dtype=np.int32)
        self.batch, self.seed = int(global_batch_size), int(seed)
        self.process_index, self.process_count = process_index, process_count
        self.shuffle, self.drop_remainder, self.num_epochs = shuffle, drop_remainder, num_epochs
        full, rest = divmod(self.num_examples, self.batch)
        self.steps_per_epoch = full if drop_remainder else full + (rest > 0)
        if self.steps_per_epoch == 0:
            raise ValueError(f"{self.num_examples} examples make no batch of global_batch_size="
                             f"{self.batch}; lower global_batch_size.")
        self.manifest = {**(manifest or {}), "num_examples": self.num_examples,
                         "steps_per_epoch": self.steps_per_epoch}
        self._step = 0

    def _permutation(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.num_examples)
        return np.random.default_rng([self.seed, epoch]).permutation(self.num_examples)

    def batch_at(self, step: int) -> dict[str, np.ndarray]:
        """This process's rows of global batch ``step`` (counted over epochs)."""
        epoch, s = divmod(step, self.steps_per_epoch)
        return self.rows(self._permutation(epoch)[s * self.batch:(s + 1) * self.batch])

    def rows(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """This process's share of the global batch made of rows ``idx`` (``<= B`` indices; the
        rest of the ``B`` are padding rows: present for the shapes, counted nowhere)."""
        local = self.batch // self.process_count
        rows = np.full((self.batch,), -1, np.int64)
        rows[:len(idx)] = idx
        rows = rows[self.process_index * local:(self.process_index + 1) * local]
        real = rows >= 0
        out = {k: v[np.where(real, rows, 0)] for k, v in self.arrays.items()}
        if not real.all():
            out["row_weight"] = np.where(real, out["row_weight"], 0).astype(np.float32)
            out["row_id"] = np.where(real, out["row_id"], -1).astype(np.int32)
            for name in ("labels", "start_positions", "end_positions"):
                if name in out:
                    pad = real.reshape((-1,) + (1,) * (out[name].ndim - 1))
                    out[name] = np.where(pad, out[name], IGNORE_LABEL).astype(out[name].dtype)
        return out

    def __iter__(self):
        end = None if self.num_epochs is None else self.num_epochs * self.steps_per_epoch
        while end is None or self._step < end:
            batch = self.batch_at(self._step)
            self._step += 1
            yield batch

    def order(self) -> dict:
        """What besides the seed decides the batch order (a bucketed loader's settings); a saved
        position only resumes exactly under the same."""
        return {}

    def state(self) -> dict:
        """The next step to yield (JSON-serialisable)."""
        return {"step": self._step, "seed": self.seed, "num_examples": self.num_examples, **self.order()}

    def restore(self, state: dict) -> None:
        if state.get("num_examples", self.num_examples) != self.num_examples:
            raise ValueError(f"the saved loader position is for {state['num_examples']} examples but the "
                             f"data now has {self.num_examples}; the data set changed since the checkpoint "
                             "(check data.* in the config), or use a new --workdir.")
        saved = {k: state[k] for k in ORDER_FIELDS if k in state}
        if saved != self.order():
            def describe(order):
                return ", ".join(f"data.{k}={tuple(v) if isinstance(v, list) else v}" for k, v in order.items()) \
                    or "data.bucket_lengths=() (no bucketing)"
            raise ValueError(f"the saved loader position was taken with {describe(saved)} but the config now has "
                             f"{describe(self.order())}, which orders the batches differently; set the same to "
                             "resume exactly, or use a new --workdir.")
        self._step = int(state["step"])
