"""One run per workdir: ``WorkdirLock(workdir)`` refuses a second run while the first is alive.

Two runs writing one workdir interleave their checkpoints, metrics and config
without any error. The lock file ``<workdir>/.lock`` holds the holder's pid,
host and start time as JSON, and the holder keeps an ``fcntl.flock`` on it:

* **Live holder on this host**: the kernel's flock says so, whatever the file
  says; ``WorkdirLocked`` names the pid, host and start time.
* **Crashed holder** (SIGKILL, OOM, power loss): the kernel drops a dead
  process's flock, so the lock is free; the file still names the dead run and
  is *reclaimed* with a warning naming it. Reclaiming is safe here because
  flock, not the file, is the authority on one host; refusing would make every
  crash need a manual clean-up before the automatic restart.
* **Holder on another host** (shared filesystem): flock is not coherent
  across hosts on every network filesystem, so the holder touches the file
  every ``heartbeat_s`` seconds. A foreign lock whose heartbeat is older than
  ``stale_after_s`` is reclaimed (its host is presumed gone: preempted pods
  restart elsewhere); a fresh one is refused, saying how to clear it.

On a clean exit the file is emptied (not removed: removing it would let two
contenders lock two different files). Multi-process runs take the lock on
process 0 only; the other processes of the same run would otherwise contend.
Imports no JAX.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import threading
import time

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"


class WorkdirLocked(RuntimeError):
    """The workdir is held by another live run. Attributes: ``workdir``, ``pid``, ``host``, ``started``."""

    def __init__(self, workdir: str, holder: dict, detail: str, advice: str):
        self.workdir = workdir
        self.pid, self.host, self.started = holder.get("pid"), holder.get("host"), holder.get("started")
        super().__init__(f"{workdir} is in use by another bert-jax run: pid {self.pid} on host {self.host}, "
                         f"started {self.started} ({detail}). {advice}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


class WorkdirLock:
    """Context manager holding ``<workdir>/.lock`` for the lifetime of a run.

    Args:
      workdir: the run's directory (created if missing).
      heartbeat_s: how often the holder touches the lock file (for other hosts).
      stale_after_s: a lock from another host whose file was last touched longer
        ago than this is taken over. Keep it several heartbeats long.

    ``acquire()`` (or entering the ``with``) raises ``WorkdirLocked`` while
    another live run holds the workdir; ``release()`` (or leaving it) frees it.
    ``reclaimed`` holds the previous holder's record when a stale lock was taken over.
    """

    def __init__(self, workdir: str, *, heartbeat_s: float = 30.0, stale_after_s: float = 300.0):
        self.workdir = os.fspath(workdir)
        self.path = os.path.join(self.workdir, LOCK_NAME)
        self.heartbeat_s, self.stale_after_s = heartbeat_s, stale_after_s
        self.reclaimed: dict | None = None
        self._fd: int | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def _read(self, fd: int) -> dict:
        os.lseek(fd, 0, os.SEEK_SET)
        raw = os.read(fd, 1 << 16)
        try:
            return json.loads(raw.decode("utf-8")) if raw.strip() else {}
        except (UnicodeDecodeError, json.JSONDecodeError):
            return {"pid": None, "host": None, "started": None, "damaged": raw[:80].decode("utf-8", "replace")}

    def acquire(self) -> "WorkdirLock":
        if self._fd is not None:
            raise RuntimeError(f"this WorkdirLock already holds {self.path}")
        try:
            os.makedirs(self.workdir, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise OSError(err.errno, f"cannot create the lock file {self.path} ({os.strerror(err.errno)}); "
                                     "check that the workdir is writable") from None
        try:
            self._take(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, name="workdir-lock-heartbeat", daemon=True)
        self._beat.start()
        return self

    def _take(self, fd: int) -> None:
        here = socket.gethostname()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            holder = self._read(fd)
            mine = holder.get("pid") == os.getpid() and holder.get("host") == here
            raise WorkdirLocked(
                self.workdir, holder, f"lock file {self.path}",
                "This process already holds it: open one WorkdirLock per run." if mine else
                "Two runs in one workdir would interleave their checkpoints and logs: wait for that run to "
                f"finish or stop it (kill {holder.get('pid')} on {holder.get('host')}), or give this run "
                "another --workdir.") from None
        holder = self._read(fd)
        if holder:
            age = time.time() - os.fstat(fd).st_mtime
            foreign = holder.get("host") not in (None, here)
            if foreign and age < self.stale_after_s:
                fcntl.flock(fd, fcntl.LOCK_UN)
                raise WorkdirLocked(
                    self.workdir, holder, f"lock file {self.path}, last heartbeat {age:.0f} s ago",
                    f"This host cannot see whether that run is alive. If it is gone, the lock is taken over "
                    f"automatically once its heartbeat is {self.stale_after_s:.0f} s old, or delete {self.path} "
                    "now; otherwise give this run another --workdir.")
            pid = holder.get("pid")
            why = (f"its heartbeat is {age:.0f} s old" if foreign else
                   "that process is gone" if not (isinstance(pid, int) and pid > 0 and _pid_alive(pid)) else
                   "no process holds the lock (the pid was reused)")
            log.warning("reclaiming the stale lock %s of pid %s on host %s (started %s): %s",
                        self.path, holder.get("pid"), holder.get("host"), holder.get("started"), why)
            self.reclaimed = holder
        record = {"pid": os.getpid(), "host": here,
                  "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "started_unix": time.time()}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps(record) + "\n").encode())
        os.fsync(fd)

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                os.utime(self.path)
            except OSError as err:  # the run goes on; other hosts may then take the lock over
                log.warning("could not refresh the workdir lock %s: %s", self.path, err)

    def release(self) -> None:
        if self._fd is None:
            return
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        try:
            os.ftruncate(self._fd, 0)  # empty = free; the file stays (see the module docstring)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "WorkdirLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
