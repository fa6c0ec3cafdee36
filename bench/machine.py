"""The machine a run happened on and how busy it was (the table's header and its noise warning), so
numbers from different runs can be compared, or distrusted.
"""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path
from typing import Any


def system_cpu_seconds() -> tuple[float, float]:
    """(busy, steal) CPU-seconds of all cores since boot, from /proc/stat. Busy excludes idle, iowait
    and steal; steal (time the hypervisor gave to other guests) is disturbance too, reported apart."""
    f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    f += [0] * (8 - len(f))
    tick = os.sysconf("SC_CLK_TCK")
    return (f[0] + f[1] + f[2] + f[5] + f[6]) / tick, f[7] / tick


def own_cpu_seconds() -> float:
    """CPU-seconds of this process and its waited-for children (every child is waited for by stop())."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def machine() -> dict[str, Any]:
    """What the run ran on: numbers only compare between like machines and versions."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    from importlib.metadata import version

    info = {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "mcp": version("mcp"),
        "httpx2": version("httpx2"),
    }
    import importlib.util

    # httpcore imports sniffio on every lock it creates (several per request); when sniffio is not
    # installed that is a failing import, which searches sys.path each time.
    info["sniffio_installed"] = importlib.util.find_spec("sniffio") is not None
    with contextlib.suppress(OSError, ValueError):
        info["mem_total_gb"] = round(int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024, 1)
    return info
