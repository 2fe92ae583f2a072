"""The agent's own host as a device (psutil): CPU, load, memory, disk per mount, temperatures,
uptime and clock synchronisation.

Clock sync is asked of `timedatectl` (systemd-timesyncd or any NTP client systemd knows), then of
`chronyc tracking`; when neither answers it reads "unknown" (never a fault by itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

from collectors.base import Reading
from collectors.errors import DeviceUnreadable

logger = logging.getLogger(__name__)

# File systems that are not storage an engineer would ever fill.
_PSEUDO_FS = frozenset(
    {"tmpfs", "devtmpfs", "proc", "sysfs", "squashfs", "overlay", "devpts", "cgroup", "cgroup2"}
)
_COMMAND_TIMEOUT_S = 3.0


class HostCollector:
    """Readings about the machine the agent runs on."""

    def __init__(self, device_id: str, extra_paths: Sequence[Path] = ()) -> None:
        """`extra_paths` (e.g. the agent's state dir) get a disk reading of their own."""
        self.device_id = device_id
        self.extra_paths = list(extra_paths)
        psutil.cpu_percent(interval=None)  # the first call only primes the counter

    async def collect(self) -> list[Reading]:
        """One reading per metric (per mount / sensor for disks and temperatures)."""
        try:
            readings = await asyncio.to_thread(self._sample)
        except (OSError, psutil.Error) as exc:
            raise DeviceUnreadable(f"host metrics unreadable: {exc}") from None
        readings.append(self._reading("clock_synced", await clock_synced(), kind="state"))
        return readings

    def _reading(
        self, metric: str, value: float | int | str, component: str = "", unit: str = "", *,
        kind: str = "metric",
    ) -> Reading:  # fmt: skip
        return Reading(
            device=self.device_id,
            metric=metric,
            value=value,
            component=component,
            unit=unit,
            kind="state" if kind == "state" else "metric",
        )

    def _sample(self) -> list[Reading]:
        """Blocking: everything psutil can tell (a hung mount costs only this thread)."""
        r = self._reading
        cpus = psutil.cpu_count() or 1
        out = [
            r("cpu_percent", psutil.cpu_percent(interval=None), unit="%"),
            r("load_1m_per_cpu", round(os.getloadavg()[0] / cpus, 3)),
            r("memory_percent", psutil.virtual_memory().percent, unit="%"),
            r("swap_percent", psutil.swap_memory().percent, unit="%"),
            r("uptime_s", int(time.time() - psutil.boot_time()), unit="s"),
        ]
        mounts = self._mounts()
        for mount in mounts:
            with contextlib.suppress(OSError):
                out.append(r("disk_percent", psutil.disk_usage(mount).percent, mount, "%"))
        out.append(r("disk_percent", len(mounts), unit="rows"))  # the table was read
        sensors = self._temperatures()
        for name, celsius in sensors.items():
            out.append(r("temperature_c", celsius, name, "C"))
        out.append(r("temperature_c", len(sensors), unit="rows"))
        return out

    def _mounts(self) -> list[str]:
        """Real file systems, one mount per device, plus the extra paths."""
        seen: set[str] = set()
        mounts: list[str] = []
        for part in psutil.disk_partitions(all=False):
            if part.fstype in _PSEUDO_FS and part.mountpoint != "/":
                continue
            if part.device in seen:
                continue
            seen.add(part.device)
            mounts.append(part.mountpoint)
        if "/" not in mounts:
            mounts.insert(0, "/")
        for path in self.extra_paths:
            if str(path) not in mounts and path.exists():
                mounts.append(str(path))
        return mounts

    @staticmethod
    def _temperatures() -> dict[str, float]:
        """Sensor name -> degrees C, where the hardware has sensors (often none in a VM)."""
        reader = getattr(psutil, "sensors_temperatures", None)
        if reader is None:
            return {}
        try:
            chips = reader()
        except (OSError, RuntimeError):
            return {}
        found: dict[str, float] = {}
        for chip, entries in chips.items():
            for i, entry in enumerate(entries):
                found[f"{chip}/{entry.label or i}"] = float(entry.current)
        return found

    async def close(self) -> None:
        """Nothing to release."""


async def _output(*argv: str) -> str | None:
    """A command's stdout, or None when it is missing, fails or hangs."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env={"LC_ALL": "C", "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        )
    except OSError:
        return None
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=_COMMAND_TIMEOUT_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return None
    return out.decode(errors="replace") if proc.returncode == 0 else None


async def clock_synced() -> str:
    """ "yes", "no" or "unknown": whether the system clock is synchronised to a time source."""
    out = await _output("timedatectl", "show", "-p", "NTPSynchronized", "--value")
    if out is not None and out.strip() in ("yes", "no"):
        return out.strip()
    out = await _output("chronyc", "-n", "tracking")
    if out is not None:
        for line in out.splitlines():
            if line.startswith("Leap status"):
                return "no" if "Not synchronised" in line else "yes"
    return "unknown"
