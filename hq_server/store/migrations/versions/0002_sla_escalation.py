"""Users and audit, SLA calendars, escalation, notifications, maintenance windows, flapping.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

Frozen copy of the schema at this revision: it must not import hq_server.models.
The audit log is append-only: triggers refuse UPDATE and DELETE on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_SQLITE_AUDIT_TRIGGERS = [
    """CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
       BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
    """CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
       BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
]
_PG_AUDIT_TRIGGERS = [
    """CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$""",
    """CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
       FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()""",
    """CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
       FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()""",
]


def _time(name: str, nullable: bool = False, comment: str | None = None) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, comment=comment)


def _create_tables() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(300), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        _time("created_at"),
        sa.CheckConstraint("role IN ('viewer', 'engineer', 'admin')", name="ck_users_role_known"),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("username", name="uq_users_username"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", _BIG, nullable=False),
        _time("at"),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("summary", sa.String(500), nullable=False),
        sa.Column("target_ids", sa.JSON(), nullable=False),
        sa.Column("client", sa.String(100), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_actor_at", "audit_log", ["actor", "at"])
    op.create_table(
        "calendars",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column(
            "always_open", sa.Boolean(), nullable=False, comment="24x7: every minute counts"
        ),
        sa.Column(
            "hours", sa.JSON(), nullable=False, comment='{"mon": [["08:30", "17:30"]], ...}'
        ),
        sa.Column(
            "holidays", sa.JSON(), nullable=False, comment='{"dates": ["2026-10-01"]}'
        ),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_calendars"),
        sa.UniqueConstraint("name", name="uq_calendars_name"),
    )
    op.create_table(
        "escalation_chains",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column(
            "customer", sa.String(200), nullable=False, comment="'' matches every customer"
        ),
        sa.Column("grade", sa.SmallInteger(), nullable=False, comment="0 matches every grade"),
        sa.Column("levels", sa.JSON(), nullable=False, comment='{"levels": [...]}'),
        _time("updated_at"),
        sa.CheckConstraint("grade BETWEEN 0 AND 5", name="ck_escalation_chains_grade_range"),
        sa.PrimaryKeyConstraint("id", name="pk_escalation_chains"),
        sa.UniqueConstraint(
            "customer", "grade", name="uq_escalation_chains_customer_grade"
        ),
    )
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
        sa.CheckConstraint(
            "kind IN ('ack', 'restore')", name="ck_escalation_timers_kind_known"
        ),
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
    op.create_table(
        "notifications",
        sa.Column("id", _BIG, nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("target", sa.String(500), nullable=False),
        sa.Column("secret", sa.String(200), nullable=True, comment="HMAC key of a webhook"),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _time("next_attempt_at"),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        _time("created_at"),
        _time("sent_at", nullable=True),
        sa.CheckConstraint(
            "channel IN ('webhook', 'email')", name="ck_notifications_channel_known"
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'failed')", name="ck_notifications_status_known"
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name="fk_notifications_ticket_id_tickets"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_notifications"),
        sa.UniqueConstraint("idempotency_key", name="uq_notifications_idempotency_key"),
    )
    op.create_index("ix_notifications_ticket_id", "notifications", ["ticket_id"])
    op.create_index(
        "ix_notifications_status_next_attempt_at", "notifications", ["status", "next_attempt_at"]
    )
    op.create_table(
        "maintenance_windows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("device_id", sa.String(64), nullable=True),
        sa.Column("code", sa.String(64), nullable=True),
        _time("starts_at"),
        _time("ends_at"),
        sa.Column("author", sa.String(100), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("approval_ref", sa.String(100), nullable=False),
        _time("created_at"),
        _time(
            "released_at",
            nullable=True,
            comment="when the scheduler opened tickets for alarms held by the window",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name="fk_maintenance_windows_site_id_sites"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_maintenance_windows"),
    )
    op.create_index(
        "ix_maintenance_windows_starts_at_ends_at",
        "maintenance_windows",
        ["starts_at", "ends_at"],
    )
    op.create_table(
        "ticket_alarm_links",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("alarm_id", sa.Integer(), nullable=False),
        _time("linked_at"),
        sa.ForeignKeyConstraint(
            ["alarm_id"], ["alarms.id"], name="fk_ticket_alarm_links_alarm_id_alarms"
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name="fk_ticket_alarm_links_ticket_id_tickets"
        ),
        sa.PrimaryKeyConstraint("ticket_id", "alarm_id", name="pk_ticket_alarm_links"),
    )


def _add_columns() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("user_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_api_tokens_user_id_users", "users", ["user_id"], ["id"])
        batch.create_index("ix_api_tokens_user_id", ["user_id"])
    with op.batch_alter_table("sites") as batch:
        batch.add_column(
            sa.Column(
                "calendar_id",
                sa.Integer(),
                nullable=True,
                comment="business hours; none: Mon-Fri 08:30-17:30 local",
            )
        )
        batch.create_foreign_key(
            "fk_sites_calendar_id_calendars", "calendars", ["calendar_id"], ["id"]
        )
    with op.batch_alter_table("alarms") as batch:
        batch.add_column(
            sa.Column("flapping", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column(
                "state_log",
                sa.String(32),
                nullable=False,
                server_default="",
                comment="last states, 1=raised 0=cleared, newest last",
            )
        )
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("symptom", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("on_duty", sa.String(100), nullable=False, server_default=""))
        batch.add_column(
            sa.Column("assignee", sa.String(100), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("resolution", sa.JSON(), nullable=True))
        batch.add_column(
            sa.Column("time_spent_minutes", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("paused_since", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column(
                "pauses",
                sa.JSON(),
                nullable=True,
                comment='{"intervals": [[start, end], ...]} spent pending the customer',
            )
        )
        batch.add_column(
            sa.Column(
                "escalation",
                sa.JSON(),
                nullable=True,
                comment="the escalation chain copied when the ticket opened",
            )
        )
    # The empty-string defaults only filled existing rows; the application sets these columns.
    for table, columns in (("alarms", ["state_log"]), ("tickets", ["symptom", "on_duty", "assignee"])):
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.alter_column(column, server_default=None)


def upgrade() -> None:
    """Create the new tables, add the new columns, make the audit log append-only."""
    _create_tables()
    _add_columns()
    statements = (
        _PG_AUDIT_TRIGGERS if op.get_bind().dialect.name == "postgresql" else _SQLITE_AUDIT_TRIGGERS
    )
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    """Drop what upgrade added (the data in it is lost)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TABLE audit_log")
        op.execute("DROP FUNCTION audit_log_append_only()")
    else:
        op.drop_table("audit_log")
    with op.batch_alter_table("tickets") as batch:
        for column in (
            "escalation",
            "pauses",
            "paused_since",
            "time_spent_minutes",
            "resolution",
            "assignee",
            "on_duty",
            "symptom",
        ):
            batch.drop_column(column)
    with op.batch_alter_table("alarms") as batch:
        batch.drop_column("state_log")
        batch.drop_column("flapping")
    with op.batch_alter_table("sites") as batch:
        batch.drop_constraint("fk_sites_calendar_id_calendars", type_="foreignkey")
        batch.drop_column("calendar_id")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_index("ix_api_tokens_user_id")
        batch.drop_constraint("fk_api_tokens_user_id_users", type_="foreignkey")
        batch.drop_column("user_id")
    for table in (
        "ticket_alarm_links",
        "maintenance_windows",
        "notifications",
        "escalation_timers",
        "escalation_chains",
        "calendars",
        "users",
    ):
        op.drop_table(table)
