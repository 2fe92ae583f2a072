"""The durable outbox: order, acknowledgement, bounds, and memory across reopen."""

from __future__ import annotations

import os
from pathlib import Path

from agent.outbox import Outbox
from agent.runner import write_token
from agent.wire import EventKind
from checks.base import Finding
from checks.grading import Grade
from checks.tracker import FaultChange, FaultTracker


def change(code: str, grade: int, kind: EventKind = EventKind.RAISE) -> FaultChange:
    return FaultChange(kind, "tx1", code, "", Grade(grade), code, "", 1_700_000_000.0)


def test_events_survive_reopen_and_come_out_grade_first(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", {"tx1": "transmitter"})
    box.record([change("fan", 3), change("off_air", 1), change("vswr", 2)], {})
    box.close()
    box = Outbox(tmp_path / "o.sqlite", {"tx1": "transmitter"})
    pending = box.pending()
    assert [(e.code, e.grade, e.seq) for e in pending] == [
        ("off_air", 1, 2),
        ("vswr", 2, 3),
        ("fan", 3, 1),
    ]
    assert pending[0].device_class == "transmitter"
    assert box.ack([pending[0].event_id, pending[2].event_id]) == 2
    assert [e.code for e in box.pending()] == ["vswr"]
    assert box.last_seq() == 3
    box.close()


def test_active_faults_are_written_with_their_events(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", {})
    t = FaultTracker()
    changes = t.apply("tx1", [Finding("off_air", "", True, Grade.MAJOR, "Off air")])
    box.record(changes, t.active)
    assert set(box.load_active()) == {"tx1:off_air"}
    changes = t.apply("tx1", [Finding("off_air", "", False, Grade.MAJOR, "Off air")])
    box.record(changes, t.active)
    assert box.load_active() == {}
    box.close()


def test_full_outbox_drops_lowest_grades_first_never_1_or_2(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", {}, max_events=100)
    box.record([change(f"g5_{i}", 5) for i in range(40)], {})
    box.record([change(f"g3_{i}", 3) for i in range(40)], {})
    box.record([change(f"g1_{i}", 1) for i in range(30)], {})  # 110 > 100: ten grade-5 go
    assert box.depth() == 100 and box.dropped() == 10
    box.record([change(f"g2_{i}", 2) for i in range(100)], {})
    grades = [e.grade for e in box.pending(limit=1000)]
    assert grades.count(1) == 30 and grades.count(2) == 100 and 5 not in grades
    assert grades.count(3) == 0 and box.dropped() == 80
    # Only grades 1 and 2 left: they are kept even past the bound.
    box.record([change("g1_more", 1)], {})
    assert box.depth() == 131
    box.close()


def test_state_dir_outbox_and_token_are_private_whatever_the_umask(tmp_path: Path) -> None:
    state = tmp_path / "state"
    previous = os.umask(0)
    try:
        box = Outbox(state / "outbox.sqlite", {"tx1": "transmitter"})
        try:
            box.record([change("fan", 3)], {})  # a write: SQLite opens the -wal and -shm files
            modes = {p.name: p.stat().st_mode & 0o777 for p in state.iterdir()}
        finally:
            box.close()
        token = write_token(tmp_path / "other-state", "swa_x")
    finally:
        os.umask(previous)
    assert (state.stat().st_mode & 0o777) == 0o700
    assert modes == {"outbox.sqlite": 0o600, "outbox.sqlite-wal": 0o600, "outbox.sqlite-shm": 0o600}
    assert (token.parent.stat().st_mode & 0o777) == 0o700
    assert (token.stat().st_mode & 0o777) == 0o600
