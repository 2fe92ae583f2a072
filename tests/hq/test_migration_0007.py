"""Revision 0007: tickets opened before it get their folded title, so the search finds them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import inspect, text

from hq_server.core.clock import ManualClock
from hq_server.core.domain import Role
from hq_server.store.db import downgrade, upgrade
from tests.hq.conftest import start_hq
from tests.hq.test_webhook_secrets import _database

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TITLES = {1: "tx1: Σφάλμα πομπού", 2: "tx2: 1号发射机停播", 3: "tx3: ΠΟΜΠΟΣ ΕΚΤΟΣ"}


def _seed_0006(url: str) -> None:
    with _database(url) as db, db.engine.begin() as conn:
        naive = T0.replace(tzinfo=None)
        conn.execute(
            text(
                "INSERT INTO sites (name, customer, contact, timezone, created_at) "
                "VALUES ('s', '', '', 'UTC', :at)"
            ),
            {"at": naive},
        )
        for number, title in TITLES.items():
            conn.execute(
                text(
                    "INSERT INTO tickets (number, site_id, fault_key, device_id, code, "
                    "component, grade, status, title, opened_at, alarm_active, updated_at, "
                    "symptom, on_duty, assignee, time_spent_minutes, ack_escalation_level, "
                    "restore_escalation_level) VALUES (:number, 1, :key, 'tx', 'off_air', "
                    "'', 1, 'new', :title, :at, true, :at, '', '', '', 0, 0, 0)"
                ),
                {
                    "number": f"SW-2025-00000{number}",  # another year than the tickets HQ opens
                    "key": f"tx{number}:off_air",
                    "title": title,
                    "at": naive,
                },
            )


def test_existing_tickets_are_folded_and_found(db_url: str, tmp_path: Path) -> None:
    upgrade(db_url, "0006")
    _seed_0006(db_url)
    upgrade(db_url)
    with _database(db_url) as db, db.engine.connect() as conn:
        rows = conn.execute(text("SELECT number, title_folded FROM tickets ORDER BY number"))
        folded = {number[-1]: value for number, value in rows}
    assert folded == {
        "1": "tx1: σφάλμα πομπού",
        "2": "tx2: 1号发射机停播",
        "3": "tx3: πομποσ εκτοσ",
    }
    with start_hq(db_url, ManualClock(T0), tmp_path) as hq:
        viewer = hq.user_token(Role.VIEWER)

        def found(q: str) -> list[str]:
            return [t["number"][-1] for t in hq.tickets(viewer, q=q)]

        assert found("ΣΦΆΛΜΑ") == ["1"] and found("发射机") == ["2"] and found("πομπος") == ["3"]
        # A ticket opened now, with its history (rows that refer to the ticket).
        hq.post_events(hq.enroll(), [hq.event(device_id="tx9", code="fan")])
        assert len(hq.tickets(viewer, q="TX9")) == 1
    # And back, as `hq db downgrade` does it (foreign keys enforced): the column goes, the
    # tickets stay.
    downgrade(db_url, "0006")
    with _database(db_url) as db, db.engine.connect() as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("tickets")}
        assert "title_folded" not in columns
        assert conn.execute(text("SELECT count(*) FROM tickets")).scalar_one() == 4
    upgrade(db_url)
