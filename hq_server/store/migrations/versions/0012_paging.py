"""Paging: on-call teams, rotations and overrides, engineers' contact methods, paging policies
per grade, the paging state of tickets, digest items; the outbox takes pages.

Revision ID: 0012
Revises: 0009 (0008 before the merge of main; the lead re-chains)
Create Date: 2026-12-05

- oncall_teams, oncall_rotations (one per team and role: primary, backup), oncall_overrides.
- engineer_contacts: per HQ user, the channels in order (sealed with HQ's key: they hold
  secrets) and what may be shown of them, the language, failures in a row per channel.
- paging_policies: per grade, seeded with the defaults (grade 1: on-duty engineer and backup,
  again every 5 minutes until acknowledged; 2: on-duty engineer, every 15 minutes; 3: on-duty
  engineer once; 4: a daily digest; 5: nobody).
- ticket_paging: whom a ticket paged and when it pages them again; page_digest_items.
- notifications.channel may be 'page' (a page to an engineer through their contact channels);
  notifications.priority (the ticket's grade; due notifications are claimed lowest first, so a
  flood of pages about minor faults does not hold back a page about a major one).

Downgrade drops the new tables and the outbox's pages (the old schema cannot hold them).

Frozen copy of the schema at this revision: it must not import hq_server.models.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

logger = logging.getLogger(__name__)

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

DEFAULT_POLICIES: list[dict[str, Any]] = [
    {"grade": 1, "on_open": ["on_duty", "backup"], "on_raise": ["on_duty", "backup"],
     "repeat": 5, "digest": False},
    {"grade": 2, "on_open": ["on_duty"], "on_raise": ["on_duty"], "repeat": 15, "digest": False},
    {"grade": 3, "on_open": ["on_duty"], "on_raise": ["on_duty"], "repeat": None,
     "digest": False},
    {"grade": 4, "on_open": ["on_duty"], "on_raise": ["on_duty"], "repeat": None,
     "digest": True},
    {"grade": 5, "on_open": [], "on_raise": [], "repeat": None, "digest": False},
]  # fmt: skip


def _time(name: str, nullable: bool = False, comment: str | None = None) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, comment=comment)


def _policies_table() -> sa.TableClause:
    return sa.table(
        "paging_policies",
        sa.column("grade", sa.SmallInteger()),
        sa.column("on_open", sa.JSON()),
        sa.column("on_raise", sa.JSON()),
        sa.column("repeat_minutes", sa.Integer()),
        sa.column("digest", sa.Boolean()),
        sa.column("channels", sa.JSON()),
        sa.column("language", sa.String()),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )


def upgrade() -> None:
    op.create_table(
        "oncall_teams",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column(
            "timezone", sa.String(64), nullable=False, comment="handovers are local times here"
        ),
        sa.Column(
            "sites",
            sa.JSON(),
            nullable=False,
            comment='{"names": [...]}: the sites the team covers by name (a region)',
        ),
        sa.Column(
            "customer",
            sa.String(200),
            nullable=False,
            comment="covers the sites of this customer (sites.customer); '' none",
        ),
        sa.Column(
            "service_manager",
            sa.String(64),
            nullable=False,
            comment="user name told when a page cannot be delivered",
        ),
        _time("created_at"),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_oncall_teams"),
        sa.UniqueConstraint("name", name="uq_oncall_teams_name"),
    )
    op.create_table(
        "oncall_rotations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(10), nullable=False),
        sa.Column("period", sa.String(10), nullable=False),
        sa.Column(
            "handover", sa.String(5), nullable=False, comment="HH:MM local time of the team"
        ),
        sa.Column("weekday", sa.SmallInteger(), nullable=False, comment="weekly: 0 = Monday"),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column(
            "members", sa.JSON(), nullable=False, comment='{"members": [user names]}'
        ),
        sa.Column(
            "holidays", sa.JSON(), nullable=False, comment='{"dates": ["2026-10-01"]}'
        ),
        sa.Column(
            "holiday_cover",
            sa.String(64),
            nullable=False,
            comment="on duty on holidays; '' none",
        ),
        _time("updated_at"),
        sa.CheckConstraint("role IN ('primary', 'backup')", name="ck_oncall_rotations_role_known"),
        sa.CheckConstraint(
            "period IN ('daily', 'weekly')", name="ck_oncall_rotations_period_known"
        ),
        sa.CheckConstraint("weekday BETWEEN 0 AND 6", name="ck_oncall_rotations_weekday_range"),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["oncall_teams.id"],
            name="fk_oncall_rotations_team_id_oncall_teams",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_oncall_rotations"),
        sa.UniqueConstraint("team_id", "role", name="uq_oncall_rotations_team_id_role"),
    )
    op.create_table(
        "oncall_overrides",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(10), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        _time("starts_at"),
        _time("ends_at"),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        _time("created_at"),
        sa.CheckConstraint("role IN ('primary', 'backup')", name="ck_oncall_overrides_role_known"),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["oncall_teams.id"],
            name="fk_oncall_overrides_team_id_oncall_teams",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_oncall_overrides"),
    )
    op.create_index(
        "ix_oncall_overrides_team_id_ends_at", "oncall_overrides", ["team_id", "ends_at"]
    )
    op.create_table(
        "engineer_contacts",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column(
            "channels_sealed",
            sa.Text(),
            nullable=False,
            comment="the channels' settings as JSON, sealed with HQ's key (hold secrets)",
        ),
        sa.Column(
            "channels_shown",
            sa.JSON(),
            nullable=False,
            comment='{"channels": [{"kind", "target"}]}: what may be shown, no secrets',
        ),
        sa.Column(
            "failures",
            sa.JSON(),
            nullable=False,
            comment='{"0": n, ...}: failed attempts in a row per channel index',
        ),
        sa.Column("last_error", sa.Text(), nullable=False),
        _time("updated_at"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name="fk_engineer_contacts_user_id_users",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name="pk_engineer_contacts"),
    )
    op.create_table(
        "paging_policies",
        sa.Column("grade", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column(
            "on_open",
            sa.JSON(),
            nullable=False,
            comment='{"who": ["on_duty", "backup", "service_manager"]}',
        ),
        sa.Column("on_raise", sa.JSON(), nullable=False, comment='{"who": [...]}'),
        sa.Column(
            "repeat_minutes",
            sa.Integer(),
            nullable=True,
            comment="page again every so many minutes until acknowledged; null: once",
        ),
        sa.Column(
            "digest", sa.Boolean(), nullable=False, comment="a daily digest instead of pages"
        ),
        sa.Column(
            "channels",
            sa.JSON(),
            nullable=False,
            comment='{"kinds": [...]}: the contact channels used; empty: all, in order',
        ),
        sa.Column("language", sa.String(8), nullable=False, comment="'' the contact's own"),
        _time("updated_at"),
        sa.CheckConstraint("grade BETWEEN 1 AND 5", name="ck_paging_policies_grade_range"),
        sa.PrimaryKeyConstraint("grade", name="pk_paging_policies"),
    )
    op.create_table(
        "ticket_paging",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("recipients", sa.JSON(), nullable=False, comment='{"users": [...]}'),
        sa.Column("repeat_minutes", sa.Integer(), nullable=True),
        _time("next_repeat_at", nullable=True),
        sa.Column("repeats", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name="fk_ticket_paging_ticket_id_tickets",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["oncall_teams.id"],
            name="fk_ticket_paging_team_id_oncall_teams",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("ticket_id", name="pk_ticket_paging"),
    )
    op.create_index("ix_ticket_paging_next_repeat_at", "ticket_paging", ["next_repeat_at"])
    op.create_table(
        "page_digest_items",
        sa.Column("id", BigId, nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(10), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=True),
        _time("due_at"),
        _time("created_at"),
        _time("sent_at", nullable=True),
        sa.CheckConstraint(
            "reason IN ('rate_limit', 'daily')", name="ck_page_digest_items_reason_known"
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name="fk_page_digest_items_ticket_id_tickets",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["oncall_teams.id"],
            name="fk_page_digest_items_team_id_oncall_teams",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_page_digest_items"),
        sa.UniqueConstraint(
            "username",
            "ticket_id",
            "reason",
            name="uq_page_digest_items_username_ticket_id_reason",
        ),
    )
    op.create_index(
        "ix_page_digest_items_sent_at_due_at", "page_digest_items", ["sent_at", "due_at"]
    )
    with op.batch_alter_table("notifications") as batch:
        batch.drop_constraint("ck_notifications_channel_known", type_="check")
        batch.create_check_constraint(
            "ck_notifications_channel_known", "channel IN ('webhook', 'email', 'page')"
        )
        batch.add_column(
            sa.Column(
                "priority",
                sa.SmallInteger(),
                server_default="3",
                nullable=False,
                comment="claimed lowest first: the ticket's grade (1 most urgent)",
            )
        )
    now = datetime.now(UTC)
    if op.get_bind().dialect.name == "sqlite":
        now = now.replace(tzinfo=None)
    op.bulk_insert(
        _policies_table(),
        [
            {
                "grade": p["grade"],
                "on_open": {"who": p["on_open"]},
                "on_raise": {"who": p["on_raise"]},
                "repeat_minutes": p["repeat"],
                "digest": p["digest"],
                "channels": {"kinds": []},
                "language": "",
                "updated_at": now,
            }
            for p in DEFAULT_POLICIES
        ],
    )


def downgrade() -> None:
    bind = op.get_bind()
    pages = bind.execute(sa.text("SELECT count(*) FROM notifications WHERE channel = 'page'"))
    count = pages.scalar_one()
    if count:
        logger.warning("dropping %d pages from the notification outbox (not kept before 0012)", count)
    op.execute("DELETE FROM notifications WHERE channel = 'page'")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_constraint("ck_notifications_channel_known", type_="check")
        batch.create_check_constraint(
            "ck_notifications_channel_known", "channel IN ('webhook', 'email')"
        )
        batch.drop_column("priority")
    op.drop_index("ix_page_digest_items_sent_at_due_at", table_name="page_digest_items")
    op.drop_table("page_digest_items")
    op.drop_index("ix_ticket_paging_next_repeat_at", table_name="ticket_paging")
    op.drop_table("ticket_paging")
    op.drop_table("paging_policies")
    op.drop_table("engineer_contacts")
    op.drop_index("ix_oncall_overrides_team_id_ends_at", table_name="oncall_overrides")
    op.drop_table("oncall_overrides")
    op.drop_table("oncall_rotations")
    op.drop_table("oncall_teams")
