"""Escalations keep only their next step, on the ticket: escalation_timers -> tickets columns.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

A ticket had one timer row per level of each escalation (8 with the default chain), and every
grade change moved them all: at alarm-storm rates that was a quarter of ingest's work. Now a
ticket holds, per escalation (ack, restore), the number of levels reached and when the next
one is due (null: not running). Existing timers become: level = the lowest pending level (else
the number escalated), due = that pending timer's due time (else null).

Frozen copy of the schema at this revision: it must not import hq_server.models.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = ("ack", "restore")
# A stand-in for when a reached level escalated (not kept): as a value, and as SQLite's text.
_EPOCH = (datetime(1970, 1, 1, tzinfo=UTC), "1970-01-01 00:00:00.000000")
_BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _time(name: str, nullable: bool = False, comment: str | None = None) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, comment=comment)


timers = sa.table(
    "escalation_timers",
    sa.column("id", sa.Integer()),
    sa.column("ticket_id", sa.Integer()),
    sa.column("kind", sa.String()),
    sa.column("level", sa.Integer()),
    sa.column("due_at"),  # untyped: values pass as read
    sa.column("done_at"),  # untyped: values pass as read
    sa.column("outcome", sa.String()),
)
tickets = sa.table(
    "tickets",
    sa.column("id", sa.Integer()),
    sa.column("ack_escalation_level", sa.Integer()),
    sa.column("ack_escalation_at"),  # untyped: values pass as read
    sa.column("restore_escalation_level", sa.Integer()),
    sa.column("restore_escalation_at"),  # untyped: values pass as read
)


def upgrade() -> None:
    """Add the next-step columns, fill them from the timers, drop the timers."""
    with op.batch_alter_table("tickets") as batch:
        for kind in KINDS:
            batch.add_column(
                sa.Column(
                    f"{kind}_escalation_level",
                    sa.SmallInteger(),
                    server_default="0",
                    nullable=False,
                    comment=f"{kind} escalation levels reached so far",
                )
            )
            batch.add_column(
                _time(
                    f"{kind}_escalation_at",
                    nullable=True,
                    comment=f"when the next {kind} escalation level is due; null: not running",
                )
            )
            batch.create_index(f"ix_tickets_{kind}_escalation_at", [f"{kind}_escalation_at"])
    bind = op.get_bind()
    # (ticket, kind) -> [lowest pending level, its due time, levels escalated]
    steps: dict[tuple[int, str], list[Any]] = {}
    stmt = sa.select(timers.c.ticket_id, timers.c.kind, timers.c.level, timers.c.due_at, timers.c.outcome)
    for ticket_id, kind, level, due_at, outcome in bind.execute(stmt.order_by(timers.c.level)):
        step = steps.setdefault((ticket_id, kind), [None, None, 0])
        if outcome == "escalated":
            step[2] = max(step[2], level + 1)
        elif outcome == "pending" and step[0] is None:
            step[0], step[1] = level, due_at
    for (ticket_id, kind), (pending, due_at, escalated) in steps.items():
        values = {
            f"{kind}_escalation_level": pending if pending is not None else escalated,
            f"{kind}_escalation_at": due_at if pending is not None else None,
        }
        bind.execute(sa.update(tickets).where(tickets.c.id == ticket_id).values(**values))
    op.drop_table("escalation_timers")


def downgrade() -> None:
    """Recreate the timers: escalated rows for the levels reached, a pending row for the next
    step (later levels get their rows when the older code next moves the ticket's timers)."""
    op.create_table(
        "escalation_timers",
        sa.Column("id", _BIG, nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        _time("due_at"),
        _time("done_at", nullable=True),
        sa.Column(
            "outcome", sa.String(20), nullable=False, comment="pending, escalated, cancelled"
        ),
        sa.CheckConstraint("kind IN ('ack', 'restore')", name="ck_escalation_timers_kind_known"),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name="fk_escalation_timers_ticket_id_tickets"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_escalation_timers"),
        sa.UniqueConstraint(
            "ticket_id", "kind", "level", name="uq_escalation_timers_ticket_id_kind_level"
        ),
    )
    op.create_index(
        "ix_escalation_timers_done_at_due_at", "escalation_timers", ["done_at", "due_at"]
    )
    bind = op.get_bind()
    rows: list[dict[str, Any]] = []
    for row in bind.execute(sa.select(tickets)).mappings():
        for kind in KINDS:
            reached, due_at = row[f"{kind}_escalation_level"], row[f"{kind}_escalation_at"]
            done = _EPOCH[bind.dialect.name == "sqlite"]
            for level in range(reached):
                rows.append(_timer(row["id"], kind, level, done, done, "escalated"))
            if due_at is not None:
                rows.append(_timer(row["id"], kind, reached, due_at, None, "pending"))
    if rows:
        bind.execute(sa.insert(timers), rows)
    with op.batch_alter_table("tickets") as batch:
        for kind in KINDS:
            batch.drop_index(f"ix_tickets_{kind}_escalation_at")
            batch.drop_column(f"{kind}_escalation_at")
            batch.drop_column(f"{kind}_escalation_level")


def _timer(
    ticket_id: int, kind: str, level: int, due_at: Any, done_at: Any, outcome: str
) -> dict[str, Any]:
    return {
        "ticket_id": ticket_id,
        "kind": kind,
        "level": level,
        "due_at": due_at,
        "done_at": done_at,
        "outcome": outcome,
    }
