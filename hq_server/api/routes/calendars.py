"""Working-time calendars (admins change them, everyone reads them); a change recomputes the
deadlines of open tickets at the sites using the calendar (their own, or their customer's SLA
policy's)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from hq_server.api.body import BoundedBodyRoute
from hq_server.api.deps import AdminDep, ClockDep, DbDep, Id, ViewerDep, audit_note
from hq_server.api.errors import AUTH_ERRORS, BODY_ERRORS, errors
from hq_server.api.lookup import flush_unique, get_row
from hq_server.api.schemas.calendars import CalendarIn, CalendarOut
from hq_server.core.errors import Conflict
from hq_server.store.models import Calendar, Customer, Site, SlaPolicy
from hq_server.tickets import deadlines
from protocol.wire import API_PREFIX

router = APIRouter(
    prefix=API_PREFIX,
    tags=["config"],
    route_class=BoundedBodyRoute,
    responses={**BODY_ERRORS, **AUTH_ERRORS},
)


@router.get("/calendars", response_model=list[CalendarOut])
def list_calendars(_user: ViewerDep, db: DbDep) -> list[CalendarOut]:
    """All calendars, by name."""
    with db.session() as session:
        return [CalendarOut.of(r) for r in deadlines.list_calendars(session)]


@router.get("/calendars/{calendar_id}", response_model=CalendarOut, responses=errors(404))
def get_calendar(calendar_id: Id, _user: ViewerDep, db: DbDep) -> CalendarOut:
    """One calendar."""
    with db.session() as session:
        return CalendarOut.of(get_row(session, Calendar, calendar_id, "calendar"))


def _fill_calendar(row: Calendar, body: CalendarIn) -> None:
    row.name = body.name
    row.timezone = body.timezone
    row.always_open = body.always_open
    row.hours = body.stored_hours()
    row.holidays = {"dates": sorted({d.isoformat() for d in body.holidays})}


@router.post("/calendars", response_model=CalendarOut, status_code=201, responses=errors(409))
def post_calendar(
    body: CalendarIn, request: Request, _admin: AdminDep, db: DbDep, clock: ClockDep
) -> CalendarOut:
    """Create a calendar."""
    with db.writer() as session, session.begin():
        row = Calendar(updated_at=clock.now())
        _fill_calendar(row, body)
        session.add(row)
        flush_unique(session, f"calendar {body.name!r}")
        audit_note(request, f"create calendar {body.name}", calendar_id=row.id)
        return CalendarOut.of(row)


def _sites_of(session: Session, calendar_id: int) -> list[int]:
    own = select(Site.id).where(Site.calendar_id == calendar_id)
    by_contract = (
        select(Site.id)
        .join(Customer, Site.customer_id == Customer.id)
        .join(SlaPolicy, Customer.sla_policy_id == SlaPolicy.id)
        .where(SlaPolicy.calendar_id == calendar_id)
    )
    return sorted(set(session.scalars(own)) | set(session.scalars(by_contract)))


@router.put("/calendars/{calendar_id}", response_model=CalendarOut, responses=errors(404, 409))
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
        row = get_row(session, Calendar, calendar_id, "calendar")
        _fill_calendar(row, body)
        row.updated_at = clock.now()
        flush_unique(session, f"calendar {body.name!r}")
        count = deadlines.refresh_open_tickets(
            session, _sites_of(session, calendar_id), clock.now(), user.name, "calendar changed"
        )
        audit_note(request, f"change calendar {body.name}; {count} tickets' deadlines moved")
        return CalendarOut.of(row)


@router.delete(
    "/calendars/{calendar_id}", status_code=204, response_model=None, responses=errors(404, 409)
)
def delete_calendar(calendar_id: Id, request: Request, _admin: AdminDep, db: DbDep) -> None:
    """Delete a calendar no site uses."""
    with db.writer() as session, session.begin():
        row = get_row(session, Calendar, calendar_id, "calendar")
        own = session.scalars(select(Site.id).where(Site.calendar_id == calendar_id)).first()
        if own is not None:
            raise Conflict(f"calendar {row.name!r} is used by sites: assign them another first")
        policies = session.scalars(select(SlaPolicy.name).where(SlaPolicy.calendar_id == row.id))
        used_by = sorted(policies)
        if used_by:
            raise Conflict(
                f"calendar {row.name!r} is used by SLA policies ({', '.join(used_by)}): "
                "give them another first"
            )
        audit_note(request, f"delete calendar {row.name}")
        session.delete(row)
