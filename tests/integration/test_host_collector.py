"""The host collector reading this machine with psutil, graded by the host profile."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from checks.engine import DeviceGrader
from checks.profile_rules import builtin_profiles
from checks.tracker import FaultTracker
from collectors.base import ReadingSet
from collectors.host import HostCollector, clock_synced
from protocol.wire import EventKind

pytestmark = pytest.mark.integration


async def test_host_readings(tmp_path: Path) -> None:
    """CPU, load, memory, uptime, disk for / and the state dir, clock sync state."""
    readings = await HostCollector("agent-host", [tmp_path]).collect()
    rs = ReadingSet(readings)
    for metric in ("cpu_percent", "load_1m_per_cpu", "memory_percent", "uptime_s"):
        value = rs.get(metric)
        assert isinstance(value, int | float) and value >= 0, metric
    assert "/" in rs.components("disk_percent")
    assert str(tmp_path) in rs.components("disk_percent")
    assert 0 <= float(rs.get("disk_percent", "/") or 0) <= 100
    assert rs.get("clock_synced") in ("yes", "no", "unknown")
    assert rs.has("temperature_c")  # the row count, even on a machine without sensors
    assert all(r.device == "agent-host" for r in readings)


async def test_clock_sync_is_never_a_guess() -> None:
    """Without a time daemon answering, the state is "unknown", not "no"."""
    assert await clock_synced() in ("yes", "no", "unknown")


async def test_host_profile_grades_disk_memory_load(tmp_path: Path) -> None:
    """Real readings with the disk pushed to 85 % then 96 %: grade 4, then grade 3 as well."""
    profile = builtin_profiles()["host"]
    grader = DeviceGrader("agent-host", profile.checks, profile.unreachable_grade)
    tracker = FaultTracker()
    readings = await HostCollector("agent-host").collect()

    def with_values(disk: float, load: float = 0.1) -> ReadingSet:
        """The real readings with / at `disk` % and the load per CPU at `load`."""
        forced = {("disk_percent", "/"): disk, ("load_1m_per_cpu", ""): load}
        return ReadingSet(
            [
                dataclasses.replace(r, value=forced.get((r.metric, r.component), r.value))
                for r in readings
            ]
        )

    baseline = {c.code for c in grader.on_readings(with_values(10.0), tracker)}
    assert not baseline & {"disk_full", "disk_critical", "load_high"}
    raised = grader.on_readings(with_values(85.0), tracker)
    assert [(c.code, c.component, int(c.grade)) for c in raised] == [("disk_full", "/", 4)]
    raised = grader.on_readings(with_values(96.0), tracker)
    assert [(c.code, int(c.grade)) for c in raised] == [("disk_critical", 3)]
    raised = grader.on_readings(with_values(96.0, load=3.5), tracker)
    assert [(c.code, c.kind) for c in raised] == [("load_high", EventKind.RAISE)]
