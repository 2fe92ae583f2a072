"""Agents, sites and enrollment tokens as admins manage them: list and revoke agents (a stolen
box), create sites, issue enrollment and re-enrollment tokens, list and revoke pending ones."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request

from hq_server.api.body import BoundedBodyRoute
from hq_server.api.deps import AdminDep, ClockDep, DbDep, Id, audit_note
from hq_server.api.errors import ERROR_RESPONSES, body_errors, responses
from hq_server.api.schemas import AgentOut, ErrorOut, SiteOut
from hq_server.api.schemas_admin import (
    EnrollmentTokenIn,
    EnrollmentTokenOut,
    NewEnrollmentTokenOut,
    SiteIn,
)
from hq_server.core.errors import ConfigError, Conflict, InvalidInput, NotFound
from hq_server.sites.agents import get_agent, list_agents, revoke_agent
from hq_server.sites.enrollment import (
    create_enrollment_token,
    list_enrollment_tokens,
    new_site_token,
    reenrollment_target,
    revoke_enrollment_token,
)
from hq_server.sites.registry import check_site_name, check_timezone, ensure_site
from hq_server.store.models import Site
from protocol.wire import API_PREFIX

router = APIRouter(
    prefix=API_PREFIX,
    tags=["admin"],
    route_class=BoundedBodyRoute,
    responses={
        **body_errors(),
        **{code: {**spec, "model": ErrorOut} for code, spec in ERROR_RESPONSES.items()},
    },
)
_404 = responses(404)
_404_409 = responses(404, 409)


@router.get("/agents", response_model=list[AgentOut])
def get_agents(
    _admin: AdminDep,
    db: DbDep,
    site_id: Annotated[int | None, Query(ge=1, le=2_147_483_647)] = None,
    active: Annotated[
        bool | None, Query(description="Only active (true) or revoked/replaced (false) agents")
    ] = None,
) -> list[AgentOut]:
    """Agents by site and id, with their state and last heartbeat figures."""
    with db.session() as session:
        return [AgentOut.of(a) for a in list_agents(session, site_id=site_id, active=active)]


@router.get("/agents/{agent_id}", response_model=AgentOut, responses=_404)
def get_one_agent(agent_id: Id, _admin: AdminDep, db: DbDep) -> AgentOut:
    """One agent."""
    with db.session() as session:
        return AgentOut.of(get_agent(session, agent_id))


@router.post(
    "/agents/{agent_id}/revoke",
    response_model=AgentOut,
    responses=_404,
    description="Revoke an agent (e.g. its box was stolen): its token is refused from the next "
    "request on (events, heartbeats, jobs, backups), jobs queued for it or held by it are "
    "cancelled; its alarms, tickets and events stay. Idempotent. A replaced box is better "
    "re-enrolled (POST /sites/{site_id}/enrollment-tokens with replace_agent).",
)
def post_revoke_agent(
    agent_id: Id, request: Request, admin: AdminDep, db: DbDep, clock: ClockDep
) -> AgentOut:
    """Revoke an agent."""
    with db.writer() as session, session.begin():
        agent, newly = revoke_agent(session, agent_id, clock.now(), admin.name)
        state = "revoke" if newly else "already revoked:"
        audit_note(
            request,
            f"{state} agent {agent.id} ({agent.name}) of site {agent.site.name}",
            agent_id=agent.id,
            site_id=agent.site_id,
        )
        return AgentOut.of(agent)


@router.post("/sites", response_model=SiteOut, status_code=201, responses=responses(409))
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


@router.post(
    "/sites/{site_id}/enrollment-tokens",
    response_model=NewEnrollmentTokenOut,
    status_code=201,
    responses=_404_409,
    description="A one-time enrollment token for an agent of the site, shown once. Refused "
    "(409) while the site has an active agent, unless `replace_agent` (the box was replaced: "
    "the old agent is retired when the new one enrolls) or `additional` (one more agent).",
)
def post_enrollment_token(
    site_id: Id,
    body: EnrollmentTokenIn,
    request: Request,
    _admin: AdminDep,
    db: DbDep,
    clock: ClockDep,
) -> NewEnrollmentTokenOut:
    """Issue an enrollment (or re-enrollment) token for a site."""
    now = clock.now()
    ttl = timedelta(hours=body.ttl_hours)
    with db.writer() as session, session.begin():
        site = session.get(Site, site_id)
        if site is None:
            raise NotFound(f"no site {site_id}")
        replaced = None
        if body.replace_agent:
            replaced = reenrollment_target(session, site, body.agent_id)
            token = create_enrollment_token(session, site, now, ttl, replaces=replaced)
        else:
            if body.agent_id is not None:
                raise InvalidInput("agent_id: only with replace_agent", field="agent_id")
            token = new_site_token(session, site, now, ttl, additional=body.additional)
        what = f"re-enrollment token replacing agent {replaced.id}" if replaced else "token"
        audit_note(request, f"issue enrollment {what} for site {site.name}", site_id=site.id)
        return NewEnrollmentTokenOut(
            token=token,
            site_id=site.id,
            expires_at=now + ttl,
            replaces_agent_id=replaced.id if replaced else None,
        )


@router.get("/enrollment-tokens", response_model=list[EnrollmentTokenOut])
def get_enrollment_tokens(
    _admin: AdminDep,
    db: DbDep,
    clock: ClockDep,
    all: Annotated[
        bool, Query(description="Used, expired and revoked ones too (default: pending only)")
    ] = False,
) -> list[EnrollmentTokenOut]:
    """Enrollment tokens by id (never the token or its hash)."""
    with db.session() as session:
        infos = list_enrollment_tokens(session, clock.now(), pending_only=not all)
        return [EnrollmentTokenOut.of(i) for i in infos]


@router.post(
    "/enrollment-tokens/{token_id}/revoke",
    response_model=EnrollmentTokenOut,
    responses=_404_409,
    description="Revoke an unused enrollment token: it can no longer enroll an agent. 409 for a "
    "used one (revoke its agent instead). Idempotent.",
)
def post_revoke_enrollment_token(
    token_id: Id, request: Request, admin: AdminDep, db: DbDep, clock: ClockDep
) -> EnrollmentTokenOut:
    """Revoke a pending enrollment token."""
    with db.writer() as session, session.begin():
        info, newly = revoke_enrollment_token(session, token_id, clock.now(), admin.name)
    state = "revoke" if newly else "already revoked:"
    audit_note(
        request,
        f"{state} enrollment token {info.id} of site {info.site_name}",
        site_id=info.site_id,
    )
    return EnrollmentTokenOut.of(info)
