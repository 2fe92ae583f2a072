"""Jobs for agents, their item results, schedules (with APScheduler's job store), config backups.

Revision ID: 0002j
Revises: 0001
Create Date: 2026-11-23

A branch beside 0002 (after-sales tables); hq_server.db.upgrade() upgrades to all heads.
Frozen copy of the schema at this revision: it must not import hq_server.models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002j"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JOB_KINDS = "'run_checklist', 'run_check', 'backup_config', 'poll_device', 'run_action'"
JOB_STATES = "'queued', 'dispatched', 'running', 'done', 'cancel_requested', 'cancelled', 'expired'"
RESULT_STATUSES = "'ok', 'failed', 'refused', 'timeout', 'cancelled', 'error'"


def _time(name: str, nullable: bool = False, comment: str | None = None) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, comment=comment)


def _big_id() -> sa.Column[int]:
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False)


def upgrade() -> None:
    """Create job_schedules, jobs, job_items, config_backups and apscheduler_jobs."""
    op.create_table(
        "job_schedules",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("item", sa.String(64), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("timeout_s", sa.Integer(), nullable=False),
        sa.Column("minute", sa.String(64), nullable=False),
        sa.Column("hour", sa.String(64), nullable=False),
        sa.Column("day", sa.String(64), nullable=False),
        sa.Column("month", sa.String(64), nullable=False),
        sa.Column("day_of_week", sa.String(64), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        _time("created_at"),
        sa.CheckConstraint(f"kind IN ({JOB_KINDS})", name="ck_job_schedules_kind_known"),
        sa.CheckConstraint("timeout_s BETWEEN 1 AND 3600", name="ck_job_schedules_timeout_range"),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name="fk_job_schedules_site_id_sites"),
        sa.PrimaryKeyConstraint("id", name="pk_job_schedules"),
    )
    op.create_index("ix_job_schedules_site_id", "job_schedules", ["site_id"])

    op.create_table(
        "jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column(
            "agent_id",
            sa.Integer(),
            nullable=True,
            comment="only this agent may take it; NULL: any agent of the site",
        ),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("item", sa.String(64), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("approval_reference", sa.String(100), nullable=True),
        sa.Column("approval_by", sa.String(200), nullable=True),
        _time("approval_window_start", nullable=True),
        _time("approval_window_end", nullable=True),
        sa.Column("timeout_s", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("schedule_id", sa.Uuid(), nullable=True),
        _time(
            "scheduled_for",
            nullable=True,
            comment="the schedule's fire time this job was made for",
        ),
        _time("created_at"),
        sa.Column("dispatched_agent_id", sa.Integer(), nullable=True),
        _time("dispatched_at", nullable=True),
        _time("deadline_at", nullable=True, comment="dispatched_at + timeout_s"),
        _time("cancel_requested_at", nullable=True),
        _time("cancel_sent_at", nullable=True, comment="when the agent was first told to cancel"),
        _time("finished_at", nullable=True),
        sa.Column("result_status", sa.String(16), nullable=True),
        sa.Column(
            "result",
            sa.JSON(),
            nullable=True,
            comment="summary, started_at, finished_at of the agent's result (items: job_items)",
        ),
        sa.CheckConstraint(f"kind IN ({JOB_KINDS})", name="ck_jobs_kind_known"),
        sa.CheckConstraint(f"status IN ({JOB_STATES})", name="ck_jobs_status_known"),
        sa.CheckConstraint(
            f"result_status IS NULL OR result_status IN ({RESULT_STATUSES})",
            name="ck_jobs_result_status_known",
        ),
        sa.CheckConstraint("timeout_s BETWEEN 1 AND 3600", name="ck_jobs_timeout_range"),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name="fk_jobs_site_id_sites"),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], name="fk_jobs_agent_id_agents"),
        sa.ForeignKeyConstraint(
            ["dispatched_agent_id"], ["agents.id"], name="fk_jobs_dispatched_agent_id_agents"
        ),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["job_schedules.id"],
            name="fk_jobs_schedule_id_job_schedules",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.UniqueConstraint(
            "schedule_id", "scheduled_for", name="uq_jobs_schedule_id_scheduled_for"
        ),
    )
    op.create_index(
        "ix_jobs_site_id_status_created_at", "jobs", ["site_id", "status", "created_at"]
    )
    op.create_index("ix_jobs_status_deadline_at", "jobs", ["status", "deadline_at"])
    op.create_index("ix_jobs_dispatched_agent_id_status", "jobs", ["dispatched_agent_id", "status"])

    op.create_table(
        "job_items",
        _big_id(),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False, comment="order in the agent's result"),
        sa.Column(
            "device_id",
            sa.String(64),
            nullable=True,
            comment="the item's device, else the job's; NULL for site-wide items",
        ),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        _time("at", comment="when HQ stored the result"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_job_items_job_id_jobs", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name="fk_job_items_site_id_sites"),
        sa.PrimaryKeyConstraint("id", name="pk_job_items"),
    )
    op.create_index("ix_job_items_job_id", "job_items", ["job_id"])
    op.create_index("ix_job_items_site_id_at", "job_items", ["site_id", "at"])
    op.create_index(
        "ix_job_items_site_id_device_id_at", "job_items", ["site_id", "device_id", "at"]
    )

    op.create_table(
        "config_backups",
        _big_id(),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        _time("taken_at", comment="when the agent captured it"),
        _time("received_at"),
        _time("confirmed_at", comment="the last time an upload had this same text"),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False, comment="bytes of UTF-8 text"),
        sa.Column(
            "changed",
            sa.Boolean(),
            nullable=False,
            comment="differs from the previous version (false for the first)",
        ),
        sa.Column("job_id", sa.Uuid(), nullable=True, comment="the backup job, if any"),
        sa.CheckConstraint("version >= 1", name="ck_config_backups_version_positive"),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name="fk_config_backups_site_id_sites"),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name="fk_config_backups_agent_id_agents"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_config_backups"),
        sa.UniqueConstraint(
            "site_id", "device_id", "version", name="uq_config_backups_site_id_device_id_version"
        ),
    )

    # APScheduler 3.x SQLAlchemyJobStore layout (it would create the table itself; we own it).
    op.create_table(
        "apscheduler_jobs",
        sa.Column("id", sa.Unicode(191), nullable=False),
        sa.Column("next_run_time", sa.Float(25), nullable=True),
        sa.Column("job_state", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_apscheduler_jobs"),
    )
    op.create_index("ix_apscheduler_jobs_next_run_time", "apscheduler_jobs", ["next_run_time"])


def downgrade() -> None:
    """Drop the tables of this revision."""
    op.drop_table("apscheduler_jobs")
    op.drop_table("config_backups")
    op.drop_table("job_items")
    op.drop_table("jobs")
    op.drop_table("job_schedules")
