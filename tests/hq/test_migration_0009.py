"""Revision 0009: console sessions (web_sessions) and each user's chosen language; and back,
with rows present."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import inspect, text

from hq_server.store.db import upgrade
from tests.hq.test_webhook_secrets import _database, _downgrade

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_revision_0009_adds_sessions_and_language_and_downgrades_with_rows(db_url: str) -> None:
    upgrade(db_url, "0008")
    naive = T0.replace(tzinfo=None)
    with _database(db_url) as db, db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (username, username_key, role, password_hash, disabled, "
                "created_at) VALUES ('alice', 'alice', 'engineer', 'scrypt$x', false, :at)"
            ),
            {"at": naive},
        )
    upgrade(db_url)
    with _database(db_url) as db:
        db.check_schema()
        with db.engine.begin() as conn:
            # The user is kept, with no language chosen yet.
            assert conn.execute(text("SELECT username, language FROM users")).all() == [
                ("alice", None)
            ]
            conn.execute(text("UPDATE users SET language = 'zh_CN'"))
            conn.execute(
                text(
                    "INSERT INTO web_sessions (id, user_id, csrf_token, created_at, "
                    "last_seen_at, expires_at, client) "
                    "VALUES (:id, 1, 'c', :at, :at, :at, '127.0.0.1')"
                ),
                {"id": "a" * 64, "at": naive},
            )

    _downgrade(db_url, "0008")
    with _database(db_url) as db, db.engine.connect() as conn:
        assert "web_sessions" not in inspect(conn).get_table_names()
        assert "language" not in {c["name"] for c in inspect(conn).get_columns("users")}
        assert conn.execute(text("SELECT username FROM users")).scalars().all() == ["alice"]
    upgrade(db_url)
    with _database(db_url) as db:
        db.check_schema()
