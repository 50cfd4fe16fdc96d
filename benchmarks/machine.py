"""What every benchmark line records about the machine: CPU model, the vector/matrix
extensions that decide whether bf16 pays off, and the accelerator kind."""

from __future__ import annotations

import os
import platform

# x86 extensions behind bf16 speed on a CPU: without avx512_bf16 / amx_bf16, bf16 matmuls are
# emulated through fp32 and usually slower (docs/training.md, "Choosing model_dtype").
DTYPE_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def _cpuinfo() -> dict[str, str]:
    """The first processor's ``/proc/cpuinfo`` fields (Linux), else an empty dict."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
    except OSError:
        pass
    return fields


def cpu_model() -> str:
    """``model name`` from /proc/cpuinfo (Linux), else the platform's processor string."""
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """Which of ``DTYPE_FLAGS`` the CPU has (empty where /proc/cpuinfo is unavailable)."""
    flags = set(_cpuinfo().get("flags", "").split())
    return [f for f in DTYPE_FLAGS if f in flags]


def machine() -> dict:
    """``{"cpu", "cpu_flags", "cpus", "device"}`` for a benchmark's JSON line."""
    import jax
    return {"cpu": cpu_model(), "cpu_flags": cpu_flags(), "cpus": os.cpu_count(),
            "device": jax.devices()[0].device_kind}
