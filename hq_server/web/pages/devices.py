"""Sites' devices: the list (class, profile, state, active alarms); a device's page with the last
values HQ knows, its alarms, tickets, config backup versions with a side-by-side diff, its jobs,
and buttons to run a check, a checklist, a backup or a poll now; a job's page with its progress
and result, kept up to date live. Read and done through the services the API uses
(hq_server.sites.devices, alarms.views, tickets.search, jobs.queue, jobs.backups)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from math import ceil

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from hq_server.alarms import views
from hq_server.core.domain import Role
from hq_server.core.errors import NotFound, PermissionDenied
from hq_server.jobs import backups
from hq_server.jobs.queue import (
    NOTIFIER,
    JobRequestInvalid,
    NewJob,
    create_job,
    find_jobs,
    get_job,
    job_items,
)
from hq_server.sites import devices
from hq_server.store.models import Alarm, ConfigBackupRecord, JobItemRecord, JobRecord, Site, Ticket
from hq_server.tickets.search import TicketFilter, find_tickets
from hq_server.web.auth import Engineer, Refused, Viewer, Visit, app_state
from hq_server.web.i18n import N_
from hq_server.web.render import navigation, render
from protocol.wire import ID_PATTERN, JobKind

router = APIRouter(include_in_schema=False)
navigation("/devices", N_("Devices"), 40)

PAGE_SIZE = 100
SHOWN = 20  # alarms, tickets, jobs and backup versions on a device's page
DEFAULT_CHECKLIST = "routine_inspection"

STATE_NAMES = {
    "ok": N_("answering"),
    "unreachable": N_("unreachable"),
    "unreadable": N_("unreadable"),
    "disabled": N_("disabled"),
    "unknown": N_("unknown"),
}
JOB_KINDS = {
    "poll_device": N_("Poll now"),
    "run_check": N_("Run a check"),
    "run_checklist": N_("Run a checklist"),
    "backup_config": N_("Back up the configuration"),
    "run_action": N_("Run an action"),
}
JOB_STATES = {
    "queued": N_("queued: waiting for the site's agent"),
    "dispatched": N_("running on the site's agent"),
    "running": N_("running on the site's agent"),
    "done": N_("done"),
    "cancel_requested": N_("cancelling"),
    "cancelled": N_("cancelled"),
    "expired": N_("expired: no result in time"),
}
JOB_RESULTS = {
    "ok": N_("passed"),
    "failed": N_("failed"),
    "refused": N_("refused by the agent"),
    "timeout": N_("timed out"),
    "cancelled": N_("cancelled"),
    "error": N_("could not run"),
}
# The job kinds the device page offers (run_action needs an admin's approval: the API).
DEVICE_JOBS = ("poll_device", "run_check", "run_checklist", "backup_config")


# --- the list --------------------------------------------------------------------------------


@router.get("/devices")
async def device_list(request: Request, visit: Viewer) -> Response:
    """Devices known at each site (or at one), by site and id, in pages."""
    params = request.query_params
    site = params.get("site", "").strip()[:100]
    page = max(1, int(params["page"])) if params.get("page", "").isdigit() else 1
    db, _clock, _settings = app_state(request)

    def read(number: int) -> devices.DevicePage:
        with db.session() as session:
            offset = (number - 1) * PAGE_SIZE
            return devices.page_devices(session, site or None, limit=PAGE_SIZE, offset=offset)

    found = await run_in_threadpool(read, page)
    pages = max(1, ceil(found.total / PAGE_SIZE))
    if page > pages:  # past the end: the last page
        page = pages
        found = await run_in_threadpool(read, page)
    return render(
        request,
        "devices/list.html",
        visit.t,
        visit.user,
        rows=found.rows,
        total=found.total,
        site=site,
        page=page,
        pages=pages,
        link={"site": site} if site else {},
        state_names=STATE_NAMES,
    )


# --- one device ------------------------------------------------------------------------------


@dataclass(slots=True)
class DevicePage:
    """A device as its page shows it."""

    site: Site
    device: devices.DeviceSummary
    values: devices.LastValues | None
    alarms: list[Alarm]
    tickets: list[Ticket]
    versions: list[ConfigBackupRecord]
    jobs: list[JobRecord]
    codes: list[str]  # fault codes seen on it (the checks one may run)


def _site(session: Session, visit: Visit, site_id: int) -> Site:
    site = session.get(Site, site_id)
    if site is None:
        raise Refused(visit.t, 404, N_("There is no such site."))
    return site


def _read_device(session: Session, visit: Visit, site_id: int, device_id: str) -> DevicePage:
    site = _site(session, visit, site_id)
    found = devices.list_devices(session, site.name, device_id)
    versions = backups.list_versions(session, site_id, device_id)
    jobs = find_jobs(session, site_id=site_id, device_id=device_id, limit=SHOWN)
    if not (found or versions or jobs):
        raise Refused(visit.t, 404, N_("HQ knows no such device at this site."))
    device = found[0] if found else devices.DeviceSummary(site.name, site.id, device_id)
    alarms = views.find_alarms(
        session, views.AlarmFilter(site_id=site_id, device_id=device_id), limit=SHOWN
    )
    now = _now(visit)
    tickets = find_tickets(
        session, TicketFilter(site=site.name, device_id=device_id), now, limit=SHOWN
    )
    return DevicePage(
        site=site,
        device=device,
        values=devices.last_values(session, site_id, device_id),
        alarms=alarms,
        tickets=tickets,
        versions=versions[:SHOWN],
        jobs=jobs,
        codes=sorted({a.code for a in alarms}),
    )


def _now(visit: Visit) -> datetime:
    """The request's time (the app clock's, read when the visit began)."""
    assert visit.now is not None
    return visit.now


def _device_page(
    request: Request,
    visit: Visit,
    site_id: int,
    device_id: str,
    *,
    status_code: int = 200,
    typed: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    message: str | None = None,
) -> Response:
    db, _clock, _settings = app_state(request)
    with db.session() as session:
        view = _read_device(session, visit, site_id, device_id)
        return render(
            request,
            "devices/detail.html",
            visit.t,
            visit.user,
            status_code=status_code,
            view=view,
            site=view.site,
            device=view.device,
            zone=view.site.timezone,
            typed=typed or {},
            errors=errors or {},
            message=message,
            state_names=STATE_NAMES,
            job_kinds=JOB_KINDS,
            job_states=JOB_STATES,
            job_results=JOB_RESULTS,
            device_jobs=DEVICE_JOBS,
            default_checklist=DEFAULT_CHECKLIST,
            now=_now(visit),
        )


def _device_id(visit: Visit, device_id: str) -> str:
    if not re.fullmatch(ID_PATTERN, device_id):
        raise Refused(visit.t, 404, N_("HQ knows no such device at this site."))
    return device_id


@router.get("/devices/{site_id}/{device_id}")
async def device_page(request: Request, site_id: int, device_id: str, visit: Viewer) -> Response:
    """One device: what HQ knows of it, and the work one may ask of it."""
    _device_id(visit, device_id)
    return await run_in_threadpool(_device_page, request, visit, site_id, device_id)


@router.get("/devices/{site_id}/{device_id}/diff")
async def config_diff(request: Request, site_id: int, device_id: str, visit: Viewer) -> Response:
    """Two versions of the device's configuration side by side (default: the last change)."""
    _device_id(visit, device_id)
    params = request.query_params
    old = int(params["old"]) if params.get("old", "").isdigit() else None
    new = int(params["new"]) if params.get("new", "").isdigit() else None
    db, _clock, _settings = app_state(request)

    def read() -> tuple[Site, backups.SideBySide, list[ConfigBackupRecord]]:
        with db.session() as session:
            site = _site(session, visit, site_id)
            try:
                diff = backups.side_by_side(session, site_id, device_id, old, new)
            except NotFound:
                raise Refused(visit.t, 404, N_("There is no such configuration version.")) from None
            return site, diff, backups.list_versions(session, site_id, device_id)

    site, diff, versions = await run_in_threadpool(read)
    return render(
        request,
        "devices/diff.html",
        visit.t,
        visit.user,
        site=site,
        device_id=device_id,
        diff=diff,
        versions=versions,
        zone=site.timezone,
    )


