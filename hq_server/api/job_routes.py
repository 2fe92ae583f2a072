"""Jobs, schedules and inspection reports.

Agent side (agent tokens): GET /jobs/next (long poll), POST /jobs/{job_id}/result.
User side: engineers create and cancel jobs and schedules, admins attach approvals, anyone reads.
The app's lifespan starts and stops the job schedules (hq_server.jobs.schedules).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from hq_server.access.auth import UserPrincipal
from hq_server.api.body import BoundedBodyRoute
from hq_server.api.deps import (
    AgentDep,
    ClockDep,
    DbDep,
    SettingsDep,
    ViewerDep,
    query_instant,
    require_user,
)
from hq_server.api.errors import ERROR_RESPONSES
from hq_server.api.job_schemas import (
    JobDetailOut,
    JobItemOut,
    JobOut,
    JobResultAck,
    ScheduleOut,
)
from hq_server.api.schemas import ErrorOut
from hq_server.core.clock import Clock
from hq_server.core.domain import Role
from hq_server.core.errors import NotFound
from hq_server.jobs.inspections import InspectionReportOut, inspection_report, to_markdown
from hq_server.jobs.queue import (
    MAX_JOBS_PER_POLL,
    NOTIFIER,
    AgentRef,
    JobConflict,
    JobRequestInvalid,
    NewJob,
    cancel_job,
    create_job,
    expire_jobs,
    get_job,
    peek,
    store_result,
    take_work,
)
from hq_server.jobs.schedules import (
    JobScheduleRunner,
    NewSchedule,
    create_schedule,
    get_schedule,
    next_fire,
)
from hq_server.store.db import Database
from hq_server.store.models import JobItemRecord, JobRecord, JobSchedule, JobState, Site
from protocol.wire import API_PREFIX, ID_PATTERN, JobKind, JobPoll, JobResult, JobStatus

logger = logging.getLogger(__name__)

# How often a waiting long poll re-checks the database (jobs queued by another HQ replica);
# jobs queued in this process wake it at once.
DB_RECHECK_S = 1.0
# The long poll expires overdue jobs at most this often (the schedule runner does it too).
EXPIRY_EVERY_S = 15.0
MAX_WAIT_S = 30
REPORT_MAX_SPAN = timedelta(days=366)
_INT32 = 2_147_483_647


router = APIRouter(
    prefix=API_PREFIX,
    route_class=BoundedBodyRoute,
    responses={code: {**spec, "model": ErrorOut} for code, spec in ERROR_RESPONSES.items()},
)

EngineerDep = Annotated[UserPrincipal, Depends(require_user(Role.ENGINEER))]
SiteId = Annotated[int, Path(ge=1, le=_INT32, description="The site's id")]
JobId = Annotated[uuid.UUID, Path(description="The job's id")]

Responses = dict[int | str, dict[str, Any]]
_NOT_FOUND: Responses = {404: {"model": ErrorOut, "description": "No such site, job or schedule"}}
_INVALID: Responses = {
    422: {"description": "Invalid request (a message, or FastAPI's validation errors)"}
}
_BODY: Responses = {
    400: {"model": ErrorOut, "description": "Unreadable body (bad JSON or gzip)"},
    413: {"model": ErrorOut, "description": "Body larger than the limit (after decompression)"},
    415: {"model": ErrorOut, "description": "Content-Encoding other than gzip"},
}
_CONFLICT: Responses = {
    409: {"model": ErrorOut, "description": "The job's state does not allow this"}
}


@contextlib.contextmanager
def _answers() -> Iterator[None]:
    """Map job errors to their HTTP statuses (others go to the app's HQError handler)."""
    try:
        yield
    except JobRequestInvalid as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    except JobConflict as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None


def _runner(request: Request) -> JobScheduleRunner:
    runner: JobScheduleRunner | None = getattr(request.app.state, "job_schedules", None)
    if runner is None:  # the app was not started through its lifespan: schedules are off
        runner = JobScheduleRunner(request.app.state.db, request.app.state.clock, enabled=False)
        request.app.state.job_schedules = runner
    return runner


# ---- Agent side -----------------------------------------------------------------------------

_last_expiry = 0.0


def _expire(db: Database, clock: Clock) -> None:
    """Opportunistic expiry; a failure here must not fail the agent's poll."""
    try:
        with db.writer() as session, session.begin():
            expire_jobs(session, clock.now())
    except SQLAlchemyError as exc:
        logger.warning("expiring overdue jobs failed: %s", exc)


def _peek(db: Database, agent: AgentRef) -> tuple[bool, bool]:
    with db.session() as session:
        return peek(session, agent)


def _take(db: Database, agent: AgentRef, now: datetime, limit: int) -> tuple[JobPoll, bool]:
    with db.writer() as session, session.begin():
        return take_work(session, agent, now, limit)


@router.get(
    "/jobs/next",
    response_model=JobPoll,
    tags=["agent"],
    description="Long poll for jobs: answers at once when jobs are queued for this agent "
    "(they are marked dispatched to it, never handed to another), else after `wait` seconds. "
    "`cancel` lists jobs given to this agent that a user has since cancelled.",
)
async def next_jobs(
    request: Request,
    agent: AgentDep,
    db: DbDep,
    clock: ClockDep,
    settings: SettingsDep,
    wait: Annotated[
        int, Query(ge=0, le=MAX_WAIT_S, description="Seconds to wait (HQ may cap it lower)")
    ] = 0,
    limit: Annotated[
        int, Query(ge=1, le=100, description="At most this many jobs")
    ] = MAX_JOBS_PER_POLL,
) -> JobPoll:
    """Hand queued jobs of the agent's site to it; wait for some up to `wait` seconds."""
    global _last_expiry
    ref = AgentRef(agent_id=agent.agent_id, site_id=agent.site_id)
    if time.monotonic() - _last_expiry > EXPIRY_EVERY_S:
        _last_expiry = time.monotonic()
        await run_in_threadpool(_expire, db, clock)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(wait, settings.job_poll_max_wait)
    while True:
        waiter = NOTIFIER.subscribe(ref.site_id)
        try:
            fresh, _ = await run_in_threadpool(_peek, db, ref)
            if fresh:
                poll, new = await run_in_threadpool(_take, db, ref, clock.now(), limit)
                if new:
                    return poll
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            if await request.is_disconnected():
                return JobPoll()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter[1].wait(), timeout=min(DB_RECHECK_S, remaining))
        finally:
            NOTIFIER.unsubscribe(ref.site_id, waiter)
    fresh, any_cancel = await run_in_threadpool(_peek, db, ref)
    if fresh or any_cancel:
        poll, _ = await run_in_threadpool(_take, db, ref, clock.now(), limit)
        return poll
    return JobPoll()


