"""``WorkdirLock``: one live run per workdir, across processes; stale locks named and reclaimed."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from bert_jax.workdir_lock import LOCK_NAME, WorkdirLock, WorkdirLocked

# Holds the lock until its stdin closes, printing "locked" once it has it; exit 3 if refused.
HOLDER = """
import sys
from bert_jax.workdir_lock import WorkdirLock, WorkdirLocked
try:
    lock = WorkdirLock(sys.argv[1]).acquire()
except WorkdirLocked as err:
    print("refused:", err, flush=True)
    sys.exit(3)
print("locked", flush=True)
sys.stdin.read()
lock.release()
"""


def _holder(workdir) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(workdir)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_process_is_refused_naming_pid_and_host(tmp_path):
    workdir = tmp_path / "run"
    proc = _holder(workdir)
    try:
        with pytest.raises(WorkdirLocked) as info:
            WorkdirLock(str(workdir)).acquire()
        err = info.value
        assert err.pid == proc.pid and err.host == socket.gethostname() and isinstance(err, RuntimeError)
        text = str(err)
        assert f"{workdir} is in use by another bert-jax run: pid {proc.pid} on host {socket.gethostname()}" in text
        assert f"kill {proc.pid}" in text and "another --workdir" in text and str(workdir / LOCK_NAME) in text
        # The holder's record is untouched by the refused attempt.
        assert json.loads((workdir / LOCK_NAME).read_text())["pid"] == proc.pid
    finally:
        proc.stdin.close()
        assert proc.wait(30) == 0
    # The advice (wait for it to finish) works: the workdir is free once it exits.
    with WorkdirLock(str(workdir)) as lock:
        assert json.loads((workdir / LOCK_NAME).read_text())["pid"] == os.getpid() and lock.reclaimed is None
    assert (workdir / LOCK_NAME).read_text() == ""  # emptied on release


def test_two_processes_started_together_exactly_one_wins(tmp_path):
    for round_ in range(3):
        workdir = tmp_path / f"run{round_}"
        procs = [subprocess.Popen([sys.executable, "-c", HOLDER, str(workdir)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
                 for _ in range(2)]
        first = [p.stdout.readline().strip() for p in procs]
        for p in procs:
            p.stdin.close()
        codes = sorted(p.wait(30) for p in procs)
        assert codes == [0, 3], (first, codes)
        assert sum(line == "locked" for line in first) == 1
        assert any(line.startswith("refused:") and "is in use by another bert-jax run" in line for line in first)


def test_killed_holder_leaves_a_stale_lock_that_is_named_and_reclaimed(tmp_path, caplog):
    workdir = tmp_path / "run"
    proc = _holder(workdir)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    stale = json.loads((workdir / LOCK_NAME).read_text())
    assert stale["pid"] == proc.pid  # the file outlives the process...
    with caplog.at_level(logging.WARNING, logger="bert_jax.workdir_lock"):
        with WorkdirLock(str(workdir)) as lock:  # ...but its flock does not
            assert lock.reclaimed["pid"] == proc.pid
            assert json.loads((workdir / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert f"reclaiming the stale lock {workdir / LOCK_NAME} of pid {proc.pid}" in caplog.text
    assert "that process is gone" in caplog.text


def test_lock_of_another_host_is_refused_while_fresh_and_reclaimed_when_stale(tmp_path, caplog):
    workdir = tmp_path / "run"
    workdir.mkdir()
    path = workdir / LOCK_NAME
    path.write_text(json.dumps({"pid": 4242, "host": "other-host", "started": "2026-01-01T00:00:00"}))
    with pytest.raises(WorkdirLocked, match=r"pid 4242 on host other-host.*last heartbeat \d+ s ago.*delete") as info:
        WorkdirLock(str(workdir), stale_after_s=60).acquire()
    assert str(path) in str(info.value)
    old = time.time() - 120
    os.utime(path, (old, old))
    with caplog.at_level(logging.WARNING, logger="bert_jax.workdir_lock"):
        with WorkdirLock(str(workdir), stale_after_s=60) as lock:
            assert lock.reclaimed["host"] == "other-host"
    assert re.search(r"pid 4242 on host other-host .*: its heartbeat is 12\d s old", caplog.text)
    # The other advice: deleting the file of a fresh foreign lock frees the workdir at once.
    path.write_text(json.dumps({"pid": 4242, "host": "other-host", "started": "2026-01-01T00:00:00"}))
    with pytest.raises(WorkdirLocked):
        WorkdirLock(str(workdir), stale_after_s=60).acquire()
    path.unlink()
    with WorkdirLock(str(workdir), stale_after_s=60) as lock:
        assert lock.reclaimed is None


def test_heartbeat_keeps_a_long_run_fresh(tmp_path):
    workdir = tmp_path / "run"
    with WorkdirLock(str(workdir), heartbeat_s=0.05):
        old = time.time() - 1000
        os.utime(workdir / LOCK_NAME, (old, old))
        time.sleep(0.3)
        assert time.time() - os.path.getmtime(workdir / LOCK_NAME) < 5


def test_released_on_error_and_not_reentrant(tmp_path):
    workdir = tmp_path / "new" / "run"  # created
    with pytest.raises(ZeroDivisionError):
        with WorkdirLock(str(workdir)):
            with pytest.raises(WorkdirLocked, match="This process already holds it"):
                WorkdirLock(str(workdir)).acquire()
            1 / 0
    with WorkdirLock(str(workdir)) as lock:
        assert lock.reclaimed is None  # a released lock is not stale


def test_damaged_lock_file_is_reclaimed(tmp_path, caplog):
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / LOCK_NAME).write_bytes(b"\x00\x01garbage")
    with caplog.at_level(logging.WARNING, logger="bert_jax.workdir_lock"):
        with WorkdirLock(str(workdir)) as lock:
            assert lock.reclaimed is not None
    assert "reclaiming the stale lock" in caplog.text
