"""Tables of remote work: jobs for agents, their item results, schedules, config backups.

Revision 0002j creates them. The APScheduler job store table is declared here too, with exactly
the columns APScheduler's SQLAlchemyJobStore uses, so that the migration owns it and the schema
comparison stays clean.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    Unicode,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from hq_server.store.models.base import Base, BigId
from protocol.wire import JobKind, JobStatus


class JobState(StrEnum):
    """Where a job is in its life at HQ (JobStatus is how the agent says it ended)."""

    QUEUED = "queued"  # waiting for an agent of the site to poll
    DISPATCHED = "dispatched"  # handed to one agent; waiting for its result
    RUNNING = "running"  # reserved: the wire protocol has no "started" message yet
    DONE = "done"  # the agent reported a result (see result_status: ok, failed, refused, ...)
    CANCEL_REQUESTED = "cancel_requested"  # dispatched, then cancelled: the agent is told
    CANCELLED = "cancelled"
    EXPIRED = "expired"  # no result within timeout_s + grace, or never picked up


# A job in one of these is finished; nothing changes it any more (except a late result).
FINISHED_STATES: tuple[JobState, ...] = (JobState.DONE, JobState.CANCELLED, JobState.EXPIRED)
# A job in one of these is held by the agent it was dispatched to.
HELD_STATES: tuple[JobState, ...] = (
    JobState.DISPATCHED,
    JobState.RUNNING,
    JobState.CANCEL_REQUESTED,
)


def _in(values: list[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


class JobRecord(Base):
    """One unit of remote work for an agent of a site (agent_id: one agent, or NULL for any)."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(f"kind IN ({_in([k.value for k in JobKind])})", name="kind_known"),
        CheckConstraint(f"status IN ({_in([s.value for s in JobState])})", name="status_known"),
        CheckConstraint(
            f"result_status IS NULL OR result_status IN ({_in([s.value for s in JobStatus])})",
            name="result_status_known",
        ),
        CheckConstraint("timeout_s BETWEEN 1 AND 3600", name="timeout_range"),
        # A schedule fires at most once per slot, however many HQ replicas run its trigger.
        UniqueConstraint("schedule_id", "scheduled_for"),
        Index(None, "site_id", "status", "created_at"),
        Index(None, "status", "deadline_at"),
        Index(None, "dispatched_agent_id", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    agent_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id"), comment="only this agent may take it; NULL: any agent of the site"
    )
    kind: Mapped[str] = mapped_column(String(16))
    item: Mapped[str] = mapped_column(String(64))
    device_id: Mapped[str | None] = mapped_column(String(64))
    params: Mapped[dict[str, Any]]
    approval_reference: Mapped[str | None] = mapped_column(String(100))
    approval_by: Mapped[str | None] = mapped_column(String(200))
    approval_window_start: Mapped[datetime | None]
    approval_window_end: Mapped[datetime | None]
    timeout_s: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    requested_by: Mapped[str] = mapped_column(String(200))
    schedule_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("job_schedules.id", ondelete="SET NULL")
    )
    scheduled_for: Mapped[datetime | None] = mapped_column(
        comment="the schedule's fire time this job was made for"
    )
    created_at: Mapped[datetime]
    dispatched_agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    dispatched_at: Mapped[datetime | None]
    deadline_at: Mapped[datetime | None] = mapped_column(comment="dispatched_at + timeout_s")
    cancel_requested_at: Mapped[datetime | None]
    cancel_sent_at: Mapped[datetime | None] = mapped_column(
        comment="when the agent was first told to cancel"
    )
    finished_at: Mapped[datetime | None]
    result_status: Mapped[str | None] = mapped_column(String(16))
    result: Mapped[dict[str, Any] | None] = mapped_column(
        comment="summary, started_at, finished_at of the agent's result (items: job_items)"
    )


class JobItemRecord(Base):
    """One item of a job's result (a checklist item, a check, an action step), for reports."""

    __tablename__ = "job_items"
    __table_args__ = (
        Index(None, "site_id", "at"),
        Index(None, "site_id", "device_id", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    position: Mapped[int] = mapped_column(Integer, comment="order in the agent's result")
    device_id: Mapped[str | None] = mapped_column(
        String(64), comment="the item's device, else the job's; NULL for site-wide items"
    )
    name: Mapped[str] = mapped_column(String(100))
    category: Mapped[str] = mapped_column(String(32))
    passed: Mapped[bool] = mapped_column(Boolean)
    detail: Mapped[str] = mapped_column(Text)
    values: Mapped[dict[str, Any]]
    at: Mapped[datetime] = mapped_column(comment="when HQ stored the result")


class JobSchedule(Base):
    """A recurring job of a site (cron fields in `timezone`); its trigger lives in APScheduler."""

    __tablename__ = "job_schedules"
    __table_args__ = (
        CheckConstraint(f"kind IN ({_in([k.value for k in JobKind])})", name="kind_known"),
        CheckConstraint("timeout_s BETWEEN 1 AND 3600", name="timeout_range"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    item: Mapped[str] = mapped_column(String(64))
    device_id: Mapped[str | None] = mapped_column(String(64))
    params: Mapped[dict[str, Any]]
    timeout_s: Mapped[int] = mapped_column(Integer)
    minute: Mapped[str] = mapped_column(String(64))
    hour: Mapped[str] = mapped_column(String(64))
    day: Mapped[str] = mapped_column(String(64))
    month: Mapped[str] = mapped_column(String(64))
    day_of_week: Mapped[str] = mapped_column(String(64))
    timezone: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class ConfigBackupRecord(Base):
    """One stored version of a device's configuration (text scrubbed of secrets by the agent)."""

    __tablename__ = "config_backups"
    __table_args__ = (
        UniqueConstraint("site_id", "device_id", "version"),
        CheckConstraint("version >= 1", name="version_positive"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    device_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    taken_at: Mapped[datetime] = mapped_column(comment="when the agent captured it")
    received_at: Mapped[datetime]
    confirmed_at: Mapped[datetime] = mapped_column(
        comment="the last time an upload had this same text"
    )
    sha256: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(Integer, comment="bytes of UTF-8 text")
    changed: Mapped[bool] = mapped_column(
        Boolean, comment="differs from the previous version (false for the first)"
    )
    job_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, comment="the backup job, if any")


# APScheduler's SQLAlchemyJobStore table (apscheduler 3.x layout); HQ never reads it directly.
APSCHEDULER_TABLE = "apscheduler_jobs"
apscheduler_jobs = Table(
    APSCHEDULER_TABLE,
    Base.metadata,
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Float(25), index=True),
    Column("job_state", LargeBinary, nullable=False),
)
