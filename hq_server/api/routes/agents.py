"""Enrolled agents (admins): list them with their state and last heartbeat figures, revoke one
(e.g. a stolen box)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from hq_server.api.body import BoundedBodyRoute
from hq_server.api.deps import AdminDep, ClockDep, DbDep, Id, audit_note
from hq_server.api.errors import AUTH_ERRORS, BODY_ERRORS, errors
from hq_server.api.schemas.sites import AgentOut
from hq_server.sites.agents import get_agent, list_agents, revoke_agent
from protocol.wire import API_PREFIX

router = APIRouter(
    prefix=API_PREFIX,
    tags=["admin"],
    route_class=BoundedBodyRoute,
    responses={**BODY_ERRORS, **AUTH_ERRORS},
)


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


@router.get("/agents/{agent_id}", response_model=AgentOut, responses=errors(404))
def get_one_agent(agent_id: Id, _admin: AdminDep, db: DbDep) -> AgentOut:
    """One agent."""
    with db.session() as session:
        return AgentOut.of(get_agent(session, agent_id))


@router.post(
    "/agents/{agent_id}/revoke",
    response_model=AgentOut,
    responses=errors(404),
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
