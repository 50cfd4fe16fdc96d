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
