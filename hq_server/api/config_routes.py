"""HQ configuration (admins change it, everyone reads it): calendars and the calendar of each
site, escalation chains, maintenance windows. Calendar changes recompute open tickets."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Request
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hq_server.access.secretbox import box_for, has_keys, is_sealed
from hq_server.api.body import BoundedBodyRoute
from hq_server.api.deps import (
    AdminDep,
    ClockDep,
    DbDep,
    Id,
    SettingsDep,
    ViewerDep,
    audit_note,
)
from hq_server.api.errors import ERROR_RESPONSES, body_errors, responses
from hq_server.api.schemas import ErrorOut, SiteOut
from hq_server.api.schemas_config import (
    CalendarIn,
    CalendarOut,
    ChainIn,
    ChainOut,
    SiteCalendarIn,
    WindowIn,
    WindowOut,
)
from hq_server.core.errors import Conflict, InvalidInput, NotFound
from hq_server.core.settings import Settings
from hq_server.store.models import Agent, Calendar, EscalationChain, MaintenanceWindow, Site
from hq_server.tickets import deadlines
from hq_server.tickets.webhook_targets import ALLOW_SETTING, TargetRefused, check_saved
from protocol.wire import API_PREFIX

router = APIRouter(
    prefix=API_PREFIX,
    tags=["config"],
    route_class=BoundedBodyRoute,
    responses={
        **body_errors(),
        **{code: {**spec, "model": ErrorOut} for code, spec in ERROR_RESPONSES.items()},
    },
)
_T = TypeVar("_T")
_404 = responses(404)
_409 = responses(409)
_404_409 = responses(404, 409)


def _get(session: Session, model: type[_T], ident: int, what: str, for_update: bool = False) -> _T:
    row = session.get(model, ident, with_for_update=for_update)
    if row is None:
        raise NotFound(f"no {what} {ident}")
    return row


def _unique(session: Session, what: str) -> None:
    """Flush, turning a unique-constraint clash into a 409."""
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise Conflict(f"{what} already exists") from None


# ---- calendars -------------------------------------------------------------------------------


@router.get("/calendars", response_model=list[CalendarOut])
def list_calendars(_user: ViewerDep, db: DbDep) -> list[CalendarOut]:
    """All calendars, by name."""
    with db.session() as session:
        rows = session.scalars(select(Calendar).order_by(Calendar.name))
        return [CalendarOut.of(r) for r in rows]


@router.get("/calendars/{calendar_id}", response_model=CalendarOut, responses=_404)
def get_calendar(calendar_id: Id, _user: ViewerDep, db: DbDep) -> CalendarOut:
    """One calendar."""
    with db.session() as session:
        return CalendarOut.of(_get(session, Calendar, calendar_id, "calendar"))


def _fill_calendar(row: Calendar, body: CalendarIn) -> None:
    row.name = body.name
    row.timezone = body.timezone
    row.always_open = body.always_open
    row.hours = body.stored_hours()
    row.holidays = {"dates": sorted({d.isoformat() for d in body.holidays})}


@router.post("/calendars", response_model=CalendarOut, status_code=201, responses=_409)
def post_calendar(
    body: CalendarIn, request: Request, _admin: AdminDep, db: DbDep, clock: ClockDep
) -> CalendarOut:
    """Create a calendar."""
    with db.writer() as session, session.begin():
        row = Calendar(updated_at=clock.now())
        _fill_calendar(row, body)
        session.add(row)
        _unique(session, f"calendar {body.name!r}")
        audit_note(request, f"create calendar {body.name}", calendar_id=row.id)
        return CalendarOut.of(row)


def _sites_of(session: Session, calendar_id: int) -> list[int]:
    return list(session.scalars(select(Site.id).where(Site.calendar_id == calendar_id)))


@router.put("/calendars/{calendar_id}", response_model=CalendarOut, responses=_404_409)
def put_calendar(
    calendar_id: Id,
    body: CalendarIn,
    request: Request,
    user: AdminDep,
    db: DbDep,
    clock: ClockDep,
) -> CalendarOut:
    """Replace a calendar; the deadlines of open tickets at its sites are recomputed."""
    with db.writer() as session, session.begin():
        row = _get(session, Calendar, calendar_id, "calendar")
        _fill_calendar(row, body)
        row.updated_at = clock.now()
        _unique(session, f"calendar {body.name!r}")
        count = deadlines.refresh_open_tickets(
            session, _sites_of(session, calendar_id), clock.now(), user.name, "calendar changed"
        )
        audit_note(request, f"change calendar {body.name}; {count} tickets' deadlines moved")
        return CalendarOut.of(row)


@router.delete("/calendars/{calendar_id}", status_code=204, response_model=None, responses=_404_409)
def delete_calendar(calendar_id: Id, request: Request, _admin: AdminDep, db: DbDep) -> None:
    """Delete a calendar no site uses."""
    with db.writer() as session, session.begin():
        row = _get(session, Calendar, calendar_id, "calendar")
        if _sites_of(session, calendar_id):
            raise Conflict(f"calendar {row.name!r} is used by sites: assign them another first")
        audit_note(request, f"delete calendar {row.name}")
        session.delete(row)


@router.put("/sites/{site_id}/calendar", response_model=SiteOut, responses=_404)
def put_site_calendar(
    site_id: Id,
    body: SiteCalendarIn,
    request: Request,
    user: AdminDep,
    db: DbDep,
    clock: ClockDep,
) -> SiteOut:
    """Set the calendar a site works on; its open tickets' deadlines are recomputed."""
    with db.writer() as session, session.begin():
        site = _get(session, Site, site_id, "site")
        if body.calendar_id is not None:
            _get(session, Calendar, body.calendar_id, "calendar")
        site.calendar_id = body.calendar_id
        session.flush()
        count = deadlines.refresh_open_tickets(
            session, [site.id], clock.now(), user.name, "site calendar changed"
        )
        audit_note(
            request,
            f"site {site.name} calendar -> {body.calendar_id}; {count} tickets' deadlines moved",
            calendar_id=body.calendar_id,
        )
        agents = list(session.scalars(select(Agent).where(Agent.site_id == site.id)))
        return SiteOut.of(site, agents)


