"""Sites and their devices: any user token reads them; admins create sites and set the
calendar a site works on (its open tickets' deadlines are recomputed)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import select

from hq_server.api.body import BoundedBodyRoute
from hq_server.api.deps import (
    AdminDep,
    ClockDep,
    DbDep,
    Id,
    SiteFilter,
    ViewerDep,
    audit_note,
)
from hq_server.api.errors import AUTH_ERRORS, BODY_ERRORS, error, errors
from hq_server.api.lookup import get_row
from hq_server.api.schemas.calendars import SiteCalendarIn
from hq_server.api.schemas.sites import DeviceOut, SiteIn, SiteOut
from hq_server.core.errors import ConfigError, Conflict, InvalidInput, NotFound
from hq_server.sites import devices
from hq_server.sites.registry import check_site_name, check_timezone, ensure_site
from hq_server.store.models import Agent, Calendar, Site
from hq_server.tickets import deadlines
from protocol.wire import API_PREFIX

router = APIRouter(prefix=API_PREFIX, route_class=BoundedBodyRoute, responses=AUTH_ERRORS)


@router.get("/sites", tags=["user"], response_model=list[SiteOut])
def list_sites(_user: ViewerDep, db: DbDep) -> list[SiteOut]:
    """All sites with their agents, by name."""
    with db.session() as session:
        sites = list(session.scalars(select(Site).order_by(Site.name)))
        agents: dict[int, list[Agent]] = {s.id: [] for s in sites}
        for agent in session.scalars(select(Agent).order_by(Agent.id)):
            agents.setdefault(agent.site_id, []).append(agent)
        return [SiteOut.of(s, agents[s.id]) for s in sites]


@router.post(
    "/sites",
    tags=["admin"],
    response_model=SiteOut,
    status_code=201,
    responses={**BODY_ERRORS, **errors(409)},
)
def post_site(
    body: SiteIn, request: Request, _admin: AdminDep, db: DbDep, clock: ClockDep
) -> SiteOut:
    """Create a site (then issue an enrollment token for its agent)."""
    name = check_site_name(body.name)
    try:
        timezone = check_timezone(body.timezone)
    except ConfigError as exc:
        raise InvalidInput(f"timezone: {exc}", field="timezone") from None
    with db.writer() as session, session.begin():
        site, created = ensure_site(
            session,
            name,
            clock.now(),
            customer=body.customer,
            contact=body.contact,
            timezone=timezone,
        )
        if not created:
            raise Conflict(f"site {name!r} already exists (id {site.id})")
        audit_note(request, f"create site {site.name}", site_id=site.id)
        return SiteOut.of(site, [])


@router.get(
    "/sites/{site_id}",
    tags=["user"],
    response_model=SiteOut,
    responses=error(404, "No such site"),
)
def get_site(site_id: Id, _user: ViewerDep, db: DbDep) -> SiteOut:
    """One site with its agents."""
    with db.session() as session:
        site = session.get(Site, site_id)
        if site is None:
            raise NotFound(f"no site {site_id}")
        agents = list(session.scalars(select(Agent).where(Agent.site_id == site_id)))
        return SiteOut.of(site, agents)


@router.get("/devices", tags=["user"], response_model=list[DeviceOut])
def list_devices(_user: ViewerDep, db: DbDep, site: SiteFilter = None) -> list[DeviceOut]:
    """Devices known at each site: from the agents' heartbeats and from alarms, by site and id."""
    with db.session() as session:
        return [
            DeviceOut(
                site=d.site,
                device_id=d.device_id,
                device_class=d.device_class,
                profile=d.profile,
                state=d.state,
                active_alarms=d.active_alarms,
            )
            for d in devices.list_devices(session, site)
        ]


@router.put(
    "/sites/{site_id}/calendar",
    tags=["config"],
    response_model=SiteOut,
    responses={**BODY_ERRORS, **errors(404)},
)
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
        site = get_row(session, Site, site_id, "site")
        if body.calendar_id is not None:
            get_row(session, Calendar, body.calendar_id, "calendar")
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
