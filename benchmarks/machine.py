"""What every benchmark line records about the machine: CPU model (or accelerator kind)."""

from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    """``model name`` from /proc/cpuinfo (Linux), else the platform's processor string."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """``{"cpu": ..., "cpus": N, "device": accelerator kind}`` for a benchmark's JSON line."""
    import jax
    return {"cpu": cpu_model(), "cpus": os.cpu_count(), "device": jax.devices()[0].device_kind}
