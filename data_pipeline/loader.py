"""The per-host pretraining loader: deterministic epoch order, disjoint host slices, exact resume.

Policy (see docs/data_pipeline.md):

* **Order.** Epoch ``e`` visits all examples in the permutation drawn by
  ``np.random.default_rng([seed, e])``; global batch ``s`` of the epoch is
  ``perm[s * B : (s + 1) * B]`` and process ``p`` takes rows
  ``[p * B / P, (p + 1) * B / P)`` of it, so hosts never overlap and their
  union is the single-process batch.
* **Epoch boundary.** A batch never spans two epochs. Step ``k`` is batch
  ``k % steps_per_epoch`` of epoch ``k // steps_per_epoch``; iteration runs
  for ``num_epochs`` epochs (forever if None).
* **Final partial batch.** ``drop_remainder=True`` (default) drops the last
  ``num_examples % B`` examples of each epoch's permutation (a different
  set each epoch). ``drop_remainder=False`` yields a last batch padded to
  full shape with empty rows (``attention_mask`` 0, ``masked_lm_weights`` 0)
  and adds ``example_weight`` float32 ``[local_batch]`` (1 real, 0 padding)
  to every batch so the NSP loss can ignore the padding.
* **Dynamic masking.** Example ``i`` of epoch ``e`` is masked with the
  counter-based key ``(seed, e, i)`` (``masking``), so the mask is the same
  whatever the process count, batch or resume point, and fresh each epoch.
* **Resume.** ``state()`` is the next step to yield; ``restore(state)`` or
  ``start_step=k`` yields batch ``k`` next; nothing earlier is replayed.
* **Packing** (``packing=True``): rows hold several instances each; see
  ``data_pipeline.packing`` for the layout, the plan and its resume rules.
"""

from __future__ import annotations

import os
import queue
import threading

import numpy as np

from data_pipeline import masking, packing as packing_lib, shards

_FIELDS_OUT = (
    "input_ids",
    "attention_mask",
    "token_type_ids",
    "masked_lm_positions",
    "masked_lm_ids",
    "masked_lm_weights",
    "next_sentence_label",
)


def read_vocab_file(path: str) -> dict[str, int]:
    with open(path, encoding="utf-8") as f:
        return {line.rstrip("\n"): i for i, line in enumerate(f)}


def read_shard_vocab(directory: str, manifest: dict) -> dict[str, int]:
    """The shards' own ``vocab.txt`` (token -> id), checked against the digest their manifest
    records: one replaced since (another model's, by a copy or a convert into the folder) would
    give their ids other words, or ids past its end.

    Raises:
      shards.ShardError: naming the file, both sizes and what to do.
    """
    vocab_path = os.path.join(directory, shards.VOCAB)
    vocab = read_vocab_file(vocab_path)
    if shards.vocab_hash(list(vocab)) != manifest["vocab_hash"]:
        raise shards.ShardError(
            f"{vocab_path} ({len(vocab)} tokens) is not the vocabulary these shards were built with "
            f"({manifest.get('vocab_size', '?')} tokens, sha256 {manifest['vocab_hash'][:16]}... in manifest.json), "
            f"so their token ids would mean other words. Put back the vocab.txt they were built with, or build shards "
            f"with the new one into a new folder: bert-jax data build --vocab NEW_VOCAB --output NEW_DIR ...")
    return vocab


