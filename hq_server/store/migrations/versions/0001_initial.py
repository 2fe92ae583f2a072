"""Initial schema: sites, agents, enrollment and API tokens, events, alarms, tickets.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Frozen copy of the schema at this revision: it must not import hq_server.models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN_TICKET = sa.text("status NOT IN ('resolved', 'closed')")


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.Integer(), nullable=False)


def _big_id() -> sa.Column[int]:
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False)


def _time(name: str, nullable: bool = False, comment: str | None = None) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, comment=comment)


def upgrade() -> None:
    """Create every table, constraint and index of the initial schema."""
    op.create_table(
        "sites",
        _id(),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("customer", sa.String(200), nullable=False),
        sa.Column("contact", sa.String(200), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_sites"),
        sa.UniqueConstraint("name", name="uq_sites_name"),
    )
    op.create_table(
        "api_tokens",
        _id(),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        _time("created_at"),
        _time("revoked_at", nullable=True),
        sa.CheckConstraint(
            "role IN ('viewer', 'engineer', 'admin')", name="ck_api_tokens_role_known"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )
    op.create_table(
        "ticket_counters",
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_number", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("year", name="pk_ticket_counters"),
    )
    op.create_table(
        "agents",
        _id(),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column(
            "name", sa.String(253), nullable=False, comment="hostname reported at enrollment"
        ),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        _time("enrolled_at"),
        _time("revoked_at", nullable=True),
        _time("last_seen_at", nullable=True),
        sa.Column("last_seq", sa.BigInteger(), nullable=False, comment="highest seq stored"),
        sa.Column(
            "reported_seq",
            sa.BigInteger(),
            nullable=False,
            comment="last_seq the agent reported in its heartbeat",
        ),
        sa.Column("outbox_depth", sa.Integer(), nullable=False),
        sa.Column("dropped_events", sa.BigInteger(), nullable=False),
        sa.Column("device_states", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name="fk_agents_site_id_sites"),
        sa.PrimaryKeyConstraint("id", name="pk_agents"),
        sa.UniqueConstraint("token_hash", name="uq_agents_token_hash"),
    )
    op.create_index("ix_agents_site_id", "agents", ["site_id"])
    op.create_table(
        "enrollment_tokens",
        _id(),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        _time("created_at"),
        _time("expires_at"),
        _time("used_at", nullable=True),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name="fk_enrollment_tokens_agent_id_agents"
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name="fk_enrollment_tokens_site_id_sites"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_enrollment_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_enrollment_tokens_token_hash"),
    )
    op.create_index("ix_enrollment_tokens_site_id", "enrollment_tokens", ["site_id"])
    op.create_table(
        "events",
        _big_id(),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("fault_key", sa.String(300), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("device_class", sa.String(32), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("component", sa.String(128), nullable=False),
        sa.Column("grade", sa.SmallInteger(), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        _time("observed_at"),
        _time("received_at"),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column(
            "applied",
            sa.Boolean(),
            nullable=False,
            comment="true when the event changed the state of its alarm",
        ),
        sa.CheckConstraint("kind IN ('raise', 'update', 'clear')", name="ck_events_kind_known"),
        sa.CheckConstraint("grade BETWEEN 1 AND 5", name="ck_events_grade_range"),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], name="fk_events_agent_id_agents"),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name="fk_events_site_id_sites"),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.UniqueConstraint("event_id", name="uq_events_event_id"),
    )
    op.create_index("ix_events_agent_id_seq", "events", ["agent_id", "seq"])
    op.create_index(
        "ix_events_site_id_fault_key_observed_at", "events", ["site_id", "fault_key", "observed_at"]
    )
    op.create_table(
        "alarms",
        _id(),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("fault_key", sa.String(300), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("device_class", sa.String(32), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("component", sa.String(128), nullable=False),
        sa.Column("grade", sa.SmallInteger(), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        _time("first_raised_at"),
        _time("last_change_at", comment="observed_at of the last applied event"),
        _time("cleared_at", nullable=True),
        sa.Column("raise_count", sa.Integer(), nullable=False),
        sa.Column("last_agent_id", sa.Integer(), nullable=False),
        sa.Column("last_event_seq", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("grade BETWEEN 1 AND 5", name="ck_alarms_grade_range"),
        sa.ForeignKeyConstraint(
            ["last_agent_id"], ["agents.id"], name="fk_alarms_last_agent_id_agents"
        ),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name="fk_alarms_site_id_sites"),
        sa.PrimaryKeyConstraint("id", name="pk_alarms"),
        sa.UniqueConstraint("site_id", "fault_key", name="uq_alarms_site_id_fault_key"),
    )
    op.create_index("ix_alarms_active_last_change_at", "alarms", ["active", "last_change_at"])
    op.create_table(
        "tickets",
        _id(),
        sa.Column("number", sa.String(20), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("alarm_id", sa.Integer(), nullable=True),
        sa.Column("fault_key", sa.String(300), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("component", sa.String(128), nullable=False),
        sa.Column("grade", sa.SmallInteger(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        _time("opened_at"),
        _time("ack_due_at", nullable=True),
        _time("restore_due_at", nullable=True),
        _time("acknowledged_at", nullable=True),
        _time("resolved_at", nullable=True),
        _time("closed_at", nullable=True),
        sa.Column("alarm_active", sa.Boolean(), nullable=False),
        _time("updated_at"),
        sa.CheckConstraint(
            "status IN ('new', 'acknowledged', 'in_progress', 'pending_customer', "
            "'resolved', 'closed')",
            name="ck_tickets_status_known",
        ),
        sa.CheckConstraint("grade BETWEEN 1 AND 5", name="ck_tickets_grade_range"),
        sa.ForeignKeyConstraint(["alarm_id"], ["alarms.id"], name="fk_tickets_alarm_id_alarms"),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name="fk_tickets_site_id_sites"),
        sa.PrimaryKeyConstraint("id", name="pk_tickets"),
        sa.UniqueConstraint("number", name="uq_tickets_number"),
    )
    op.create_index("ix_tickets_alarm_id", "tickets", ["alarm_id"])
    op.create_index("ix_tickets_status_opened_at", "tickets", ["status", "opened_at"])
    # One open ticket per fingerprint, enforced by the database.
    op.create_index(
        "uq_tickets_open_fingerprint",
        "tickets",
        ["site_id", "fault_key"],
        unique=True,
        sqlite_where=OPEN_TICKET,
        postgresql_where=OPEN_TICKET,
    )
    op.create_table(
        "ticket_events",
        _big_id(),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        _time("at"),
        sa.Column("who", sa.String(100), nullable=False),
        sa.Column("what", sa.String(40), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name="fk_ticket_events_ticket_id_tickets"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_ticket_events"),
    )
    op.create_index("ix_ticket_events_ticket_id", "ticket_events", ["ticket_id"])


def downgrade() -> None:
    """Drop everything (the data is lost)."""
    for table in (
        "ticket_events",
        "tickets",
        "alarms",
        "events",
        "enrollment_tokens",
        "agents",
        "ticket_counters",
        "api_tokens",
        "sites",
    ):
        op.drop_table(table)
