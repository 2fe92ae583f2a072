"""Jobs, their result items and schedules as the API shows them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from hq_server.api.schemas.common import Out
from hq_server.jobs.queue import approval_of
from hq_server.store.models import JobRecord, JobSchedule, JobState
from protocol.wire import Approval, JobKind, JobStatus


class JobOut(Out):
    """A job and where it is in its life (result summary included once it ended)."""

    id: uuid.UUID
    site_id: int
    agent_id: int | None = Field(description="Only this agent may take it (null: any)")
    kind: JobKind
    item: str
    device_id: str | None
    params: dict[str, Any]
    approval: Approval | None
    timeout_s: int
    status: JobState
    requested_by: str
    schedule_id: uuid.UUID | None
    scheduled_for: datetime | None
    created_at: datetime
    dispatched_agent_id: int | None
    dispatched_at: datetime | None
    deadline_at: datetime | None
    cancel_requested_at: datetime | None
    finished_at: datetime | None
    result_status: JobStatus | None = Field(description="How the agent said the job ended")
    result: dict[str, Any] | None = Field(
        description="summary, started_at, finished_at, item counts, late"
    )

    @classmethod
    def fields_of(cls, row: JobRecord) -> dict[str, Any]:
        """The field values of a stored job."""
        return {
            "id": row.id,
            "site_id": row.site_id,
            "agent_id": row.agent_id,
            "kind": JobKind(row.kind),
            "item": row.item,
            "device_id": row.device_id,
            "params": row.params,
            "approval": approval_of(row),
            "timeout_s": row.timeout_s,
            "status": JobState(row.status),
            "requested_by": row.requested_by,
            "schedule_id": row.schedule_id,
            "scheduled_for": row.scheduled_for,
            "created_at": row.created_at,
            "dispatched_agent_id": row.dispatched_agent_id,
            "dispatched_at": row.dispatched_at,
            "deadline_at": row.deadline_at,
            "cancel_requested_at": row.cancel_requested_at,
            "finished_at": row.finished_at,
            "result_status": None if row.result_status is None else JobStatus(row.result_status),
            "result": row.result,
        }

    @classmethod
    def of(cls, row: JobRecord) -> JobOut:
        """From a stored job."""
        return cls(**cls.fields_of(row))


class JobItemOut(Out):
    """One item of a job's result."""

    name: str
    device_id: str | None
    category: str
    passed: bool
    detail: str
    values: dict[str, Any]


class JobDetailOut(JobOut):
    """A job with the items of its result, in the agent's order."""

    items: list[JobItemOut]


class JobResultAck(Out):
    """HQ stored the result (or already had one: duplicate, the first result wins)."""

    job_id: uuid.UUID
    status: JobState
    result_status: JobStatus
    duplicate: bool


class ScheduleOut(Out):
    """A recurring job of a site."""

    id: uuid.UUID
    site_id: int
    name: str
    kind: JobKind
    item: str
    device_id: str | None
    params: dict[str, Any]
    timeout_s: int
    minute: str
    hour: str
    day: str
    month: str
    day_of_week: str
    timezone: str
    created_by: str
    created_at: datetime
    next_run_time: datetime | None = Field(description="When it fires next")

    @classmethod
    def of(cls, row: JobSchedule, next_run_time: datetime | None) -> ScheduleOut:
        """From a stored schedule."""
        return cls(
            id=row.id,
            site_id=row.site_id,
            name=row.name,
            kind=JobKind(row.kind),
            item=row.item,
            device_id=row.device_id,
            params=row.params,
            timeout_s=row.timeout_s,
            minute=row.minute,
            hour=row.hour,
            day=row.day,
            month=row.month,
            day_of_week=row.day_of_week,
            timezone=row.timezone,
            created_by=row.created_by,
            created_at=row.created_at,
            next_run_time=next_run_time,
        )
