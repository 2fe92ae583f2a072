"""Accounts: agents can be revoked and replaced, enrollment tokens revoked, API tokens expire,
user names are unique regardless of case, and each agent's last heartbeat figures are kept.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08

- agents: revoked_by (who revoked it), replaced_by_id (the agent that re-enrolled in its
  place), health (the last heartbeat's figures, JSON) and health_at (when HQ received it).
- enrollment_tokens: revoked_at, revoked_by, and replaces_agent_id (a re-enrollment token:
  its use retires that agent).
- api_tokens: expires_at, required. Tokens that exist at the upgrade expire 30 days after it,
  so scripts keep working while their owners issue new ones (`hq token list` shows when).
- users: username_key, the lower-case user name, unique. A column rather than an index on
  lower(username): SQLite cannot reflect expression indexes, so a later batch migration of
  the table (which rebuilds it from reflection) would silently drop such an index. User names
  already differing only in case are kept: the oldest (lowest id) keeps its name, each later
  one is renamed to "<name>-<id>" (logged as a warning) and logs in with that name.
  A downgrade drops the column and keeps the new names.

A downgrade keeps every row and says what 0007 has no column for the way 0007 can: a pending
enrollment token that was revoked expires when it was revoked, one that would retire an agent
(re-enrollment) expires at once (0007 would take it as a plain enrollment token, and the agent it
was to retire would stay); an API token past its expiry is revoked at its expiry (0007 knows no
expiry). Tokens still usable stay usable.

Frozen copy of the schema at this revision: it must not import hq_server.models.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

logger = logging.getLogger(__name__)

EXISTING_TOKEN_LIFETIME = timedelta(days=30)
USERNAME_MAX = 64

users = sa.table(
    "users",
    sa.column("id", sa.Integer()),
    sa.column("username", sa.String()),
    sa.column("username_key", sa.String()),
)
api_tokens = sa.table("api_tokens", sa.column("expires_at"))  # untyped: value passed as stored
_STORED_TIME = sa.DateTime(timezone=True)
enrollment_tokens = sa.table(
    "enrollment_tokens",
    sa.column("expires_at", _STORED_TIME),
    sa.column("used_at", _STORED_TIME),
    sa.column("revoked_at", _STORED_TIME),
    sa.column("replaces_agent_id", sa.Integer()),
)
expiring_api_tokens = sa.table(
    "api_tokens", sa.column("expires_at", _STORED_TIME), sa.column("revoked_at", _STORED_TIME)
)


def _time(name: str, nullable: bool = True, comment: str | None = None) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, comment=comment)


def _stored_now_plus(delta: timedelta) -> datetime:
    """UTC now + delta as the database stores it (SQLite: naive UTC; PostgreSQL: aware)."""
    value = datetime.now(UTC) + delta
    return value.replace(tzinfo=None) if op.get_bind().dialect.name == "sqlite" else value


def _unique_names() -> None:
    """Fill username_key; rename later users whose names differ from an earlier one's only in
    case, to "<name>-<id>"."""
    bind = op.get_bind()
    rows = bind.execute(sa.select(users.c.id, users.c.username).order_by(users.c.id)).all()
    taken = {name.lower() for _id, name in rows}
    seen: set[str] = set()
    for user_id, name in rows:
        key = name.lower()
        if key in seen:
            new = name
            while new.lower() in taken:
                suffix = f"-{user_id}"
                new = new[: USERNAME_MAX - len(suffix)] + suffix
            logger.warning(
                "user %r (id %s) renamed to %r: user names are now unique regardless of case, "
                "and an older user has this name in another case",
                name,
                user_id,
                new,
            )
            taken.add(new.lower())
            name, key = new, new.lower()
        seen.add(key)
        bind.execute(
            users.update().where(users.c.id == user_id).values(username=name, username_key=key)
        )


def upgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("revoked_by", sa.String(100), nullable=True))
        batch.add_column(
            sa.Column(
                "replaced_by_id",
                sa.Integer(),
                nullable=True,
                comment="the agent that re-enrolled in this one's place",
            )
        )
        batch.add_column(
            sa.Column("health", sa.JSON(), nullable=True, comment="the last heartbeat's figures")
        )
        batch.add_column(_time("health_at", comment="when HQ received the last heartbeat"))
        batch.create_foreign_key(
            "fk_agents_replaced_by_id_agents", "agents", ["replaced_by_id"], ["id"]
        )
    with op.batch_alter_table("enrollment_tokens") as batch:
        batch.add_column(_time("revoked_at"))
        batch.add_column(sa.Column("revoked_by", sa.String(100), nullable=True))
        batch.add_column(
            sa.Column(
                "replaces_agent_id",
                sa.Integer(),
                nullable=True,
                comment="re-enrollment: the agent its use retires",
            )
        )
        batch.create_foreign_key(
            "fk_enrollment_tokens_replaces_agent_id_agents",
            "agents",
            ["replaces_agent_id"],
            ["id"],
        )
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(_time("expires_at"))
    op.execute(api_tokens.update().values(expires_at=_stored_now_plus(EXISTING_TOKEN_LIFETIME)))
    with op.batch_alter_table("api_tokens") as batch:
        batch.alter_column("expires_at", existing_type=sa.DateTime(timezone=True), nullable=False)
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column(
                "username_key",
                sa.String(64),
                nullable=True,
                comment="the user name in lower case: names are unique regardless of case",
            )
        )
    _unique_names()
    with op.batch_alter_table("users") as batch:
        batch.alter_column("username_key", existing_type=sa.String(64), nullable=False)
        batch.create_unique_constraint("uq_users_username_key", ["username_key"])


def _refusals_as_0007_says_them() -> None:
    """Before the columns go: what they refuse, refused by the columns 0007 has (see the
    module)."""
    bind = op.get_bind()
    now = _stored_now_plus(timedelta(0))
    pending = sa.and_(enrollment_tokens.c.used_at.is_(None), enrollment_tokens.c.expires_at > now)
    revoked = bind.execute(
        enrollment_tokens.update()
        .where(pending, enrollment_tokens.c.revoked_at.is_not(None))
        .values(expires_at=enrollment_tokens.c.revoked_at)
    ).rowcount
    replacing = bind.execute(
        enrollment_tokens.update()
        .where(pending, enrollment_tokens.c.replaces_agent_id.is_not(None))
        .values(expires_at=now)
    ).rowcount
    expired = bind.execute(
        expiring_api_tokens.update()
        .where(expiring_api_tokens.c.revoked_at.is_(None), expiring_api_tokens.c.expires_at <= now)
        .values(revoked_at=expiring_api_tokens.c.expires_at)
    ).rowcount
    if revoked or replacing or expired:
        logger.warning(
            "downgrade: %d revoked and %d re-enrollment tokens still pending expired now, %d "
            "expired API tokens marked revoked (the older schema has no column for either)",
            revoked,
            replacing,
            expired,
        )


def downgrade() -> None:
    _refusals_as_0007_says_them()
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("uq_users_username_key", type_="unique")
        batch.drop_column("username_key")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("expires_at")
    with op.batch_alter_table("enrollment_tokens") as batch:
        batch.drop_constraint("fk_enrollment_tokens_replaces_agent_id_agents", type_="foreignkey")
        batch.drop_column("replaces_agent_id")
        batch.drop_column("revoked_by")
        batch.drop_column("revoked_at")
    with op.batch_alter_table("agents") as batch:
        batch.drop_constraint("fk_agents_replaced_by_id_agents", type_="foreignkey")
        batch.drop_column("health_at")
        batch.drop_column("health")
        batch.drop_column("replaced_by_id")
        batch.drop_column("revoked_by")
