"""The console's filter of third-party noise (bert_jax.console)."""

import os
import sys
import types

from bert_jax import console


def _coroutine_from(filename: str):
    code = compile("async def read():\n    pass\n", filename, "exec")
    namespace: dict = {}
    exec(code, namespace)
    return namespace["read"]()


def test_abandoned_orbax_reads_are_not_reported_but_other_unraisables_are(monkeypatch):
    """A damaged checkpoint's abandoned Orbax read coroutines print ~60 lines each when collected;
    after ``setup`` those are dropped and every other unraisable exception still reaches the
    previous hook."""
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(u.object))
    console._quiet_library_coroutines()
    console._quiet_library_coroutines()  # idempotent: one wrapper, not two
    orbax = _coroutine_from(os.path.join("site-packages", "orbax", "checkpoint", "serialization.py"))
    ours = _coroutine_from(os.path.join("site-packages", "bert_jax", "checkpointing.py"))
    other = object()
    try:
        for obj in (orbax, ours, other):
            sys.unraisablehook(types.SimpleNamespace(object=obj, exc_type=RuntimeError, exc_value=None,
                                                     exc_traceback=None, err_msg=None))
    finally:
        orbax.close(), ours.close()
    assert seen == [ours, other]


def test_a_closed_stream_sends_records_to_the_process_stderr(capfd):
    """The console handler keeps the sys.stderr of the first CLI call; once that stream was closed
    (a test capture, or a program embedding bert-jax, replaced and closed it), every later record
    was a "--- Logging error --- ValueError: I/O operation on closed file" report instead."""
    import io
    import logging
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8")  # like a capture: flush() raises once closed
    handler = console._ConsoleHandler(stream)
    record = logging.LogRecord("bert_jax", logging.WARNING, __file__, 1, "resumed from step %d", (4,), None)
    handler.emit(record)
    assert raw.getvalue() == b"resumed from step 4\n"
    stream.close()
    handler.emit(record)
    out, err = capfd.readouterr()
    assert "resumed from step 4" in err and "Logging error" not in err


def test_the_stop_hook_gives_back_ctrl_c_but_keeps_sigterm():
    """Before the final evaluation the trainer gives SIGINT back (Ctrl-C then interrupts at once);
    SIGTERM stays with the hook, whose handler only sets a flag: the default one would kill the
    process while the last checkpoint may still be writing."""
    import signal
    from bert_jax.hooks import StopHook
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    hook = StopHook(checkpoint=None, every=1)
    hook.install()
    try:
        hook.release_ctrl_c()
        assert signal.getsignal(signal.SIGINT) == before[signal.SIGINT]
        assert signal.getsignal(signal.SIGTERM) == hook._handle
    finally:
        hook.uninstall()
    assert {s: signal.getsignal(s) for s in before} == before


_BAR_AND_LOG = r"""
import logging, sys, time
from bert_jax import console
from bert_jax.metrics.writer import MetricWriter
console.setup()
w = MetricWriter(sys.argv[1], 4, enabled=True, progress=True)
for step in range(1, 5):
    w.advance(step)
    w._bar.refresh()  # a redraw, as one every 30 s (log file) or 0.1 s (terminal) would be
    w.write(step, {"loss": 1.0 / step})
w.close()
logging.getLogger("bert_jax").info("done")
"""


def _split_screen_lines(text: str) -> list[str]:
    """What each line of ``text`` shows: after its last carriage return (a terminal redraws there)."""
    return [line.rsplit("\r", 1)[-1] for line in text.replace("\r\n", "\n").split("\n")]


def test_progress_bar_and_log_lines_never_share_a_line_in_a_log_file_or_a_terminal(tmp_path):
    """In a log file the bar's first state and the first log line were one line ("train: 0%| |
    0/4 [00:00<?, ?step/s]INFO train step 1: ..."), and in a terminal a log line continued the bar
    it was written over. Now each bar state is a line of its own in a file, and in a terminal the
    bar is cleared before a log line and drawn again after it."""
    import fcntl
    import pty
    import struct
    import subprocess
    import termios
    args = [sys.executable, "-c", _BAR_AND_LOG, str(tmp_path)]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    piped = subprocess.run(args, capture_output=True, env=env, timeout=120)
    err = piped.stderr.decode("utf-8")  # as bytes: text mode would read each "\r" as a newline
    assert piped.returncode == 0, err
    assert "\r" not in err
    lines = err.splitlines()
    logged = [line for line in lines if "INFO" in line]
    assert len(logged) == 5 and all(line.startswith("INFO ") for line in logged), lines
    bars = [line for line in lines if line.startswith("train:")]
    assert bars and bars[-1].startswith("train: 100%") and len(bars) + len(logged) == len(lines), lines
    # a terminal: the stderr of the child is a pseudo-terminal
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # else 0 columns: no bar
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=child, env=env)
    os.close(child)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert proc.wait(timeout=120) == 0
    os.close(main)
    shown = _split_screen_lines(b"".join(chunks).decode("utf-8"))
    assert any(line.startswith("train: 100%") for line in shown), shown
    logged = [line for line in shown if "INFO" in line]
    assert len(logged) == 5 and all(line.startswith("INFO ") for line in logged), shown
