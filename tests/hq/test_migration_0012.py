"""Revision 0012 (paging): the tables of on-call teams, contacts, policies, tickets' paging
state and digests, default policies seeded, pages allowed in the outbox; and back, with rows
present, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import insert, inspect, select, text
from sqlalchemy.exc import IntegrityError

from hq_server.store.db import alembic_config, upgrade
from hq_server.store.models import (
    EngineerContact,
    Notification,
    OncallOverride,
    OncallRotation,
    OncallTeam,
    PageDigestItem,
    PagingPolicy,
    Site,
    Ticket,
    TicketPaging,
    User,
)
from tests.hq.test_webhook_secrets import _database, _downgrade

T0 = datetime(2026, 3, 2, tzinfo=UTC)
NEW_TABLES = {
    "oncall_teams",
    "oncall_rotations",
    "oncall_overrides",
    "engineer_contacts",
    "paging_policies",
    "ticket_paging",
    "page_digest_items",
}


def _outbox(key: str, channel: str) -> dict[str, object]:
    return {
        "channel": channel,
        "target": "li" if channel == "page" else "http://h/a",
        "payload": {},
        "idempotency_key": key,
        "attempts": 0,
        "next_attempt_at": T0,
        "status": "pending",
        "last_error": "",
        "created_at": T0,
    }


def _seed(url: str) -> None:
    with _database(url) as db, db.writer() as session, session.begin():
        site_id = session.execute(
            insert(Site).values(name="s", created_at=T0).returning(Site.id)
        ).scalar_one()
        ticket_id = session.execute(
            insert(Ticket)
            .values(
                number="SW-2026-000001", site_id=site_id, fault_key="tx1:off_air",
                device_id="tx1", code="off_air", component="", grade=1, status="new",
                title="tx1: off air", opened_at=T0, alarm_active=True, updated_at=T0,
            )
            .returning(Ticket.id)
        ).scalar_one()  # fmt: skip
        user_id = session.execute(
            insert(User)
            .values(username="li", username_key="li", role="engineer", password_hash="x",
                    disabled=False, created_at=T0)
            .returning(User.id)
        ).scalar_one()  # fmt: skip
        team_id = session.execute(
            insert(OncallTeam)
            .values(name="north", timezone="Asia/Shanghai", sites={"names": ["s"]}, customer="",
                    service_manager="", created_at=T0, updated_at=T0)
            .returning(OncallTeam.id)
        ).scalar_one()  # fmt: skip
        session.execute(
            insert(OncallRotation).values(
                team_id=team_id, role="primary", period="daily", handover="00:00", weekday=0,
                starts_on=date(2026, 3, 1), members={"members": ["li"]}, holidays={"dates": []},
                holiday_cover="", updated_at=T0,
            )
        )  # fmt: skip
        session.execute(
            insert(OncallOverride).values(
                team_id=team_id, role="primary", username="li", starts_at=T0, ends_at=T0,
                reason="", created_by="admin", created_at=T0,
            )
        )  # fmt: skip
        session.execute(
            insert(EngineerContact).values(
                user_id=user_id, language="zh-CN", channels_sealed="x",
                channels_shown={"channels": []}, failures={}, last_error="", updated_at=T0,
            )
        )  # fmt: skip
        session.execute(
            insert(TicketPaging).values(
                ticket_id=ticket_id, team_id=team_id, recipients={"users": ["li"]},
                repeat_minutes=5, next_repeat_at=T0, repeats=0,
            )
        )  # fmt: skip
        session.execute(
            insert(PageDigestItem).values(
                username="li", ticket_id=ticket_id, reason="daily", team_id=team_id, due_at=T0,
                created_at=T0, sent_at=None,
            )
        )  # fmt: skip
        session.execute(insert(Notification).values(ticket_id=ticket_id, **_outbox("p", "page")))
        session.execute(insert(Notification).values(ticket_id=ticket_id, **_outbox("w", "webhook")))


def _before_0012() -> str:
    """The revision 0012 follows (re-chained when branches are merged)."""
    down = ScriptDirectory.from_config(alembic_config()).get_revision("0012").down_revision
    assert isinstance(down, str)
    return down


def test_revision_0012_adds_paging_and_goes_back_with_rows_present(db_url: str) -> None:
    before = _before_0012()
    upgrade(db_url, before)
    upgrade(db_url)
    with _database(db_url) as db:
        db.check_schema()
        with db.session() as session:
            policies = {p.grade: p for p in session.scalars(select(PagingPolicy))}
    assert sorted(policies) == [1, 2, 3, 4, 5]
    assert policies[1].on_open == {"who": ["on_duty", "backup"]}
    assert policies[1].repeat_minutes == 5
    assert policies[4].digest is True
    assert policies[5].on_open == {"who": []}

    _seed(db_url)
    _downgrade(db_url, before)
    with _database(db_url) as db, db.engine.connect() as conn:
        assert not NEW_TABLES & set(inspect(conn).get_table_names())
        outbox = conn.execute(text("SELECT channel FROM notifications")).scalars().all()
        assert outbox == ["webhook"]  # the page could not stay; the webhook did
        with pytest.raises(IntegrityError):
            conn.execute(
                text(
                    "INSERT INTO notifications (channel, target, payload, idempotency_key, "
                    "attempts, next_attempt_at, status, last_error, created_at) VALUES "
                    "('page', 'li', '{}', 'again', 0, :at, 'pending', '', :at)"
                ),
                {"at": T0.replace(tzinfo=None)},
            )
        conn.rollback()

    upgrade(db_url)
    with _database(db_url) as db:
        db.check_schema()
        with db.session() as session:
            assert len(session.scalars(select(PagingPolicy)).all()) == 5
