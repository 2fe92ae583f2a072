"""Recurring jobs of a site (engineers create and delete them, anyone reads them); their
triggers run in APScheduler (hq_server.jobs.schedules)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from hq_server.api.body import BoundedBodyRoute
from hq_server.api.deps import ClockDep, DbDep, EngineerDep, SiteId, ViewerDep
from hq_server.api.errors import AUTH_ERRORS, BODY_ERRORS, INVALID, JOB_NOT_FOUND, job_errors
from hq_server.api.schemas.jobs import ScheduleOut
from hq_server.core.errors import NotFound
from hq_server.jobs.schedules import (
    JobScheduleRunner,
    NewSchedule,
    create_schedule,
    get_schedule,
    next_fire,
)
from hq_server.store.models import JobSchedule, Site
from protocol.wire import API_PREFIX

router = APIRouter(
    prefix=API_PREFIX, tags=["jobs"], route_class=BoundedBodyRoute, responses=AUTH_ERRORS
)


def _runner(request: Request) -> JobScheduleRunner:
    runner: JobScheduleRunner | None = getattr(request.app.state, "job_schedules", None)
    if runner is None:  # the app was not started through its lifespan: schedules are off
        runner = JobScheduleRunner(request.app.state.db, request.app.state.clock, enabled=False)
        request.app.state.job_schedules = runner
    return runner


@router.post(
    "/sites/{site_id}/schedules",
    response_model=ScheduleOut,
    status_code=201,
    responses={**JOB_NOT_FOUND, **INVALID, **BODY_ERRORS},
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
    with job_errors(), db.writer() as session, session.begin():
        row = create_schedule(session, site_id, schedule, created_by=user.name, now=now)
    runner.register(row)
    return ScheduleOut.of(row, runner.next_run_time(row.id) or next_fire(row, now))


@router.get(
    "/sites/{site_id}/schedules",
    response_model=list[ScheduleOut],
    responses=JOB_NOT_FOUND,
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
    responses=JOB_NOT_FOUND,
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