@router.post(
    "/jobs/{job_id}/result",
    response_model=JobResultAck,
    tags=["agent"],
    responses={**_NOT_FOUND, **_INVALID, **_BODY},
    description="The result of a job this agent was given. Idempotent: the first result wins, "
    "a repeat gets the stored one back (duplicate=true). A refused job is reported here too.",
)
def post_result(
    job_id: JobId, result: JobResult, agent: AgentDep, db: DbDep, clock: ClockDep
) -> JobResultAck:
    """Store the agent's result of a job."""
    ref = AgentRef(agent_id=agent.agent_id, site_id=agent.site_id)
    with _answers(), db.writer() as session, session.begin():
        row, duplicate = store_result(session, ref, job_id, result, clock.now())
        assert row.result_status is not None
        return JobResultAck(
            job_id=row.id,
            status=JobState(row.status),
            result_status=JobStatus(row.result_status),
            duplicate=duplicate,
        )


# ---- User side: jobs ------------------------------------------------------------------------


@router.post(
    "/sites/{site_id}/jobs",
    response_model=JobOut,
    status_code=201,
    tags=["jobs"],
    responses={**_NOT_FOUND, **_INVALID, **_BODY},
    description="Queue a job for an agent of the site (engineer). A run_action job needs an "
    "approval, which only an admin may attach; the agent checks it again before running.",
)
def post_job(site_id: SiteId, job: NewJob, user: EngineerDep, db: DbDep, clock: ClockDep) -> JobOut:
    """Queue a job."""
    with _answers(), db.writer() as session, session.begin():
        row = create_job(
            session,
            site_id,
            job,
            requested_by=user.name,
            may_approve=user.role.allows(Role.ADMIN),
            now=clock.now(),
        )
        out = JobOut.of(row)
    NOTIFIER.notify(site_id)
    return out


@router.get("/jobs", response_model=list[JobOut], tags=["jobs"])
def list_jobs(
    _user: ViewerDep,
    db: DbDep,
    site_id: Annotated[int | None, Query(ge=1, le=_INT32, description="Only this site")] = None,
    site: Annotated[str | None, Query(max_length=100, description="Only this site (name)")] = None,
    status: Annotated[list[JobState] | None, Query(description="Any of these")] = None,
    kind: Annotated[list[JobKind] | None, Query(description="Any of these")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many")] = 200,
) -> list[JobOut]:
    """Jobs, newest first."""
    stmt = select(JobRecord)
    if site_id is not None:
        stmt = stmt.where(JobRecord.site_id == site_id)
    if site is not None:
        stmt = stmt.join(Site, Site.id == JobRecord.site_id).where(Site.name == site)
    if status:
        stmt = stmt.where(JobRecord.status.in_([s.value for s in status]))
    if kind:
        stmt = stmt.where(JobRecord.kind.in_([k.value for k in kind]))
    stmt = stmt.order_by(JobRecord.created_at.desc(), JobRecord.id).limit(limit)
    with db.session() as session:
        return [JobOut.of(r) for r in session.scalars(stmt)]


@router.get("/jobs/{job_id}", response_model=JobDetailOut, tags=["jobs"], responses={**_NOT_FOUND})
def get_one_job(job_id: JobId, _user: ViewerDep, db: DbDep) -> JobDetailOut:
    """One job with the items of its result."""
    with db.session() as session:
        row = get_job(session, job_id)
        items = session.scalars(
            select(JobItemRecord)
            .where(JobItemRecord.job_id == job_id)
            .order_by(JobItemRecord.position)
        )
        return JobDetailOut(**JobOut.fields_of(row), items=[JobItemOut.of(i) for i in items])


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=JobOut,
    tags=["jobs"],
    responses={**_NOT_FOUND, **_CONFLICT},
    description="Cancel a job (engineer): a queued job is cancelled at once; a dispatched one "
    "becomes cancel_requested and its agent is told on its next poll. Idempotent.",
)
def post_cancel(job_id: JobId, user: EngineerDep, db: DbDep, clock: ClockDep) -> JobOut:
    """Cancel a job."""
    with _answers(), db.writer() as session, session.begin():
        row = cancel_job(session, job_id, who=user.name, now=clock.now())
        out = JobOut.of(row)
    if out.status is JobState.CANCEL_REQUESTED:
        NOTIFIER.notify(out.site_id)
    return out