# ---- escalation chains -----------------------------------------------------------------------


def _check_webhooks(body: ChainIn, settings: Settings) -> None:
    """422 naming the contact for a webhook to an address HQ does not send to (see
    hq_server.webhook_targets), unless allow_private_webhooks is set."""
    if settings.allow_private_webhooks:
        return
    for i, level in enumerate(body.levels):
        for j, contact in enumerate(level.contacts):
            if contact.webhook_url is None:
                continue
            try:
                check_saved(str(contact.webhook_url))
            except TargetRefused as exc:
                field = f"levels[{i}].contacts[{j}].webhook_url"
                raise InvalidInput(
                    f"{field}: {exc}: HQ does not send webhooks to its own machine or to private "
                    f"networks (set {ALLOW_SETTING} to allow it)",
                    loc=("levels", i, "contacts", j, "webhook_url"),
                ) from None


def _sealed(settings: Settings, levels: dict[str, Any]) -> dict[str, Any]:
    """Levels as stored: webhook keys sealed (only those need HQ's key file)."""
    return box_for(settings).seal_levels(levels) if has_keys(levels) else levels


def _keep_keys(
    levels: dict[str, Any],
    stored: dict[str, Any],
    positions: list[tuple[int, int]],
    settings: Settings,
) -> None:
    """Give the contacts at `positions` the key stored in the chain for the same contact (same
    name and webhook_url), sealed."""
    by_contact = {
        (c["name"], c["webhook_url"]): c["webhook_secret"]
        for level in stored.get("levels", [])
        for c in level.get("contacts", [])
        if c.get("webhook_url") and c.get("webhook_secret")
    }
    for i, j in positions:
        contact = levels["levels"][i]["contacts"][j]
        key = by_contact.get((contact["name"], contact["webhook_url"]))
        if key is not None:
            # One saved in plain text by an older HQ is sealed now (only that needs the key).
            contact["webhook_secret"] = key if is_sealed(key) else box_for(settings).seal(key)


@router.get("/escalation-chains", response_model=list[ChainOut])
def list_chains(_user: ViewerDep, db: DbDep) -> list[ChainOut]:
    """All escalation chains, by customer and grade."""
    with db.session() as session:
        rows = session.scalars(
            select(EscalationChain).order_by(EscalationChain.customer, EscalationChain.grade)
        )
        return [ChainOut.of(r) for r in rows]


@router.get("/escalation-chains/{chain_id}", response_model=ChainOut, responses=_404)
def get_chain(chain_id: Id, _user: ViewerDep, db: DbDep) -> ChainOut:
    """One escalation chain (webhook secrets are never shown)."""
    with db.session() as session:
        return ChainOut.of(_get(session, EscalationChain, chain_id, "escalation chain"))


