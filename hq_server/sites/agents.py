"""Enrolled agents: list, revoke (a stolen box), retire on replacement (re-enrollment), and
their heartbeats (the figures of the last one; a heartbeat clears the site's dead man's switch).

A revoked agent's token is refused from the next request on (hq_server.access.auth looks it up
every time) and its jobs are cancelled; its alarms, tickets and events stay.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hq_server.access.auth import active_agent
from hq_server.alarms import deadman
from hq_server.core.changes import Topic
from hq_server.core.errors import NotFound
from hq_server.jobs.queue import release_agent_jobs
from hq_server.store.changes import mark
from hq_server.store.models import Agent
from hq_server.tickets.policy import TicketPolicy
from protocol.wire import Heartbeat

logger = logging.getLogger(__name__)


class AgentState(StrEnum):
    """Whether an agent's token works, and if not, why."""

    ACTIVE = "active"
    REVOKED = "revoked"  # by an admin (e.g. the box was stolen)
    REPLACED = "replaced"  # retired by the re-enrollment of its site (the box was replaced)


def state_of(agent: Agent) -> AgentState:
    """The agent's state."""
    if agent.replaced_by_id is not None:
        return AgentState.REPLACED
    return AgentState.ACTIVE if agent.revoked_at is None else AgentState.REVOKED


def list_agents(
    session: Session, *, site_id: int | None = None, active: bool | None = None
) -> list[Agent]:
    """Agents by site and id, optionally of one site, only active (or only retired) ones."""
    stmt = select(Agent)
    if site_id is not None:
        stmt = stmt.where(Agent.site_id == site_id)
    if active is not None:
        stmt = stmt.where(Agent.revoked_at.is_(None) if active else Agent.revoked_at.is_not(None))
    return list(session.scalars(stmt.order_by(Agent.site_id, Agent.id)))


def get_agent(session: Session, agent_id: int, *, for_update: bool = False) -> Agent:
    """The agent with this id; NotFound otherwise."""
    agent = session.get(Agent, agent_id, with_for_update=for_update)
    if agent is None:
        raise NotFound(f"no agent {agent_id}")
    return agent


def revoke_agent(session: Session, agent_id: int, now: datetime, who: str) -> tuple[Agent, bool]:
    """Revoke an agent: its token is refused from now on and its jobs are cancelled.
    Idempotent (the first revocation stays); returns the agent and whether this call revoked it.
    """
    agent = get_agent(session, agent_id, for_update=True)
    if agent.revoked_at is not None:
        return agent, False
    agent.revoked_at = now
    agent.revoked_by = who[:100]
    session.flush()
    release_agent_jobs(session, agent.id, now, f"revoked by {who}")
    logger.warning(
        "site=%s agent %s (%s) revoked by %s", agent.site.name, agent.id, agent.name, who
    )
    return agent, True


def retire_replaced(session: Session, old_id: int, new: Agent, now: datetime) -> None:
    """Retire `old_id`, replaced by the newly enrolled agent `new` of the same site: its token
    stops working, its queued jobs go to `new`; its alarms and tickets stay with the site."""
    old = session.get(Agent, old_id, with_for_update=True)
    if old is None or old.replaced_by_id is not None:
        return
    old.replaced_by_id = new.id
    if old.revoked_at is None:
        old.revoked_at = now
        old.revoked_by = f"replaced by agent {new.id}"
    session.flush()
    release_agent_jobs(session, old.id, now, f"replaced by agent {new.id}", successor=new.id)
    logger.warning(
        "site=%s agent %s (%s) retired: replaced by agent %s (%s)",
        new.site_id,
        old.id,
        old.name,
        new.id,
        new.name,
    )


def _figure(value: Any) -> Any:
    # JSON (and PostgreSQL's json type) has no NaN or infinity.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _figure(v) for k, v in value.items()}
    return value


def health_figures(heartbeat: Heartbeat) -> dict[str, Any]:
    """Every field of a heartbeat but its device map, as JSON values: fields an agent adds
    later are kept without a change here (or in the schema)."""
    return {
        k: _figure(v) for k, v in heartbeat.model_dump(mode="json", exclude={"devices"}).items()
    }


def record_heartbeat(
    session: Session, agent_id: int, heartbeat: Heartbeat, now: datetime, policy: TicketPolicy
) -> None:
    """Record that the agent is alive (version, queue state, device states, figures) and clear
    its site's "site unreachable" alarm; AuthError if the agent was revoked meanwhile."""
    row = active_agent(session, agent_id)
    if (row.outbox_depth, row.dropped_events, row.version) != (
        heartbeat.outbox_depth,
        heartbeat.dropped_events,
        heartbeat.agent_version,
    ):  # what the console shows of a site changed
        mark(session, Topic.SITES, row.site_id)
    row.last_seen_at = now
    row.version = heartbeat.agent_version
    row.outbox_depth = heartbeat.outbox_depth
    row.dropped_events = heartbeat.dropped_events
    row.reported_seq = heartbeat.last_seq
    row.device_states = {name: state.value for name, state in heartbeat.devices.items()}
    row.health = health_figures(heartbeat)
    row.health_at = now
    deadman.heard_from(session, row.site_id, now, policy)
