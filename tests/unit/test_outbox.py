"""The durable outbox: order, acknowledgement, bounds, and memory across reopen."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import uuid
from pathlib import Path

import pytest

import agent.outbox as outbox_mod
from agent.outbox import Outbox
from agent.state import write_token
from checks.base import Finding
from checks.tracker import FaultChange, FaultTracker
from protocol.grades import Grade
from protocol.wire import EventKind


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


def test_set_aside_events_leave_the_queue_for_good_and_are_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 11 item 4: an event HQ refuses for good must not block the queue: it is moved
    out (kept, with the reason), counted across restarts, and logged once at ERROR."""
    box = Outbox(tmp_path / "o.sqlite", {})
    box.record([change("off_air", 1), change("fan", 3), change("temp", 3)], {})
    first, second, third = box.pending()
    with caplog.at_level(logging.ERROR, logger="agent.outbox"):
        moved = box.set_aside([(first.event_id, "HQ refused it: grade: bad")])
        again = box.set_aside([(first.event_id, "HQ refused it: grade: bad")])
    assert [m.event_id for m in moved] == [str(first.event_id)] and again == []
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert str(first.event_id) in errors[0].getMessage()
    assert "HQ refused it: grade: bad" in errors[0].getMessage()
    assert [e.event_id for e in box.pending()] == [second.event_id, third.event_id]
    assert box.depth() == 2 and box.set_aside_count() == 1
    box.close()
    box = Outbox(tmp_path / "o.sqlite", {})
    assert box.set_aside_count() == 1
    [kept] = box.set_aside_events()
    assert (kept.event_id, kept.grade, kept.reason) == (
        str(first.event_id),
        1,
        "HQ refused it: grade: bad",
    )
    assert box.ack([second.event_id]) == 1
    assert box.set_aside([(second.event_id, "late")]) == []  # acknowledged: nothing to move
    box.close()


def test_set_aside_keeps_the_newest_and_counts_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox_mod, "SET_ASIDE_KEPT", 3)
    box = Outbox(tmp_path / "o.sqlite", {})
    box.record([change(f"c{i}", 3) for i in range(5)], {})
    for event in box.pending():
        box.set_aside([(event.event_id, f"bad {event.code}")])
    assert box.set_aside_count() == 5 and box.depth() == 0
    assert [e.reason for e in box.set_aside_events()] == ["bad c4", "bad c3", "bad c2"]
    box.close()


def test_an_unreadable_event_is_set_aside_not_a_stuck_queue(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A body the agent can no longer read (another version's field, a broken value) used to
    make every `pending()` raise, so nothing was ever sent again."""
    box = Outbox(tmp_path / "o.sqlite", {})
    box.record([change("off_air", 1), change("fan", 3)], {})
    good, other = box.pending()
    bad = json.loads(good.model_dump_json()) | {"grade": 9, "colour": "red"}
    bad_id = str(uuid.uuid4())
    bad["event_id"] = bad_id
    db = sqlite3.connect(tmp_path / "o.sqlite")
    db.execute(
        "INSERT INTO events (seq, event_id, grade, body) VALUES (?, ?, ?, ?)",
        (99, bad_id, 0, json.dumps(bad)),
    )
    db.commit()
    db.close()
    with caplog.at_level(logging.ERROR, logger="agent.outbox"):
        assert [e.event_id for e in box.pending()] == [good.event_id, other.event_id]
    [aside] = box.set_aside_events()
    assert aside.event_id == bad_id
    assert aside.reason.startswith("unreadable in the outbox: grade: ")
    assert "colour: Extra inputs are not permitted" in aside.reason
    assert "red" not in aside.reason  # reasons name fields, never the input
    assert box.set_aside_count() == 1 and box.depth() == 2
    assert [r.getMessage() for r in caplog.records if bad_id in r.getMessage()]
    box.close()


def test_text_no_database_stores_is_cleaned_when_recorded(tmp_path: Path) -> None:
    """A device's text with NUL or a lone surrogate (bytes decoded with surrogateescape) could
    not even be written (a lone surrogate has no UTF-8), and PostgreSQL refused a NUL at HQ."""
    box = Outbox(tmp_path / "o.sqlite", {})
    bad = FaultChange(
        EventKind.RAISE,
        "tx1",
        "fan",
        "",
        Grade(3),
        "fan\x00 fail \udc80",
        "detail\x00",
        1_700_000_000.0,
        {"k\x00": "v\udcff", "nan": float("nan")},
    )
    [event] = box.record([bad], {})
    assert (event.title, event.detail) == ("fan\ufffd fail \ufffd", "detail\ufffd")
    assert event.values == {"k\ufffd": "v\ufffd", "nan": None}
    assert box.pending() == [event]
    box.close()
