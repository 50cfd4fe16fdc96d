"""A persistent XLA compilation cache for one run (config field ``compilation_cache_dir``).

A restarted or repeated run whose programs are unchanged loads its compiled steps from disk
instead of compiling them again: on a pod, after a preemption, that is minutes of start-up.
JAX keys each entry by the program, its compile options, the backend and the device kind. Only
process 0 writes entries and every process reads them, so a folder all hosts can read (a
shared filesystem, or ``gs://bucket/xla_cache``, which JAX reads itself) saves every host's compile; a host-local folder saves process
0's. On CPUs the entries sit under a folder per CPU model and flags (``machine_tag``), so only
hosts with process 0's CPU find them. Entries are executable code: use a folder only trusted
users can write to.

  with compilation_cache(cfg.compilation_cache_dir) as path:   # "" = off, path None
      ...  # jit compiles here read and write <dir>/<machine>/
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import re


def _cpu_description() -> str:
    """The CPU model and instruction-set flags (Linux ``/proc/cpuinfo``; elsewhere what
    ``platform`` knows)."""
    model = flags = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "CPU part") and not model:
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = " ".join(sorted(value.split()))
    except OSError:
        pass
    return f"{platform.machine()}|{model or platform.processor()}|{flags}"


def machine_tag() -> str:
    """The sub-folder for this machine's entries, e.g. ``tpu-TPU_v4`` or ``cpu-3f2a9c01b7de``.

    For CPUs JAX's key names the backend but not the instruction set XLA compiled for (AVX-512,
    AMX, ...): machines with other CPUs sharing one folder must not load each other's code.
    """
    import jax
    device = jax.devices()[0]
    if device.platform != "cpu":
        return f"{device.platform}-{re.sub(r'[^A-Za-z0-9]+', '_', device.device_kind).strip('_')}"
    return "cpu-" + hashlib.sha256(_cpu_description().encode()).hexdigest()[:12]


@contextlib.contextmanager
def compilation_cache(root: str):
    """Use ``<root>/<machine_tag()>`` as JAX's compilation cache inside the block; ``root`` ""
    leaves JAX's setting alone. Yields the folder (or None). The previous setting is restored
    on exit, so a later run in the same process is not affected."""
    if not root:
        yield None
        return
    import jax
    from jax.experimental.compilation_cache import compilation_cache as jax_cache
    path = os.path.join(os.path.expanduser(root), machine_tag())
    previous = jax.config.jax_compilation_cache_dir
    jax_cache.set_cache_dir(path)
    jax_cache.reset_cache()  # JAX decides once per process whether a cache is in use: decide again
    try:
        yield path
    finally:
        jax_cache.set_cache_dir(previous)
        jax_cache.reset_cache()
