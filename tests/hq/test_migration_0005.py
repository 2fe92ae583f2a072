"""Revision 0005: escalation timer rows (one per level) become each escalation's next step on
the ticket, and back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import inspect, text

from hq_server.store.db import upgrade
from tests.hq.test_webhook_secrets import _database, _downgrade

T0 = datetime(2026, 1, 1, tzinfo=UTC)
STEP = timedelta(minutes=30)

# Ticket 1: ack level 0 escalated, 1-3 pending; restore cancelled (its grade had no target).
# Ticket 2: ack level 0 escalated, then acknowledged (1-3 cancelled); restore all escalated.
TIMERS = [
    *(
        (1, "ack", level, T0 + level * STEP, "escalated" if level == 0 else "pending")
        for level in range(4)
    ),
    *((1, "restore", level, T0 + level * STEP, "cancelled") for level in range(4)),
    *(
        (2, "ack", level, T0 + level * STEP, "escalated" if level == 0 else "cancelled")
        for level in range(4)
    ),
    *((2, "restore", level, T0 + level * STEP, "escalated") for level in range(4)),
]


def _at(value: object) -> datetime | None:
    """A stored time as an aware datetime (SQLite keeps text)."""
    if value is None or isinstance(value, datetime):
        return value
    assert isinstance(value, str)
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def _seed_0004(url: str) -> None:
    with _database(url) as db, db.engine.begin() as conn:
        naive = T0.replace(tzinfo=None)
        conn.execute(
            text(
                "INSERT INTO sites (name, customer, contact, timezone, created_at) "
                "VALUES ('s', '', '', 'UTC', :at)"
            ),
            {"at": naive},
        )
        for number in (1, 2):
            conn.execute(
                text(
                    "INSERT INTO tickets (id, number, site_id, fault_key, device_id, code, "
                    "component, grade, status, title, opened_at, alarm_active, updated_at, "
                    "symptom, on_duty, assignee, time_spent_minutes) VALUES (:id, :number, 1, "
                    ":key, 'tx1', 'off_air', '', 1, 'new', 't', :at, true, :at, '', '', '', 0)"
                ),
                {
                    "id": number,
                    "number": f"SW-2026-00000{number}",
                    "key": f"k{number}",
                    "at": naive,
                },
            )
        for ticket_id, kind, level, due, outcome in TIMERS:
            conn.execute(
                text(
                    "INSERT INTO escalation_timers (ticket_id, kind, level, due_at, done_at, "
                    "outcome) VALUES (:t, :kind, :level, :due, :done, :outcome)"
                ),
                {
                    "t": ticket_id,
                    "kind": kind,
                    "level": level,
                    "due": due.replace(tzinfo=None),
                    "done": None if outcome == "pending" else due.replace(tzinfo=None),
                    "outcome": outcome,
                },
            )


def _steps(url: str) -> list[tuple[object, ...]]:
    with _database(url) as db, db.engine.connect() as conn:
        stmt = text(
            "SELECT id, ack_escalation_level, ack_escalation_at, restore_escalation_level, "
            "restore_escalation_at FROM tickets ORDER BY id"
        )
        return [(i, al, _at(aa), rl, _at(ra)) for i, al, aa, rl, ra in conn.execute(stmt)]


def test_revision_0005_keeps_each_escalations_next_step_and_back(db_url: str) -> None:
    upgrade(db_url, "0004")
    _seed_0004(db_url)
    upgrade(db_url)
    with _database(db_url) as db, db.engine.connect() as conn:
        assert "escalation_timers" not in inspect(conn).get_table_names()
        db.check_schema()
    assert _steps(db_url) == [
        (1, 1, T0 + STEP, 0, None),  # ack: level 1 next, due as its timer was; restore stopped
        (2, 1, None, 4, None),  # ack: stopped after one level; restore: all four reached
    ]

    _downgrade(db_url, "0004")
    with _database(db_url) as db, db.engine.connect() as conn:
        stmt = text(
            "SELECT ticket_id, kind, level, due_at, outcome FROM escalation_timers "
            "ORDER BY ticket_id, kind, level"
        )
        timers = [(t, k, lv, _at(due), o) for t, k, lv, due, o in conn.execute(stmt)]
    epoch = datetime(1970, 1, 1, tzinfo=UTC)  # when a reached level escalated is not kept
    assert timers == [
        (1, "ack", 0, epoch, "escalated"),
        (1, "ack", 1, T0 + STEP, "pending"),
        (2, "ack", 0, epoch, "escalated"),
        *((2, "restore", level, epoch, "escalated") for level in range(4)),
    ]
    upgrade(db_url)
    assert _steps(db_url) == [(1, 1, T0 + STEP, 0, None), (2, 1, None, 4, None)]