# ---- User side: schedules -------------------------------------------------------------------


@router.post(
    "/sites/{site_id}/schedules",
    response_model=ScheduleOut,
    status_code=201,
    tags=["jobs"],
    responses={**_NOT_FOUND, **_INVALID, **_BODY},
    description="A recurring job of the site (engineer): cron fields in the site's timezone "
    "unless `timezone` is given. run_action cannot be scheduled.",
)
def post_schedule(
    site_id: SiteId,
    schedule: NewSchedule,
    user: EngineerDep,
    db: DbDep,
    clock: ClockDep,
    request: Request,
) -> ScheduleOut:
    """Create a schedule and register its trigger."""
    runner = _runner(request)
    now = clock.now()
    with _answers(), db.writer() as session, session.begin():
        row = create_schedule(session, site_id, schedule, created_by=user.name, now=now)
    runner.register(row)
    return ScheduleOut.of(row, runner.next_run_time(row.id) or next_fire(row, now))


@router.get(
    "/sites/{site_id}/schedules",
    response_model=list[ScheduleOut],
    tags=["jobs"],
    responses={**_NOT_FOUND},
)
def list_schedules(
    site_id: SiteId, _user: ViewerDep, db: DbDep, clock: ClockDep, request: Request
) -> list[ScheduleOut]:
    """The site's schedules, oldest first."""
    runner = _runner(request)
    now = clock.now()
    with db.session() as session:
        if session.get(Site, site_id) is None:
            raise NotFound(f"no site {site_id}")
        rows = list(
            session.scalars(
                select(JobSchedule)
                .where(JobSchedule.site_id == site_id)
                .order_by(JobSchedule.created_at, JobSchedule.id)
            )
        )
    return [ScheduleOut.of(r, runner.next_run_time(r.id) or next_fire(r, now)) for r in rows]


@router.delete(
    "/sites/{site_id}/schedules/{schedule_id}",
    status_code=204,
    response_class=Response,
    tags=["jobs"],
    responses={**_NOT_FOUND},
)
def delete_schedule(
    site_id: SiteId, schedule_id: uuid.UUID, _user: EngineerDep, db: DbDep, request: Request
) -> Response:
    """Delete a schedule; jobs it already queued stay."""
    runner = _runner(request)
    with db.writer() as session, session.begin():
        row = get_schedule(session, site_id, schedule_id)
        session.delete(row)
    runner.unregister(schedule_id)
    return Response(status_code=204)


# ---- User side: inspection report -----------------------------------------------------------


@router.get(
    "/sites/{site_id}/reports/inspections",
    response_model=InspectionReportOut,
    tags=["jobs"],
    responses={
        **_NOT_FOUND,
        **_INVALID,
        200: {"content": {"text/markdown": {"schema": {"type": "string"}}}},
    },
    description="Checklist results of the site in [from, to) (default: the last 7 days), "
    "per device and category; `format=md` answers Markdown.",
)
def get_inspection_report(
    site_id: SiteId,
    _user: ViewerDep,
    db: DbDep,
    clock: ClockDep,
    from_: Annotated[datetime | None, Query(alias="from", description="Start (inclusive)")] = None,
    to: Annotated[datetime | None, Query(description="End (exclusive); default now")] = None,
    device_id: Annotated[
        str | None, Query(pattern=ID_PATTERN, description="Only this device's items")
    ] = None,
    format: Annotated[Literal["json", "md"], Query(description="json or md")] = "json",
) -> InspectionReportOut | Response:
    """The inspection report of a site."""
    end = query_instant(to) if to is not None else clock.now()
    try:
        start = query_instant(from_) if from_ is not None else end - timedelta(days=7)
    except OverflowError:
        raise HTTPException(status_code=422, detail="`to` is too early") from None
    if start >= end:
        raise HTTPException(status_code=422, detail="`from` must be before `to`")
    if end - start > REPORT_MAX_SPAN:
        raise HTTPException(status_code=422, detail="a report spans at most 366 days")
    with db.session() as session:
        report = inspection_report(session, site_id, start, end, device_id)
    if format == "md":
        return Response(to_markdown(report), media_type="text/markdown; charset=utf-8")
    return report