class PretrainingLoader:
    """Iterable of per-host numpy batches from built shards.

    Each batch: ``input_ids``, ``attention_mask``, ``token_type_ids`` int32
    ``[local_batch, max_seq_length]``; ``masked_lm_positions``,
    ``masked_lm_ids`` int32 and ``masked_lm_weights`` float32
    ``[local_batch, max_predictions_per_seq]``; ``next_sentence_label`` int32
    ``[local_batch]``; with ``local_batch = global_batch_size // process_count``.
    With ``packing=True`` a batch row holds several instances: the fields of
    ``data_pipeline.packing.assemble_rows`` (``segment_ids``, ``position_ids``,
    ``next_sentence_positions/label/weight`` ``[local_batch, max_instances_per_row]``,
    ``masked_lm_*`` ``[local_batch, max_predictions_per_row]``).

    Args:
      shard_dir_or_manifest: a built directory or its ``manifest.json``.
      global_batch_size: examples per step over all processes.
      process_index, process_count: this host and the number of hosts.
      seed: epoch permutations and dynamic masks derive from it.
      dynamic_masking: None = as built; True needs shards built with
        ``--dynamic-masking``; False on such shards masks once (epoch-independent).
      masked_lm_prob, max_predictions_per_seq, whole_word_masking: dynamic masking
        options (default: the build's).
      prefetch: batches prepared ahead in a background thread (0 = none).
      drop_remainder: see the module docstring.
      start_step: the first step to yield.
      num_epochs: stop after this many epochs (None = forever).
      verify_checksums: sha256-check every shard on open (sizes are always checked).
      return_example_index: add ``example_index`` int64 ``[local_batch]`` (-1 for padding;
        ``[local_batch, max_instances_per_row]`` when packing).
      packing: pack several instances per row (see ``data_pipeline.packing``).
      max_instances_per_row, max_predictions_per_row: packed row capacities (None or 0 = the
        defaults of ``data_pipeline.packing``).
      packing_window: instances planned together (None = max(1024, 4 * global_batch_size));
        part of the data order, so resuming needs the same value.
    """

    def __init__(
        self,
        shard_dir_or_manifest: str,
        global_batch_size: int,
        *,
        process_index: int = 0,
        process_count: int = 1,
        seed: int = 0,
        dynamic_masking: bool | None = None,
        masked_lm_prob: float | None = None,
        max_predictions_per_seq: int | None = None,
        whole_word_masking: bool | None = None,
        prefetch: int = 2,
        drop_remainder: bool = True,
        start_step: int = 0,
        num_epochs: int | None = None,
        verify_checksums: bool = True,
        return_example_index: bool = False,
        packing: bool = False,
        max_instances_per_row: int | None = None,
        max_predictions_per_row: int | None = None,
        packing_window: int | None = None,
    ):
        self.directory, self.manifest = shards.load_manifest(shard_dir_or_manifest)
        m = self.manifest
        if global_batch_size < 1 or global_batch_size % process_count:
            raise ValueError(f"global_batch_size {global_batch_size} must be a positive multiple of process_count {process_count}")
        if not 0 <= process_index < process_count:
            raise ValueError(f"process_index {process_index} is not in [0, {process_count})")
        built_dynamic = m["masking"] == "dynamic"
        self.dynamic_masking = built_dynamic if dynamic_masking is None else dynamic_masking
        if self.dynamic_masking and not built_dynamic:
            raise ValueError(f"{self.directory} was built with static masking; rebuild it with --dynamic-masking to mask in the loader")
        max_pred = max_predictions_per_seq or m["max_predictions_per_seq"]
        if not built_dynamic and max_pred != m["max_predictions_per_seq"]:
            raise ValueError(f"static shards have max_predictions_per_seq={m['max_predictions_per_seq']}, not {max_pred}")
        self.mask_config = masking.MaskingConfig(
            masked_lm_prob or m["masked_lm_prob"],
            max_pred,
            m["whole_word_masking"] if whole_word_masking is None else whole_word_masking,
        )
        self.masks_in_loader = built_dynamic
        vocab = read_shard_vocab(self.directory, m)
        self.vocab = masking.VocabInfo.from_vocab(vocab, os.path.join(self.directory, shards.VOCAB))

        self._shards = [shards.open_shard(self.directory, s, verify_checksums) for s in m["shards"]]
        seq = m["max_seq_length"]
        for info, fields in zip(m["shards"], self._shards):
            if fields["input_ids"].shape[1:] != (seq,):
                raise shards.ShardError(f"shard {info['file']} has rows of {fields['input_ids'].shape[1:]}, expected ({seq},)")
        counts = np.array([s["num_examples"] for s in m["shards"]], np.int64)
        self._offsets = np.concatenate([[0], np.cumsum(counts)])
        self.num_examples = int(self._offsets[-1])
        self.global_batch_size = global_batch_size
        self.process_index, self.process_count = process_index, process_count
        self.local_batch_size = global_batch_size // process_count
        self.seed = seed
        self.drop_remainder = drop_remainder
        self.num_epochs = num_epochs
        self.return_example_index = return_example_index
        self.steps_per_epoch = (
            self.num_examples // global_batch_size if drop_remainder else -(-self.num_examples // global_batch_size)
        )
        self.packing: packing_lib.PackingConfig | None = None
        self._packed: packing_lib.PackedStream | None = None
        self._cursor: packing_lib.Cursor | None = None
        if packing:
            k = max_instances_per_row or packing_lib.default_max_instances_per_row(seq)
            self.packing = packing_lib.PackingConfig(
                max_seq_length=seq,
                max_instances_per_row=k,
                max_predictions_per_row=max_predictions_per_row or packing_lib.default_max_predictions_per_row(
                    seq, self.mask_config.masked_lm_prob, max_pred, k),
                window_size=packing_window or max(1024, 4 * global_batch_size),
            )
            self.packing.validate(max_pred)
            self._packed = packing_lib.PackedStream(
                self._permutation, self._plan_inputs, self._instances, self.num_examples, global_batch_size,
                (process_index * self.local_batch_size, self.local_batch_size), self.packing,
                self.vocab.pad_id, drop_remainder, num_epochs)
            # Rows per epoch depend on the packing; the count is known only once an epoch is planned.
            self.steps_per_epoch = None
        elif self.steps_per_epoch == 0:
            raise ValueError(f"the {self.num_examples} examples in {self.directory} make no full batch of {global_batch_size}; "
                             f"use a global batch of at most {self.num_examples} (--config.global_batch_size), "
                             "build more examples (more input or a higher --dupe-factor), or, calling "
                             "PretrainingLoader directly, drop_remainder=False")
        self._prefetch = prefetch
        self._step = start_step
        self._perm_cache: tuple[int, np.ndarray] | None = None
        self._thread: threading.Thread | None = None
        self._queue: queue.Queue | None = None
        self._stop = threading.Event()
        if self._packed is not None:
            self._cursor = self._packed.seek(start_step)

    # --- deterministic batch construction ------------------------------------------

    def _permutation(self, epoch: int) -> np.ndarray:
        cache = self._perm_cache  # one read: the prefetch thread may replace it concurrently
        if cache is None or cache[0] != epoch:
            cache = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.num_examples))
            self._perm_cache = cache
        return cache[1]

    def local_indices(self, step: int) -> np.ndarray:
        """Global example indices of this process's rows at ``step`` (-1 = padding) ``[local_batch]``."""
        epoch, s = divmod(step, self.steps_per_epoch)
        perm = self._permutation(epoch)
        rows = perm[s * self.global_batch_size : (s + 1) * self.global_batch_size]
        if len(rows) < self.global_batch_size:
            rows = np.concatenate([rows, np.full(self.global_batch_size - len(rows), -1, rows.dtype)])
        lo = self.process_index * self.local_batch_size
        return rows[lo : lo + self.local_batch_size]

    def _gather(self, idx: np.ndarray, names) -> dict[str, np.ndarray]:
        valid = idx >= 0
        shard_id = np.searchsorted(self._offsets, np.where(valid, idx, 0), side="right") - 1
        first = self._shards[0]
        out = {n: np.zeros((len(idx), *first[n].shape[1:]), first[n].dtype) for n in names}
        for s in np.unique(shard_id[valid]):
            sel = valid & (shard_id == s)
            rows = idx[sel] - self._offsets[s]
            for n in names:
                out[n][sel] = self._shards[s][n][rows]
        return out

    def _instances(self, epoch: int, idx: np.ndarray) -> dict[str, np.ndarray]:
        """Unpacked, masked rows of global examples ``idx`` [n] (-1 = an empty row) in ``epoch``."""
        stored = ["input_ids", "attention_mask", "token_type_ids", "next_sentence_label"]
        if not self.masks_in_loader:
            stored += ["masked_lm_positions", "masked_lm_ids", "masked_lm_weights"]
        batch = self._gather(idx, stored)
        valid = idx >= 0
        if not valid.all():
            batch["input_ids"][~valid] = self.vocab.pad_id
        if self.masks_in_loader:
            mask_epoch = epoch if self.dynamic_masking else 0
            keys = masking.example_keys(masking.seed_key(self.seed, mask_epoch, 3), np.maximum(idx, 0))
            masked = masking.mask_batch(batch["input_ids"], keys, self.vocab, self.mask_config)
            masked["masked_lm_weights"][~valid] = 0.0
            batch.update(masked)
        return {n: batch[n].astype(np.float32 if n == "masked_lm_weights" else np.int32, copy=False) for n in _FIELDS_OUT}

    def _plan_inputs(self, epoch: int, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tokens and masked positions (an upper bound under dynamic whole-word masking) of ``idx`` [n]."""
        if self.masks_in_loader:
            fields = self._gather(idx, ["attention_mask", "input_ids"])
            mask_epoch = epoch if self.dynamic_masking else 0
            keys = masking.example_keys(masking.seed_key(self.seed, mask_epoch, 3), idx)
            predictions = masking.num_to_mask(self.vocab.ordinary[fields["input_ids"]].sum(1), keys, self.mask_config)
        else:
            fields = self._gather(idx, ["attention_mask", "masked_lm_weights"])
            predictions = (fields["masked_lm_weights"] > 0).sum(1)
        return fields["attention_mask"].astype(np.int64).sum(1), predictions

    def batch_at(self, step: int) -> dict[str, np.ndarray]:
        """The batch of ``step`` for this process (pure function of step and settings; when packing,
        it replays the plans from step 0, so iterate instead for a sequential read)."""
        if self._packed is not None:
            out = self._packed.next_batch(self._packed.seek(step), self.return_example_index)
            if out is None:
                raise IndexError(f"step {step} is past the last of num_epochs={self.num_epochs}")
            return out[0]
        epoch = step // self.steps_per_epoch
        idx = self.local_indices(step)
        out = self._instances(epoch, idx)
        valid = idx >= 0
        if not self.drop_remainder:
            out["example_weight"] = valid.astype(np.float32)
        if self.return_example_index:
            out["example_index"] = idx.astype(np.int64)
        return out

    # --- iteration with background prefetch --------------------------------------------

    def _end_step(self) -> int | None:
        return None if self.num_epochs is None else self.num_epochs * self.steps_per_epoch

    def _position(self):
        """The next batch's position: a step, or a ``packing.Cursor`` when packing."""
        return self._cursor if self._packed is not None else self._step

    def _set_position(self, position) -> None:
        if self._packed is not None:
            self._cursor = position
        else:
            self._step = position

    def _batch_from(self, position):
        """``(batch, position after it)``, or None past the last batch."""
        if self._packed is not None:
            return self._packed.next_batch(position, self.return_example_index)
        end = self._end_step()
        if end is not None and position >= end:
            return None
        return self.batch_at(position), position + 1

    def _produce(self, first, q: queue.Queue, stop: threading.Event) -> None:
        position = first
        try:
            while not stop.is_set():
                item = self._batch_from(position)
                if item is None:
                    break
                batch, position = item
                while not stop.is_set():
                    try:
                        q.put((position, batch), timeout=0.1)
                        break
                    except queue.Full:
                        continue
            if not stop.is_set():
                q.put((None, None))
        except BaseException as err:  # surfaced to the consumer, not swallowed
            q.put((None, err))

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        if self._prefetch <= 0:
            item = self._batch_from(self._position())
            if item is None:
                raise StopIteration
            batch, after = item
            self._set_position(after)
            return batch
        if self._thread is None:
            self._stop = threading.Event()
            self._queue = queue.Queue(maxsize=self._prefetch)
            self._thread = threading.Thread(target=self._produce, args=(self._position(), self._queue, self._stop),
                                            daemon=True)
            self._thread.start()
        after, batch = self._queue.get()
        if after is None:
            self._shutdown()
            if isinstance(batch, BaseException):
                raise batch
            raise StopIteration
        self._set_position(after)
        return batch

    def _shutdown(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self._queue = None

    # --- state ------------------------------------------------------------------------

    def _packing_state(self) -> dict | None:
        """The packing settings that determine the data order (None when not packing)."""
        if self.packing is None:
            return None
        return {"max_instances_per_row": self.packing.max_instances_per_row,
                "max_predictions_per_row": self.packing.max_predictions_per_row,
                "window_size": self.packing.window_size}

    def state(self) -> dict:
        """JSON-serialisable position: the next step to yield, and what it depends on.

        When packing, also the packed position (``window``, ``row`` of ``epoch``) and the
        packing settings, which ``restore`` checks."""
        common = {"seed": self.seed, "global_batch_size": self.global_batch_size, "num_examples": self.num_examples}
        if self._packed is not None:
            c = self._cursor
            return {"step": c.step, "epoch": c.epoch, "window": c.window, "row": c.row,
                    "packing": self._packing_state(), **common}
        return {
            "step": self._step,
            "epoch": self._step // self.steps_per_epoch,
            "step_in_epoch": self._step % self.steps_per_epoch,
            **common,
        }

    def restore(self, state: dict) -> None:
        """Continues from ``state`` (from ``state()``, possibly of a loader with another process_count)."""
        for key in ("seed", "global_batch_size", "num_examples"):
            if key in state and state[key] != getattr(self, key):
                raise ValueError(f"loader state has {key}={state[key]} but this loader has {getattr(self, key)}; resuming would change the data order")
        saved = state.get("packing")
        if saved != self._packing_state():
            def describe(p):
                return "no packing" if p is None else "packing " + ", ".join(f"{k}={v}" for k, v in sorted(p.items()))
            raise ValueError(
                f"loader state was saved with {describe(saved)} but this loader has "
                f"{describe(self._packing_state())}; resuming would change the data order "
                "(set data.packing / data.max_instances_per_row / data.max_predictions_per_row as in the run that saved it)")
        self._shutdown()
        if self._packed is not None:
            self._cursor = packing_lib.Cursor(int(state["step"]), int(state["epoch"]), int(state["window"]),
                                              int(state["row"]))
        else:
            self._step = int(state["step"])

    def close(self) -> None:
        self._shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
