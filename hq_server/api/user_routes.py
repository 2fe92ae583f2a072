"""User endpoints (API tokens, any role may read): alarms, tickets, sites, devices."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import ColumnElement, and_, not_, or_, select
from sqlalchemy.orm import Session

from hq_server.api.body import BoundedBodyRoute
from hq_server.api.deps import ClockDep, DbDep, Id, ViewerDep, query_instant
from hq_server.api.errors import ERROR_RESPONSES
from hq_server.api.schemas import (
    AlarmEventOut,
    AlarmOut,
    DeviceOut,
    ErrorOut,
    SiteOut,
    TicketDetailOut,
    TicketOut,
)
from hq_server.api.ticket_routes import ticket_detail
from hq_server.core.domain import DONE_STATUSES, OPEN_STATUSES, TicketStatus
from hq_server.core.errors import NotFound
from hq_server.store.models import Agent, Alarm, Event, Site, Ticket
from hq_server.tickets.records import fold
from protocol.wire import API_PREFIX

router = APIRouter(
    prefix=API_PREFIX,
    tags=["user"],
    route_class=BoundedBodyRoute,
    responses={code: {**spec, "model": ErrorOut} for code, spec in ERROR_RESPONSES.items()},
)

Limit = Annotated[int, Query(ge=1, le=1000, description="At most this many rows")]
GradeFilter = Annotated[int | None, Query(ge=1, le=5, description="Only this grade")]
SiteFilter = Annotated[str | None, Query(description="Only this site (by name)")]


@router.get("/alarms", response_model=list[AlarmOut])
def list_alarms(
    _user: ViewerDep,
    db: DbDep,
    active: Annotated[
        bool | None, Query(description="Only active (true) or cleared (false)")
    ] = None,
    site: SiteFilter = None,
    grade: GradeFilter = None,
    limit: Limit = 200,
) -> list[AlarmOut]:
    """Alarms, most recently changed first."""
    stmt = select(Alarm)
    if active is not None:
        stmt = stmt.where(Alarm.active.is_(active))
    if site is not None:
        stmt = stmt.join(Alarm.site).where(Site.name == site)
    if grade is not None:
        stmt = stmt.where(Alarm.grade == grade)
    stmt = stmt.order_by(Alarm.last_change_at.desc(), Alarm.id.desc()).limit(limit)
    with db.session() as session:
        return [AlarmOut.of(a) for a in session.scalars(stmt)]


@router.get(
    "/alarms/{alarm_id}",
    response_model=AlarmOut,
    responses={404: {"model": ErrorOut, "description": "No such alarm"}},
)
def get_alarm(alarm_id: Id, _user: ViewerDep, db: DbDep) -> AlarmOut:
    """One alarm's current state."""
    with db.session() as session:
        return AlarmOut.of(_alarm(session, alarm_id))


def _alarm(session: Session, alarm_id: int) -> Alarm:
    alarm = session.get(Alarm, alarm_id)
    if alarm is None:
        raise NotFound(f"no alarm {alarm_id}")
    return alarm


@router.get(
    "/alarms/{alarm_id}/events",
    response_model=list[AlarmEventOut],
    responses={404: {"model": ErrorOut, "description": "No such alarm"}},
)
def list_alarm_events(
    alarm_id: Id,
    _user: ViewerDep,
    db: DbDep,
    before: Annotated[
        datetime | None,
        Query(description="Only events observed before this instant (to page back)"),
    ] = None,
    limit: Limit = 200,
) -> list[AlarmEventOut]:
    """The alarm's history: every event of its fingerprint (raise, update, clear, repeats),
    newest first."""
    with db.session() as session:
        alarm = _alarm(session, alarm_id)
        stmt = select(Event).where(
            Event.site_id == alarm.site_id, Event.fault_key == alarm.fault_key
        )
        if before is not None:
            stmt = stmt.where(Event.observed_at < query_instant(before))
        stmt = stmt.order_by(Event.observed_at.desc(), Event.id.desc()).limit(limit)
        return [AlarmEventOut.of(e) for e in session.scalars(stmt)]