@router.post("/escalation-chains", response_model=ChainOut, status_code=201, responses=_409)
def post_chain(
    body: ChainIn,
    request: Request,
    _admin: AdminDep,
    db: DbDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> ChainOut:
    """Create the chain of a customer and grade (new tickets copy it when they open)."""
    _check_webhooks(body, settings)
    levels = _sealed(settings, body.stored_levels())
    with db.writer() as session, session.begin():
        row = EscalationChain(
            name=body.name,
            customer=body.customer,
            grade=body.grade,
            levels=levels,
            updated_at=clock.now(),
        )
        session.add(row)
        _unique(session, f"a chain for customer {body.customer!r} grade {body.grade}")
        audit_note(request, f"create escalation chain {body.name}", chain_id=row.id)
        return ChainOut.of(row)


@router.put("/escalation-chains/{chain_id}", response_model=ChainOut, responses=_404_409)
def put_chain(
    chain_id: Id,
    body: ChainIn,
    request: Request,
    _admin: AdminDep,
    db: DbDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> ChainOut:
    """Replace a chain (tickets already open keep the copy they were opened with). Webhook
    keys are never shown, so a contact that leaves out `webhook_secret` keeps the key the chain
    holds for the same contact (same name and webhook_url); `"webhook_secret": null` removes
    it."""
    _check_webhooks(body, settings)
    levels = _sealed(settings, body.stored_levels())
    with db.writer() as session, session.begin():
        row = _get(session, EscalationChain, chain_id, "escalation chain", for_update=True)
        _keep_keys(levels, row.levels, body.keys_left_out(), settings)
        row.name, row.customer, row.grade = body.name, body.customer, body.grade
        row.levels = levels
        row.updated_at = clock.now()
        _unique(session, f"a chain for customer {body.customer!r} grade {body.grade}")
        audit_note(request, f"change escalation chain {body.name}")
        return ChainOut.of(row)


@router.delete(
    "/escalation-chains/{chain_id}", status_code=204, response_model=None, responses=_404
)
def delete_chain(chain_id: Id, request: Request, _admin: AdminDep, db: DbDep) -> None:
    """Delete a chain (open tickets keep their copy)."""
    with db.writer() as session, session.begin():
        row = _get(session, EscalationChain, chain_id, "escalation chain")
        audit_note(request, f"delete escalation chain {row.name}")
        session.delete(row)


# ---- maintenance windows ---------------------------------------------------------------------


@router.get("/maintenance-windows", response_model=list[WindowOut])
def list_windows(
    _user: ViewerDep,
    db: DbDep,
    clock: ClockDep,
    active: Annotated[
        bool | None, Query(description="Only windows running now (true) or not (false)")
    ] = None,
    site_id: Annotated[int | None, Query(ge=1, le=2_147_483_647)] = None,
) -> list[WindowOut]:
    """Maintenance windows, latest start first."""
    stmt = select(MaintenanceWindow)
    if site_id is not None:
        stmt = stmt.where(MaintenanceWindow.site_id == site_id)
    if active is not None:
        now = clock.now()
        running = (MaintenanceWindow.starts_at <= now) & (MaintenanceWindow.ends_at > now)
        stmt = stmt.where(running if active else ~running)
    with db.session() as session:
        rows = session.scalars(stmt.order_by(MaintenanceWindow.starts_at.desc()))
        return [WindowOut.of(r) for r in rows]


@router.get("/maintenance-windows/{window_id}", response_model=WindowOut, responses=_404)
def get_window(window_id: Id, _user: ViewerDep, db: DbDep) -> WindowOut:
    """One maintenance window."""
    with db.session() as session:
        return WindowOut.of(_get(session, MaintenanceWindow, window_id, "maintenance window"))


def _fill_window(session: Session, row: MaintenanceWindow, body: WindowIn) -> None:
    if body.site_id is not None and session.get(Site, body.site_id) is None:
        raise InvalidInput(f"no site {body.site_id}")
    row.site_id, row.device_id, row.code = body.site_id, body.device_id, body.code
    row.starts_at, row.ends_at = body.starts_at, body.ends_at
    row.reason, row.approval_ref = body.reason, body.approval_ref
    # A window moved to end later holds its alarms again until then.
    row.released_at = None


@router.post("/maintenance-windows", response_model=WindowOut, status_code=201)
def post_window(
    body: WindowIn, request: Request, admin: AdminDep, db: DbDep, clock: ClockDep
) -> WindowOut:
    """Plan a maintenance window (the caller is its author)."""
    with db.writer() as session, session.begin():
        row = MaintenanceWindow(author=admin.name, created_at=clock.now())
        _fill_window(session, row, body)
        session.add(row)
        session.flush()
        audit_note(request, f"plan maintenance window: {body.reason[:200]}", window_id=row.id)
        return WindowOut.of(row)


@router.put("/maintenance-windows/{window_id}", response_model=WindowOut, responses=_404)
def put_window(
    window_id: Id, body: WindowIn, request: Request, _admin: AdminDep, db: DbDep
) -> WindowOut:
    """Change a window (matchers, times, reason, approval)."""
    with db.writer() as session, session.begin():
        row = _get(session, MaintenanceWindow, window_id, "maintenance window")
        _fill_window(session, row, body)
        audit_note(request, "change maintenance window")
        return WindowOut.of(row)


@router.delete(
    "/maintenance-windows/{window_id}", status_code=204, response_model=None, responses=_404
)
def delete_window(
    window_id: Id, request: Request, _admin: AdminDep, db: DbDep, clock: ClockDep
) -> None:
    """Cancel a window: one not started yet is deleted, a running one ends now (so the
    scheduler opens tickets for the alarms it held); a past one stays as a record."""
    now = clock.now()
    with db.writer() as session, session.begin():
        row = _get(session, MaintenanceWindow, window_id, "maintenance window")
        if row.starts_at > now:
            audit_note(request, "delete planned maintenance window")
            session.delete(row)
        elif row.ends_at > now:
            audit_note(request, "end running maintenance window now")
            session.execute(
                update(MaintenanceWindow)
                .where(MaintenanceWindow.id == row.id)
                .values(ends_at=now)
                .execution_options(synchronize_session=False)
            )
        else:
            audit_note(request, "past maintenance window kept as a record")
