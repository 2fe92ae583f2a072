"""Webhook HMAC keys leave the notification outbox: notifications.secret -> secret_ref.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

The outbox kept a copy of each webhook's signing key, so a dump of the table handed the keys
out. Now a row names where the key is looked up when it is sent (hq_server.notify): the
contact at `contact:<level>:<index>` of the ticket's escalation chain, or `url` for
settings.webhook_secrets. Existing rows get the reference their key came from: the contact
named by the idempotency key (escalation:<ticket>:<kind>:<level>:<index>:webhook) if that
contact has the same key, else `url`.

Dropping a column does not scrub the old values from free pages of the SQLite file or from
dead PostgreSQL tuples: VACUUM (PostgreSQL: VACUUM FULL notifications) after upgrading.
Frozen copy of the schema at this revision: it must not import hq_server.models.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REF_COMMENT = (
    "where the webhook's HMAC key is looked up when sending: contact:<level>:<index> of the "
    "ticket's escalation chain, or url (settings.webhook_secrets); never the key itself"
)
_WEBHOOK_KEY = re.compile(r"^escalation:\d+:(?:ack|restore):(\d+):(\d+):webhook$")

notifications = sa.table(
    "notifications",
    sa.column("id", sa.Integer()),
    sa.column("ticket_id", sa.Integer()),
    sa.column("secret", sa.String()),
    sa.column("secret_ref", sa.String()),
    sa.column("idempotency_key", sa.String()),
    sa.column("status", sa.String()),
    sa.column("last_error", sa.Text()),
)
tickets = sa.table("tickets", sa.column("id", sa.Integer()), sa.column("escalation", sa.JSON()))


def _contact(escalation: Any, level: int, index: int) -> dict[str, Any]:
    """The contact at (level, index) of a ticket's chain snapshot, or {}."""
    try:
        contact = escalation["levels"][level]["contacts"][index]
    except (TypeError, KeyError, IndexError):
        return {}
    return contact if isinstance(contact, dict) else {}


def _snapshot(ticket_id: int | None) -> Any:
    if ticket_id is None:
        return None
    query = sa.select(tickets.c.escalation).where(tickets.c.id == ticket_id)
    return op.get_bind().execute(query).scalar_one_or_none()


def _ref(key: str, secret: str, escalation: Any) -> str:
    match = _WEBHOOK_KEY.match(key)
    if match is not None:
        level, index = int(match[1]), int(match[2])
        if _contact(escalation, level, index).get("webhook_secret") == secret:
            return f"contact:{level}:{index}"
    return "url"


def upgrade() -> None:
    """Add secret_ref, fill it from where each stored key came from, drop secret."""
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("secret_ref", sa.String(100), nullable=True, comment=REF_COMMENT))
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(
            notifications.c.id,
            notifications.c.ticket_id,
            notifications.c.secret,
            notifications.c.idempotency_key,
        ).where(notifications.c.secret.is_not(None), notifications.c.secret != "")
    ).all()
    for row in rows:
        ref = _ref(row.idempotency_key, row.secret, _snapshot(row.ticket_id))
        bind.execute(
            sa.update(notifications).where(notifications.c.id == row.id).values(secret_ref=ref)
        )
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("secret")


def downgrade() -> None:
    """Put keys of contacts back from the tickets' chains. Keys from settings cannot be put
    back (they are not in the database): such pending webhooks are failed rather than sent
    unsigned by the older code."""
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(
            sa.Column("secret", sa.String(200), nullable=True, comment="HMAC key of a webhook")
        )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(
            notifications.c.id,
            notifications.c.ticket_id,
            notifications.c.secret_ref,
            notifications.c.status,
        ).where(notifications.c.secret_ref.is_not(None))
    ).all()
    for row in rows:
        kind, _, position = row.secret_ref.partition(":")
        secret = None
        if kind == "contact":
            level, _, index = position.partition(":")
            found = _contact(_snapshot(row.ticket_id), int(level), int(index))
            secret = found.get("webhook_secret") or None
        values: dict[str, Any] = {"secret": secret}
        if secret is None and row.status == "pending":
            values.update(status="failed", last_error="webhook key lost in a schema downgrade")
        bind.execute(
            sa.update(notifications).where(notifications.c.id == row.id).values(**values)
        )
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("secret_ref")
