"""The console: server-side login sessions, and each user's chosen language.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05

- web_sessions: one row per console login. The cookie itself is never stored, only its sha256
  (id); the CSRF token of the session's forms; when it was made, last used (the idle timeout
  counts from there) and when it ends regardless; the address it logged in from.
- users: language, the console language the user chose (zh_CN, en); null: the browser's.

A downgrade drops both: everybody logged in to the console must log in again.

Frozen copy of the schema at this revision: it must not import hq_server.models.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _time(name: str, comment: str | None = None) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, comment=comment)


def upgrade() -> None:
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.String(64), nullable=False, comment="sha256 of the cookie"),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        _time("created_at"),
        _time("last_seen_at", "the idle timeout counts from here"),
        _time("expires_at", "the end, however busy the session"),
        sa.Column("client", sa.String(100), nullable=False, comment="the address it logged in from"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_web_sessions_user_id_users"),
        sa.PrimaryKeyConstraint("id", name="pk_web_sessions"),
    )
    op.create_index("ix_web_sessions_user_id", "web_sessions", ["user_id"])
    op.create_index("ix_web_sessions_last_seen_at", "web_sessions", ["last_seen_at"])
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column(
                "language",
                sa.String(16),
                nullable=True,
                comment="the console language the user chose (zh_CN, en); null: the browser's",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("language")
    op.drop_index("ix_web_sessions_last_seen_at", table_name="web_sessions")
    op.drop_index("ix_web_sessions_user_id", table_name="web_sessions")
    op.drop_table("web_sessions")
