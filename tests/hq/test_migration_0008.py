"""Revision 0008: agents revocable and replaceable, enrollment tokens revocable, API tokens with
an expiry, user names unique whatever their case (duplicates renamed), health figures; and back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from hq_server.core.passwords import hash_password
from hq_server.store.db import upgrade
from hq_server.store.models import User
from tests.hq.test_migration_0005 import _at
from tests.hq.test_webhook_secrets import _database, _downgrade

T0 = datetime(2026, 1, 1, tzinfo=UTC)
# Older HQs compared user names exactly, so these could all exist.
NAMES = ["alice", "Alice", "ALICE", "alice-2", "bob"]


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
