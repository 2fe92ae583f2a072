"""Maintenance windows: the list (running, planned, past) and, for admins, planning one and
cancelling one, through hq_server.tickets.maintenance as the API does. Times are typed and shown
in the site's zone (UTC for a window over every site); a window that ends before it starts, an
unknown site or a missing reason is shown next to its field and nothing is saved."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from hq_server.core.errors import InvalidInput
from hq_server.store.models import MaintenanceWindow, Site
from hq_server.tickets import maintenance
from hq_server.web.auth import Admin, Refused, Viewer, Visit, app_state
from hq_server.web.i18n import N_, Translator, zone
from hq_server.web.render import navigation, render

router = APIRouter(include_in_schema=False)
navigation("/maintenance", N_("Maintenance"), 45)

SHOWN = 200
FIELDS = ("site", "device_id", "code", "starts_at", "ends_at", "reason", "approval_ref")
# What a service's InvalidInput field is called in the form.
FORM_FIELD = {"site_id": "site"}


@dataclass(slots=True)
class WindowRow:
    """A window as the list shows it."""

    window: MaintenanceWindow
    site: str | None
    zone: str
    state: str  # running, planned, past


def _state(row: MaintenanceWindow, now: datetime) -> str:
    if row.starts_at > now:
        return "planned"
    return "running" if row.ends_at > now else "past"


STATE_NAMES = {"running": N_("running"), "planned": N_("planned"), "past": N_("over")}


def _page(
    request: Request,
    visit: Visit,
    *,
    status_code: int = 200,
    typed: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    db, clock, _settings = app_state(request)
    now = clock.now()
    with db.session() as session:
        sites = {s.id: s for s in session.scalars(select(Site).order_by(Site.name))}
        rows = []
        for w in maintenance.list_windows(session, now)[:SHOWN]:
            site = sites.get(w.site_id) if w.site_id is not None else None
            rows.append(
                WindowRow(
                    w, site.name if site else None, site.timezone if site else "UTC", _state(w, now)
                )
            )
        return render(
            request,
            "maintenance/list.html",
            visit.t,
            visit.user,
            status_code=status_code,
            rows=rows,
            site_names=[s.name for s in sites.values()],
            typed=typed or {},
            errors=errors or {},
            state_names=STATE_NAMES,
        )


@router.get("/maintenance")
async def window_list(request: Request, visit: Viewer) -> Response:
    """Maintenance windows, latest start first."""
    return await run_in_threadpool(_page, request, visit)


def parse_local(text: str, zone_name: str) -> datetime | None:
    """A time typed as "YYYY-MM-DDTHH:MM" (a datetime-local field) or "YYYY-MM-DD HH:MM", in
    the zone `zone_name`; None if it is not one."""
    text = text.strip().replace(" ", "T", 1)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is not None:
        return None
    return value.replace(tzinfo=zone(zone_name))


def _plan(
    visit: Visit, sites: dict[str, Site]
) -> tuple[maintenance.WindowPlan | None, dict[str, str]]:
    """The window the form describes, or the messages for its fields."""
    t: Translator = visit.t
    form = {k: visit.form.get(k, "").strip() for k in FIELDS}
    errors: dict[str, str] = {}
    site = sites.get(form["site"]) if form["site"] else None
    if form["site"] and site is None:
        errors["site"] = t.gettext(N_("There is no site of this name."))
    zone_name = site.timezone if site else "UTC"
    times: dict[str, datetime] = {}
    for name in ("starts_at", "ends_at"):
        value = parse_local(form[name], zone_name) if form[name] else None
        if not form[name]:
            errors[name] = t.gettext(N_("Required."))
        elif value is None:
            errors[name] = t.gettext(N_("A date and time, such as 2026-03-02 08:00."))
        else:
            times[name] = value
    if len(times) == 2 and times["ends_at"] <= times["starts_at"]:
        errors["ends_at"] = t.gettext(N_("The window must end after it starts."))
    if not form["reason"]:
        errors["reason"] = t.gettext(N_("Required."))
    for name, limit in (
        ("reason", maintenance.REASON_MAX),
        ("approval_ref", maintenance.APPROVAL_MAX),
        ("device_id", maintenance.MATCHER_MAX),
        ("code", maintenance.MATCHER_MAX),
    ):
        if len(form[name]) > limit:
            errors[name] = t.gettext(N_("At most %(count)s characters."), count=limit)
    if errors:
        return None, errors
    return (
        maintenance.WindowPlan(
            site_id=site.id if site else None,
            device_id=form["device_id"] or None,
            code=form["code"] or None,
            starts_at=times["starts_at"],
            ends_at=times["ends_at"],
            reason=form["reason"],
            approval_ref=form["approval_ref"],
        ),
        {},
    )


@router.post("/maintenance")
async def plan(request: Request, visit: Admin) -> Response:
    """Plan a window (the admin is its author); the list again showing what is wrong."""
    db, clock, _settings = app_state(request)
    typed = {k: visit.form.get(k, "") for k in FIELDS}

    def run() -> dict[str, str]:
        with db.writer() as session, session.begin():
            sites = {s.name: s for s in session.scalars(select(Site))}
            window, errors = _plan(visit, sites)
            if window is None:
                return errors
            try:
                row = maintenance.plan_window(session, window, visit.who.username, clock.now())
            except InvalidInput as exc:
                name = str(exc.loc[0]) if exc.loc else "reason"
                return {FORM_FIELD.get(name, name): str(exc)}
            request.state.audit_summary = f"plan maintenance window: {window.reason[:200]}"
            request.state.audit_targets = {"window_id": row.id}
            return {}

    errors = await run_in_threadpool(run)
    if errors:
        request.state.audit_summary = f"refused maintenance window: bad {', '.join(errors)}"
        return await run_in_threadpool(
            lambda: _page(request, visit, status_code=422, typed=typed, errors=errors)
        )
    return RedirectResponse("/maintenance", status_code=303)


@router.post("/maintenance/{window_id}/cancel")
async def cancel(request: Request, window_id: int, visit: Admin) -> Response:
    """Cancel a window: deleted if planned, ended now if running, kept if over."""
    db, clock, _settings = app_state(request)

    def run() -> None:
        with db.writer() as session, session.begin():
            row = session.get(MaintenanceWindow, window_id)
            if row is None:
                raise Refused(visit.t, 404, N_("There is no such maintenance window."))
            outcome = maintenance.cancel_window(session, row, clock.now())
            request.state.audit_summary = f"cancel maintenance window {window_id}: {outcome}"

    await run_in_threadpool(run)
    return RedirectResponse("/maintenance", status_code=303)
