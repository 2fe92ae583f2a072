"""The fault sink alone (agent.faults): findings become changes, on disk before the uploader is
woken, and the fault memory survives a restart on the same outbox."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agent.faults import FaultSink
from agent.outbox import Outbox
from checks.base import Finding
from protocol.grades import Grade
from protocol.wire import EventKind

OFF_AIR = Finding("off_air", "", True, Grade.MAJOR, "Transmitter off air", "op_mode is off")


async def test_findings_reach_the_disk_and_wake_the_uploader(tmp_path: Path) -> None:
    sink = FaultSink(Outbox(tmp_path / "outbox.sqlite", {"tx1": "transmitter"}), "fm1")
    try:
        assert not sink.wake.is_set()
        assert await sink.record("tx1", []) == []  # nothing changed: nothing written
        assert not sink.wake.is_set()
        [event] = await sink.record("tx1", [OFF_AIR])
        assert (event.kind, event.fault_key, event.grade) == (EventKind.RAISE, "tx1:off_air", 1)
        assert event.device_class == "transmitter"
        assert sink.wake.is_set()
        assert [e.event_id for e in sink.outbox.pending()] == [event.event_id]
        assert await sink.record("tx1", [OFF_AIR]) == []  # raised already: no second event
    finally:
        sink.close()


async def test_the_fault_memory_survives_a_restart(tmp_path: Path) -> None:
    """A new sink on the same outbox knows the raised fault: its clear is a CLEAR event."""
    first = FaultSink(Outbox(tmp_path / "outbox.sqlite", {}), "fm1")
    await first.record("tx1", [OFF_AIR])
    first.close()
    again = FaultSink(Outbox(tmp_path / "outbox.sqlite", {}), "fm1")
    try:
        assert again.tracker.view("tx1").is_active("off_air")
        cleared = Finding("off_air", "", False, Grade.MAJOR, "", "on air again")
        [event] = await again.record("tx1", [cleared])
        assert event.kind is EventKind.CLEAR
        assert again.outbox.load_active() == {}
    finally:
        again.close()


async def test_outbox_calls_run_on_one_database_thread_in_order(tmp_path: Path) -> None:
    sink = FaultSink(Outbox(tmp_path / "outbox.sqlite", {}), "fm1")
    try:
        writes = [sink.in_db(sink.outbox.set_meta, "k", str(i)) for i in range(20)]
        await asyncio.gather(*writes)
        assert await sink.in_db(sink.outbox.get_meta, "k") == "19"
    finally:
        sink.close()
