"""Metric accumulation and writing: TensorBoard, ``metrics.jsonl`` and console.

``MetricWriter`` sends one dict of scalars per logged step to
  * TensorBoard (tensorboardX) under ``W/tensorboard``, names namespaced
    ``train/loss``, ``eval/mlm_accuracy``, ...;
  * ``W/metrics.jsonl``: one JSON object per logged step (``{"step": s, ...}``),
    appended and flushed, for scripts and plots;
  * the console: a tqdm progress bar with rate and ETA plus a log line.
Only process 0 writes; other processes get a writer whose methods do nothing.

``Accumulator`` adds device scalars across steps without forcing a device
sync each step; values are fetched once per log interval.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from typing import Any

import jax

log = logging.getLogger("bert_jax")


class Accumulator:
    """Running sums of scalar metrics (device arrays stay on device until ``mean``)."""

    def __init__(self):
        self._sums: dict[str, Any] = {}
        self.count = 0

    def add(self, metrics: dict) -> None:
        for k, v in metrics.items():
            self._sums[k] = v if k not in self._sums else self._sums[k] + v
        self.count += 1

    def mean(self) -> dict[str, float]:
        host = jax.device_get(self._sums)
        return {k: float(v) / max(self.count, 1) for k, v in host.items()}

    def reset(self) -> None:
        self._sums, self.count = {}, 0


def _summary_writer_class():
    """``tensorboardX.SummaryWriter``, imported without importing PyTorch.

    tensorboardX imports torch whenever it is installed (about 1 s, in every run of a Hugging Face
    environment) only to accept torch tensors; this writer is given Python floats. While
    ``sys.modules["torch"]`` is None, ``import torch`` raises ImportError, which tensorboardX
    expects; the entry is removed again, so a later ``import torch`` works as usual. Not
    thread-safe: for that moment ``import torch`` fails in every thread, so the writer is made
    before any thread that may import torch starts (the trainer makes it on the main thread).
    """
    if "torch" in sys.modules:  # already paid for (or already blocked by someone else)
        from tensorboardX import SummaryWriter
        return SummaryWriter
    try:
        sys.modules["torch"] = None
        from tensorboardX import SummaryWriter
    finally:
        if sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]
    return SummaryWriter


def _jsonable(v: Any) -> Any:
    v = float(v)
    return v if math.isfinite(v) else str(v)


class MetricWriter:
    """Writes scalars for process 0; a no-op elsewhere.

    Args:
      workdir: run directory (``metrics.jsonl`` and ``tensorboard/`` go there).
      total_steps: for the progress bar's ETA.
      initial_step: where the run (re)starts.
      enabled: write at all (default: ``jax.process_index() == 0``).
    """

    def __init__(self, workdir: str, total_steps: int, initial_step: int = 0,
                 enabled: bool | None = None, progress: bool = True):
        self.enabled = (jax.process_index() == 0) if enabled is None else enabled
        self._tb = None
        self._jsonl_path = None
        self._bar = None
        if not self.enabled:
            return
        os.makedirs(workdir, exist_ok=True)
        # Opened for each row, not held: the trainer may replace the file between rows (a redone
        # evaluation's rows), and a held handle would go on writing to the replaced one.
        self._jsonl_path = os.path.join(workdir, "metrics.jsonl")
        open(self._jsonl_path, "a", encoding="utf-8").close()
        try:
            self._tb = _summary_writer_class()(os.path.join(workdir, "tensorboard"))
        except ImportError:  # tensorboardX is a dependency; keep jsonl/console if absent
            log.warning("tensorboardX is not installed; TensorBoard summaries are disabled.")
        if progress:
            from bert_jax.console import progress_bar
            # In a log file (no terminal) a redraw per step would flood it: progress_bar draws
            # a line every 30 s there, which still gives rate and ETA.
            self._bar = progress_bar(total=total_steps, initial=initial_step, unit="step", dynamic_ncols=True,
                                     desc="train")

    def write(self, step: int, scalars: dict[str, float], prefix: str = "train") -> None:
        if not self.enabled:
            return
        record = {"step": int(step)}
        record.update({f"{prefix}/{k}": _jsonable(v) for k, v in scalars.items()})
        with open(self._jsonl_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for k, v in scalars.items():
                self._tb.add_scalar(f"{prefix}/{k}", float(v), int(step))
            self._tb.flush()
        shown = ", ".join(f"{k}={v:.4g}" for k, v in scalars.items()
                          if k in ("loss", "mlm_accuracy", "nsp_accuracy", "seq_per_s", "examples_per_s",
                                   "real_tokens_per_s", "mfu", "learning_rate")
                          # a fine-tuning evaluation's own metrics (accuracy, f1, exact_match, ...)
                          or (prefix != "train"  # MNLI's keys are "dev_matched/accuracy", ...
                              and not k.rsplit("/", 1)[-1].startswith(("baseline_", "skipped"))))
        log.info("%s step %d: %s", prefix, step, shown)
        if self._bar is not None and prefix == "train":
            self._bar.set_postfix_str(shown, refresh=False)

    def advance(self, step: int) -> None:
        if self._bar is not None:
            self._bar.update(max(0, step - self._bar.n))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._tb is not None:
            self._tb.close()


class Throughput:
    """Step time, sequences/s, tokens/s and MFU over a logging interval; with the batches'
    counts, also ``real_tokens_per_s`` (non-padding positions) and, for packed rows,
    ``examples_per_s`` (instances; ``seq_per_s`` counts rows).

    ``flops_per_step`` is for rows of ``seq_length`` positions. When batches are shorter (length-
    bucketed fine-tuning), ``tick(seq_length)`` says so and ``flops_at(seq_length)`` gives that
    step's FLOPs, so tokens/s and MFU count the positions actually computed. ``exclude(seconds)``
    leaves evaluation time out of the interval it fell in; ``start_over``
    leaves out everything so far (a process's first step, which includes its compile) and reports
    those seconds once, as ``first_step_s``.
    """

    def __init__(self, global_batch_size: int, seq_length: int, flops_per_step: float,
                 num_devices: int, peak_flops_per_device: float | None, flops_at=None):
        self.batch, self.seq = global_batch_size, seq_length
        self.flops, self.devices, self.peak = flops_per_step, num_devices, peak_flops_per_device
        self.flops_at = flops_at
        self._t0, self._steps, self._tokens, self._flops = time.perf_counter(), 0, 0, 0.0
        self._counted: dict[str, int] = {}
        self._excluded = 0.0
        self._first: float | None = None

    def start_over(self) -> None:
        """Drop the interval so far from the rates; its seconds are reported by the next ``read``
        as ``first_step_s`` (call once the first step's work is complete)."""
        now = time.perf_counter()
        self._first = now - self._t0 - self._excluded
        self._t0, self._steps, self._tokens, self._flops, self._excluded = now, 0, 0, 0.0, 0.0
        self._counted = {}

    def tick(self, seq_length: int | None = None, counts: dict[str, int] | None = None) -> None:
        """One step of rows of ``seq_length`` positions; ``counts`` (``GlobalBatches.counts``) adds
        what the rows hold: ``real_tokens`` (non-padding) and ``examples`` (packed instances),
        and ``positions`` when a row is not ``seq_length`` positions (``choices`` of them)."""
        seq = self.seq if seq_length is None else int(seq_length)
        counts = dict(counts or {})
        self._steps += 1
        self._tokens += counts.pop("positions", self.batch * seq)
        self._flops += self.flops if seq == self.seq or self.flops_at is None else self.flops_at(seq)
        for key, value in counts.items():
            self._counted[key] = self._counted.get(key, 0) + int(value)

    def exclude(self, seconds: float) -> None:
        """Leave ``seconds`` of the current interval out of its rates (time spent evaluating)."""
        self._excluded += max(0.0, float(seconds))

    def read(self) -> dict[str, float]:
        """Figures since the last ``read`` (call after the metrics were fetched,
        so the device work of the interval is complete); ``{}`` when no step ran."""
        now = time.perf_counter()
        elapsed = max(now - self._t0 - self._excluded, 1e-12)
        steps, tokens, flops, counted = self._steps, self._tokens, self._flops, self._counted
        self._t0, self._steps, self._tokens, self._flops, self._excluded = now, 0, 0, 0.0, 0.0
        self._counted = {}
        first, self._first = ({} if self._first is None else {"first_step_s": self._first}), None
        if not steps:
            return first
        dt = elapsed / steps
        out = {**first, "step_time_s": dt, "seq_per_s": self.batch / dt, "tokens_per_s": tokens / elapsed}
        # rows and positions computed, padding included, above; what they held here: the gain
        # of packing or bucketing shows in these, not in those
        out.update({f"{key}_per_s": value / elapsed for key, value in counted.items()})
        if self.peak:
            out["mfu"] = flops / elapsed / (self.devices * self.peak)
        return out


def to_host(metrics: dict) -> dict[str, float]:
    return {k: float(v) for k, v in jax.device_get(metrics).items()}
