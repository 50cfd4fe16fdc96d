"""What the training loop does besides stepping, as small hook objects.

``bert_jax.train.fit`` calls each hook as ``hook(step, state, metrics)`` after
every step and ``hook.end(step, state)`` once when the loop ends. A hook acts
only on its own steps (``every``), so the hot loop never waits on the host:
metrics stay on the device between log steps, where they are fetched in one
transfer, checked for NaN/Inf (naming the first bad step) and written.

  MetricsHook     fetch, check, average and write metrics every ``log_every_steps``
  EvalHook        evaluate every ``eval_every_steps`` (and at the end when asked)
  CheckpointHook  save every ``checkpoint.every_steps`` -- only after the metrics up to
                  that step were checked finite -- and at the end
  StopHook        SIGTERM / SIGINT: save at the current step and stop; several processes
                  agree on the flag every ``stop_check_every_steps`` (default: at log steps)
"""

from __future__ import annotations

import logging
import math
import signal

import jax

from bert_jax.train import NonFiniteLoss, StopTraining

log = logging.getLogger("bert_jax")

# Metrics whose non-finite value means the parameters can no longer be trusted.
_FINITE_KEYS = ("loss", "grad_norm", "param_norm")


class Hook:
    """Base: ``every`` steps (0 = never during the loop)."""

    every: int = 0

    def due(self, step: int) -> bool:
        return bool(self.every) and step % self.every == 0

    def __call__(self, step: int, state, metrics) -> None:
        pass

    def end(self, step: int, state) -> None:
        pass


class MetricsHook(Hook):
    """Keeps each step's metrics on device until a log step (or a ``verify`` call).

    Args:
      writer: ``bert_jax.metrics.MetricWriter``.
      throughput: ``bert_jax.metrics.Throughput`` (ticked every step, read at log steps). The
        process's first step is not ticked: it waits for that step and starts the clock over, so
        its compile is reported as ``first_step_s`` instead of as a slow interval.
      seq_length: returns the positions per row of the step just run (None: the full length).
      counts: returns what that step's rows held (``GlobalBatches.counts``: positions, real
        tokens, packed instances), for the throughput's ``tokens_per_s``, ``real_tokens_per_s``
        and ``examples_per_s``.
      every: log interval; the last step (``total_steps``) is always logged.
    """

    def __init__(self, writer, throughput, every: int, total_steps: int, seq_length=lambda: None,
                 counts=lambda: None):
        self.writer, self.throughput, self.every, self.total = writer, throughput, every, total_steps
        self.seq_length, self.counts = seq_length, counts
        self.pending: list[tuple[int, dict]] = []  # (step, metrics), device or host values
        self.last: dict[str, float] = {}
        self.first = True

    def __call__(self, step, state, metrics):
        self.pending.append((step, metrics))
        if self.first:  # one host sync per process
            self.first = False
            jax.block_until_ready(metrics)
            self.throughput.start_over()
        else:
            self.throughput.tick(self.seq_length(), self.counts())
        self.writer.advance(step)
        if self.due(step) or step == self.total:
            self.write(step)

    def verify(self) -> None:
        """Fetch what is pending (one transfer) and raise ``NonFiniteLoss`` at the first bad step."""
        if not self.pending:
            return
        steps = [s for s, _ in self.pending]
        host = jax.device_get([m for _, m in self.pending])
        self.pending = list(zip(steps, host))
        for step, values in self.pending:
            for key in _FINITE_KEYS:
                if key in values and not math.isfinite(float(values[key])):
                    raise NonFiniteLoss(step, key, float(values[key]))

    def write(self, step: int) -> None:
        self.verify()
        if not self.pending:
            return
        keys = self.pending[-1][1].keys()
        values = {k: sum(float(m[k]) for _, m in self.pending) / len(self.pending) for k in keys}
        values.update(self.throughput.read())
        self.pending = []
        self.writer.write(step, values)
        self.last = values

    def end(self, step, state):
        if self.pending:
            self.write(step)


class EvalHook(Hook):
    """Calls ``evaluate(step, state) -> metrics`` every ``every`` steps and, if ``at_end``, once at the end."""

    def __init__(self, evaluate, every: int, at_end: bool = False, skip_end=lambda: False):
        self.evaluate, self.every, self.at_end, self.skip_end = evaluate, every, at_end, skip_end
        self.step, self.values = None, {}

    def __call__(self, step, state, metrics):
        if self.due(step):
            self.values, self.step = self.evaluate(step, state), step

    def end(self, step, state):
        if self.at_end and self.step != step and not self.skip_end():
            self.values, self.step = self.evaluate(step, state), step


class CheckpointHook(Hook):
    """Saves every ``every`` steps and at the end; a step is saved only after ``verify()`` passed,
    so a kept checkpoint never holds parameters that already gave a non-finite loss or norm."""

    def __init__(self, save, verify, every: int, saved_step: int | None):
        self.save, self.verify, self.every, self.saved = save, verify, every, saved_step

    def save_now(self, step, state, force=False) -> None:
        if self.saved == step or step == 0:
            return
        self.verify()
        if self.save(step, state, force):
            self.saved = step

    def __call__(self, step, state, metrics):
        if self.due(step):
            self.save_now(step, state)

    def end(self, step, state):
        self.save_now(step, state, force=True)


class StopHook(Hook):
    """Turns SIGTERM (preemption) and SIGINT (Ctrl-C) into "save at this step and stop".

    The handler only sets a flag. One process reads it every step at no cost; several must
    agree before a collective save, which needs a small all-gather, so they do that every
    ``every`` steps. A second Ctrl-C interrupts at once.
    """

    EXIT_CODES = {signal.SIGTERM: 143, signal.SIGINT: 130}  # 128 + signal number

    def __init__(self, checkpoint: CheckpointHook, every: int):
        self.checkpoint, self.every = checkpoint, max(int(every), 1)
        self.signum: int | None = None
        self.stopped = False
        self._previous = {}

    def install(self) -> None:
        import threading
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        for sig in self.EXIT_CODES:
            self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def release_ctrl_c(self) -> None:
        """Give SIGINT back (Ctrl-C interrupts at once) once no step is left to save; SIGTERM keeps
        this hook's handler, so a preemption never kills the process mid-save. One process only:
        on several, one interrupted process would leave the others waiting in a collective."""
        if jax.process_count() == 1 and signal.SIGINT in self._previous:
            signal.signal(signal.SIGINT, self._previous.pop(signal.SIGINT))

    def _handle(self, signum, frame):
        if signum == signal.SIGINT and self.signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return self.EXIT_CODES.get(self.signum, 0) if self.stopped else 0

    def __call__(self, step, state, metrics):
        flag = self.signum is not None
        if jax.process_count() > 1:
            if step % self.every:
                return
            import jax.numpy as jnp
            from jax.experimental import multihost_utils
            flag = bool(multihost_utils.process_allgather(jnp.int32(flag)).max())
        if flag:
            remote = self.signum is None
            if remote:  # another process was signalled; stop like a preemption (exit 143)
                self.signum = signal.SIGTERM
            log.warning("%s: saving a checkpoint at step %d and stopping%s; the same command resumes from it",
                        signal.Signals(self.signum).name, step, " (the signal reached another process)" if remote else "")
            self.checkpoint.save_now(step, state, force=True)
            self.stopped = True
            raise StopTraining
