"""Jobs for the agents of a site.

Agent side (agent tokens): GET /jobs/next (long poll), POST /jobs/{job_id}/result.
User side: engineers create and cancel jobs, admins attach approvals, anyone reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from hq_server.api.body import BoundedBodyRoute
from hq_server.api.deps import (
    AgentDep,
    ClockDep,
    DbDep,
    EngineerDep,
    SettingsDep,
    SiteId,
    ViewerDep,
)
from hq_server.api.errors import (
    AUTH_ERRORS,
    BODY_ERRORS,
    INVALID,
    JOB_NOT_FOUND,
    error,
    job_errors,
)
from hq_server.api.schemas.jobs import JobDetailOut, JobItemOut, JobOut, JobResultAck
from hq_server.core.clock import Clock
from hq_server.core.domain import Role
from hq_server.jobs.queue import (
    MAX_JOBS_PER_POLL,
    NOTIFIER,
    AgentRef,
    NewJob,
    cancel_job,
    create_job,
    expire_jobs,
    find_jobs,
    get_job,
    job_items,
    peek,
    store_result,
    take_work,
)
from hq_server.store.db import Database
from hq_server.store.models import JobState
from protocol.wire import API_PREFIX, JobKind, JobPoll, JobResult, JobStatus

logger = logging.getLogger(__name__)

# How often a waiting long poll re-checks the database (jobs queued by another HQ replica);
# jobs queued in this process wake it at once.
DB_RECHECK_S = 1.0
# The long poll expires overdue jobs at most this often (the schedule runner does it too).
EXPIRY_EVERY_S = 15.0
MAX_WAIT_S = 30
_INT32 = 2_147_483_647

router = APIRouter(prefix=API_PREFIX, route_class=BoundedBodyRoute, responses=AUTH_ERRORS)

JobId = Annotated[uuid.UUID, Path(description="The job's id")]


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
    responses={**JOB_NOT_FOUND, **INVALID, **BODY_ERRORS},
    description="The result of a job this agent was given. Idempotent: the first result wins, "
    "a repeat gets the stored one back (duplicate=true). A refused job is reported here too.",
)
def post_result(
    job_id: JobId, result: JobResult, agent: AgentDep, db: DbDep, clock: ClockDep
) -> JobResultAck:
    """Store the agent's result of a job."""
    ref = AgentRef(agent_id=agent.agent_id, site_id=agent.site_id)
    with job_errors(), db.writer() as session, session.begin():
        row, duplicate = store_result(session, ref, job_id, result, clock.now())
        assert row.result_status is not None
        return JobResultAck(
            job_id=row.id,
            status=JobState(row.status),
            result_status=JobStatus(row.result_status),
            duplicate=duplicate,
        )


# ---- User side ------------------------------------------------------------------------------


@router.post(
    "/sites/{site_id}/jobs",
    response_model=JobOut,
    status_code=201,
    tags=["jobs"],
    responses={**JOB_NOT_FOUND, **INVALID, **BODY_ERRORS},
    description="Queue a job for an agent of the site (engineer). A run_action job needs an "
    "approval, which only an admin may attach; the agent checks it again before running.",
)
def post_job(site_id: SiteId, job: NewJob, user: EngineerDep, db: DbDep, clock: ClockDep) -> JobOut:
    """Queue a job."""
    with job_errors(), db.writer() as session, session.begin():
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
    with db.session() as session:
        rows = find_jobs(
            session,
            site_id=site_id,
            site=site,
            status=status or (),
            kind=kind or (),
            limit=limit,
        )
        return [JobOut.of(r) for r in rows]


@router.get("/jobs/{job_id}", response_model=JobDetailOut, tags=["jobs"], responses=JOB_NOT_FOUND)
def get_one_job(job_id: JobId, _user: ViewerDep, db: DbDep) -> JobDetailOut:
    """One job with the items of its result."""
    with db.session() as session:
        row = get_job(session, job_id)
        items = job_items(session, job_id)
        return JobDetailOut(
            **JobOut.fields_of(row), items=[JobItemOut.model_validate(i) for i in items]
        )


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=JobOut,
    tags=["jobs"],
    responses={**JOB_NOT_FOUND, **error(409, "The job's state does not allow this")},
    description="Cancel a job (engineer): a queued job is cancelled at once; a dispatched one "
    "becomes cancel_requested and its agent is told on its next poll. Idempotent.",
)
def post_cancel(job_id: JobId, user: EngineerDep, db: DbDep, clock: ClockDep) -> JobOut:
    """Cancel a job."""
    with job_errors(), db.writer() as session, session.begin():
        row = cancel_job(session, job_id, who=user.name, now=clock.now())
        out = JobOut.of(row)
    if out.status is JobState.CANCEL_REQUESTED:
        NOTIFIER.notify(out.site_id)
    return out
