"""The agent box's own figures: for the heartbeat and for the host items of inspections."""

from __future__ import annotations

import contextlib
from pathlib import Path

import psutil


def host_figures(state_dir: Path) -> dict[str, float]:
    """CPU, memory, the agent's RSS and the fill of the disk holding its state."""
    host: dict[str, float] = {
        "cpu_percent": psutil.cpu_percent(interval=None),
        "mem_percent": psutil.virtual_memory().percent,
        "rss_mib": psutil.Process().memory_info().rss / 2**20,
    }
    with contextlib.suppress(OSError):
        host["disk_percent"] = psutil.disk_usage(str(state_dir)).percent
    return host