# --- jobs ------------------------------------------------------------------------------------


def _new_job(visit: Visit, device_id: str) -> tuple[NewJob | None, dict[str, str]]:
    """The job the device page's form asks for, or the messages for its fields."""
    t, form = visit.t, visit.form
    kind = form.get("kind", "")
    errors: dict[str, str] = {}
    if kind not in DEVICE_JOBS:
        return None, {"kind": t.gettext(N_("Unknown kind of job."))}
    item = form.get("item", "").strip() if kind in ("run_check", "run_checklist") else ""
    if kind in ("run_check", "run_checklist") and not item:
        errors[f"{kind}.item"] = t.gettext(N_("Required."))
    if errors:
        return None, errors
    try:
        return NewJob(kind=JobKind(kind), item=item, device_id=device_id), {}
    except ValidationError:
        message = t.gettext(N_("Letters, digits and . _ - only, at most 64 characters."))
        return None, {f"{kind}.item": message}


@router.post("/devices/{site_id}/{device_id}/jobs")
async def device_job(request: Request, site_id: int, device_id: str, visit: Engineer) -> Response:
    """Ask the site's agent to poll, check, inspect or back up the device; then to the job's
    page, which shows its progress and result."""
    _device_id(visit, device_id)
    t = visit.t
    typed = {k: v for k, v in visit.form.items() if k != "csrf_token"}
    job, errors = _new_job(visit, device_id)
    kind = visit.form.get("kind", "")
    if job is None:
        request.state.audit_summary = f"refused job for {device_id}: bad input"
        return await run_in_threadpool(
            lambda: _device_page(
                request, visit, site_id, device_id, status_code=422, typed=typed, errors=errors
            )
        )
    db, clock, _settings = app_state(request)

    def run() -> uuid.UUID:
        with db.writer() as session, session.begin():
            _site(session, visit, site_id)
            row = create_job(
                session,
                site_id,
                job,
                requested_by=visit.who.username,
                may_approve=visit.who.allows(Role.ADMIN),
                now=clock.now(),
            )
            request.state.audit_summary = f"queue {kind} {job.item} for {device_id}".replace(
                "  ", " "
            )
            request.state.audit_targets = {"job_id": str(row.id), "site_id": site_id}
            return row.id

    try:
        job_id = await run_in_threadpool(run)
    except (JobRequestInvalid, PermissionDenied) as exc:
        request.state.audit_summary = f"refused job for {device_id}: {exc}"
        message = t.gettext(N_("HQ cannot queue this job: %(reason)s"), reason=str(exc))
        return await run_in_threadpool(
            lambda: _device_page(
                request, visit, site_id, device_id, status_code=422, typed=typed, message=message
            )
        )
    NOTIFIER.notify(site_id)
    return RedirectResponse(f"/jobs/{job_id}", status_code=303)


@router.get("/jobs/{job_id}")
async def job_page(request: Request, job_id: str, visit: Viewer) -> Response:
    """A job: where it is, and its result when the agent has reported it."""
    try:
        wanted = uuid.UUID(job_id)
    except ValueError:
        raise Refused(visit.t, 404, N_("There is no such job.")) from None
    db, _clock, _settings = app_state(request)

    def read() -> tuple[JobRecord, Site, list[JobItemRecord]]:
        with db.session() as session:
            try:
                row = get_job(session, wanted)
            except NotFound:
                raise Refused(visit.t, 404, N_("There is no such job.")) from None
            return row, session.get_one(Site, row.site_id), job_items(session, wanted)

    row, site, items = await run_in_threadpool(read)
    return render(
        request,
        "devices/job.html",
        visit.t,
        visit.user,
        job=row,
        site=site,
        items=items,
        zone=site.timezone,
        job_kinds=JOB_KINDS,
        job_states=JOB_STATES,
        job_results=JOB_RESULTS,
        finished=row.status in ("done", "cancelled", "expired"),
    )
