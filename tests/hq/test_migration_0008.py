"""Revision 0008: agents revocable and replaceable, enrollment tokens revocable, API tokens with
an expiry, user names unique whatever their case (duplicates renamed), health figures; and back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from hq_server.access.auth import create_api_token, revoke_api_token
from hq_server.core.domain import Role
from hq_server.core.passwords import hash_password
from hq_server.sites.enrollment import create_enrollment_token, enroll, revoke_enrollment_token
from hq_server.sites.registry import ensure_site
from hq_server.store.db import upgrade
from hq_server.store.models import Agent, EnrollmentToken, User
from protocol.wire import EnrollRequest, EnrollResponse
from tests.hq.test_migration_0005 import _at
from tests.hq.test_webhook_secrets import _database, _downgrade

T0 = datetime(2026, 1, 1, tzinfo=UTC)
# Older HQs compared user names exactly, so these could all exist.
NAMES = ["alice", "Alice", "ALICE", "alice-2", "bob"]
DAY = timedelta(days=1)


def _seed_0007(url: str) -> None:
    naive = T0.replace(tzinfo=None)
    with _database(url) as db, db.engine.begin() as conn:
        for name in NAMES:
            conn.execute(
                text(
                    "INSERT INTO users (username, role, password_hash, disabled, created_at) "
                    "VALUES (:name, 'viewer', :hash, false, :at)"
                ),
                {"name": name, "hash": "scrypt$x", "at": naive},
            )
        conn.execute(
            text(
                "INSERT INTO api_tokens (name, role, token_hash, created_at) "
                "VALUES ('script', 'admin', :hash, :at)"
            ),
            {"hash": "0" * 64, "at": naive},
        )


def test_revision_0008_renames_clashing_users_and_gives_tokens_an_expiry(db_url: str) -> None:
    upgrade(db_url, "0007")
    _seed_0007(db_url)
    before = datetime.now(UTC)
    upgrade(db_url)
    with _database(db_url) as db:
        db.check_schema()
        with db.engine.connect() as conn:
            users = conn.execute(
                text("SELECT id, username, username_key FROM users ORDER BY id")
            ).all()
            [expires] = conn.execute(text("SELECT expires_at FROM api_tokens")).scalars()
    # The oldest keeps its name; later ones differing only in case get "-<id>" (and "alice-2"
    # was taken by a real user, so "Alice" becomes "Alice-2-2").
    assert [(i, n, k) for i, n, k in users] == [
        (1, "alice", "alice"),
        (2, "Alice-2-2", "alice-2-2"),
        (3, "ALICE-3", "alice-3"),
        (4, "alice-2", "alice-2"),
        (5, "bob", "bob"),
    ]
    # Tokens of older HQs expire 30 days after the upgrade.
    stored = _at(expires)
    assert stored is not None
    assert before + timedelta(days=30) <= stored <= datetime.now(UTC) + timedelta(days=30)

    # The database refuses a name that differs from another only in case.
    with (
        pytest.raises(IntegrityError),
        _database(db_url) as db,
        db.writer() as session,
        session.begin(),
    ):
        session.add(
            User(
                username="BOB",
                username_key="bob",
                role="viewer",
                password_hash=hash_password("x"),
                disabled=False,
                created_at=T0,
            )
        )

    _downgrade(db_url, "0007")
    with _database(db_url) as db, db.engine.connect() as conn:
        columns = {
            table: {c["name"] for c in inspect(conn).get_columns(table)}
            for table in ("users", "api_tokens", "agents", "enrollment_tokens")
        }
        assert "username_key" not in columns["users"]
        assert "expires_at" not in columns["api_tokens"]
        assert not {"revoked_by", "replaced_by_id", "health", "health_at"} & columns["agents"]
        assert not {"revoked_at", "revoked_by", "replaces_agent_id"} & columns["enrollment_tokens"]
        # The new names stay.
        names = conn.execute(text("SELECT username FROM users ORDER BY id")).scalars().all()
        assert names == ["alice", "Alice-2-2", "ALICE-3", "alice-2", "bob"]
    upgrade(db_url)
    with _database(db_url) as db:
        db.check_schema()


def _seed_head(url: str, now: datetime) -> dict[str, int]:
    """At head: a replaced box (old agent retired, new one with health figures), a revoked and
    a pending re-enrollment token, and API tokens usable, expired and revoked."""
    with _database(url) as db, db.writer() as session, session.begin():
        site, _ = ensure_site(session, "site-a", now)
        old = enroll(session, _request(create_enrollment_token(session, site, now, DAY)), now)
        again = create_enrollment_token(session, site, now, DAY, replaces=_agent(session, old))
        new = enroll(session, _request(again), now)
        _agent(session, new).health = {"outbox_depth": 3, "host": {"traps_suppressed": 9.0}}
        create_enrollment_token(session, site, now, DAY)
        revoked = session.scalars(select(EnrollmentToken).order_by(EnrollmentToken.id)).all()[-1]
        revoke_enrollment_token(session, revoked.id, now, "admin")
        create_enrollment_token(session, site, now, DAY, replaces=_agent(session, new))
        create_api_token(session, "usable", Role.VIEWER, now, lifetime=DAY)
        create_api_token(session, "expired", Role.ADMIN, now - 2 * DAY, lifetime=DAY)
        create_api_token(session, "revoked", Role.ADMIN, now - 2 * DAY, lifetime=4 * DAY)
        revoke_api_token(session, 3, now - DAY)
        return {"old": old.agent_id, "new": new.agent_id}


def _request(token: str) -> EnrollRequest:
    return EnrollRequest(enrollment_token=token, hostname="box", agent_version="1.0.0")


def _agent(session: Any, response: EnrollResponse) -> Agent:
    return session.get_one(Agent, response.agent_id)


def test_downgrade_0008_keeps_what_the_older_schema_can_hold(db_url: str) -> None:
    """Back to 0007 with rows: every row stays and every foreign key holds; what 0007 cannot
    say is said the way it can: a revoked or re-enrollment token that was still pending is
    expired (an older HQ would take it as a plain enrollment token), an expired API token is
    revoked at its expiry (an older HQ knows no expiry); usable tokens stay usable."""
    upgrade(db_url)
    now = datetime.now(UTC).replace(microsecond=0)
    agents = _seed_head(db_url, now)
    _downgrade(db_url, "0007")
    after = datetime.now(UTC)
    with _database(db_url) as db, db.engine.connect() as conn:
        rows = conn.execute(text("SELECT id, revoked_at FROM agents ORDER BY id")).all()
        assert [r.id for r in rows] == [agents["old"], agents["new"]]
        assert rows[0].revoked_at is not None and rows[1].revoked_at is None  # retired, active
        tokens = conn.execute(
            text("SELECT id, expires_at, used_at, agent_id FROM enrollment_tokens ORDER BY id")
        ).all()
        assert [t.agent_id for t in tokens] == [agents["old"], agents["new"], None, None]
        # No longer usable: the revoked one since its revocation, the other since the downgrade.
        assert _at(tokens[2].expires_at) == now
        replacing = _at(tokens[3].expires_at)
        assert replacing is not None and now <= replacing <= after
        api = conn.execute(text("SELECT name, revoked_at FROM api_tokens ORDER BY id")).all()
        assert [(t.name, _at(t.revoked_at)) for t in api] == [
            ("usable", None),
            ("expired", now - DAY),
            ("revoked", now - DAY),
        ]
        for table in ("enrollment_tokens", "events", "jobs", "config_backups"):
            targets = {fk["referred_table"] for fk in inspect(conn).get_foreign_keys(table)}
            assert "agents" in targets, table
        if db.dialect == "sqlite":
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
    upgrade(db_url)
    with _database(db_url) as db:
        db.check_schema()