@router.get("/tickets", response_model=list[TicketOut])
def list_tickets(
    _user: ViewerDep,
    db: DbDep,
    clock: ClockDep,
    status: Annotated[list[TicketStatus] | None, Query(description="Any of these")] = None,
    open: Annotated[
        bool | None, Query(description="Only open (true) or finished (false) tickets")
    ] = None,
    site: SiteFilter = None,
    grade: GradeFilter = None,
    assignee: Annotated[str | None, Query(max_length=100, description="Assigned to")] = None,
    overdue: Annotated[
        bool | None,
        Query(description="Only tickets past their acknowledge or restore deadline (true)"),
    ] = None,
    q: Annotated[
        str | None, Query(max_length=200, description="Text in the title (any case)")
    ] = None,
    limit: Limit = 200,
) -> list[TicketOut]:
    """Tickets, newest first."""
    stmt = select(Ticket)
    if assignee is not None:
        stmt = stmt.where(Ticket.assignee == assignee)
    if q:
        # Against the title folded when the ticket opened (SQLite's lower() folds ASCII only).
        folded = fold(q)
        escaped = folded.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(Ticket.title_folded.like(f"%{escaped}%", escape="\\"))
    if overdue is not None:
        late = overdue_clause(clock.now())
        stmt = stmt.where(late if overdue else not_(late))
    if status:
        stmt = stmt.where(Ticket.status.in_([s.value for s in status]))
    if open is not None:
        stmt = stmt.where(Ticket.status.in_(OPEN_STATUSES if open else DONE_STATUSES))
    if site is not None:
        stmt = stmt.join(Ticket.site).where(Site.name == site)
    if grade is not None:
        stmt = stmt.where(Ticket.grade == grade)
    stmt = stmt.order_by(Ticket.opened_at.desc(), Ticket.id.desc()).limit(limit)
    with db.session() as session:
        return [TicketOut.of(t) for t in session.scalars(stmt)]


@router.get(
    "/tickets/{ticket_id}",
    response_model=TicketDetailOut,
    responses={404: {"model": ErrorOut, "description": "No such ticket"}},
)
def get_ticket(ticket_id: Id, _user: ViewerDep, db: DbDep) -> TicketDetailOut:
    """One ticket with its history, escalation chain and grouped alarms."""
    with db.session() as session:
        return ticket_detail(session, ticket_id)


def overdue_clause(now: datetime) -> ColumnElement[bool]:
    """Open and past the acknowledge deadline unacknowledged, or past the restore deadline."""
    return and_(
        Ticket.status.in_(OPEN_STATUSES),
        Ticket.paused_since.is_(None),
        # The IS NOT NULL guards keep the clause two-valued, so NOT(...) works for overdue=false.
        or_(
            and_(
                Ticket.acknowledged_at.is_(None),
                Ticket.ack_due_at.is_not(None),
                Ticket.ack_due_at < now,
            ),
            and_(Ticket.restore_due_at.is_not(None), Ticket.restore_due_at < now),
        ),
    )


@router.get("/sites", response_model=list[SiteOut])
def list_sites(_user: ViewerDep, db: DbDep) -> list[SiteOut]:
    """All sites with their agents, by name."""
    with db.session() as session:
        sites = list(session.scalars(select(Site).order_by(Site.name)))
        agents: dict[int, list[Agent]] = {s.id: [] for s in sites}
        for agent in session.scalars(select(Agent).order_by(Agent.id)):
            agents.setdefault(agent.site_id, []).append(agent)
        return [SiteOut.of(s, agents[s.id]) for s in sites]


@router.get(
    "/sites/{site_id}",
    response_model=SiteOut,
    responses={404: {"model": ErrorOut, "description": "No such site"}},
)
def get_site(site_id: Id, _user: ViewerDep, db: DbDep) -> SiteOut:
    """One site with its agents."""
    with db.session() as session:
        site = session.get(Site, site_id)
        if site is None:
            raise NotFound(f"no site {site_id}")
        agents = list(session.scalars(select(Agent).where(Agent.site_id == site_id)))
        return SiteOut.of(site, agents)


@router.get("/devices", response_model=list[DeviceOut])
def list_devices(_user: ViewerDep, db: DbDep, site: SiteFilter = None) -> list[DeviceOut]:
    """Devices known at each site: from the agents' heartbeats and from alarms, by site and id."""
    devices: dict[tuple[str, str], dict[str, Any]] = {}
    with db.session() as session:
        agents = select(Agent, Site.name).join(Site, Site.id == Agent.site_id)
        alarms = select(Alarm, Site.name).join(Site, Site.id == Alarm.site_id)
        if site is not None:
            agents, alarms = agents.where(Site.name == site), alarms.where(Site.name == site)
        for agent, site_name in session.execute(agents.where(Agent.revoked_at.is_(None))):
            for device_id, state in agent.device_states.items():
                entry = devices.setdefault((site_name, device_id), {"classes": set(), "n": 0})
                entry["state"] = state
        for alarm, site_name in session.execute(alarms):
            if alarm.device_class == "site":
                continue  # HQ's own "site unreachable" alarm is not a device
            entry = devices.setdefault((site_name, alarm.device_id), {"classes": set(), "n": 0})
            entry["classes"].add(alarm.device_class)
            entry["n"] += int(alarm.active)
    return [
        DeviceOut(
            site=site_name,
            device_id=device_id,
            device_class=min(entry["classes"]) if entry["classes"] else None,
            state=entry.get("state", "unknown"),
            active_alarms=entry["n"],
        )
        for (site_name, device_id), entry in sorted(devices.items())
    ]
