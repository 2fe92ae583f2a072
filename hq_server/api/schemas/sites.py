"""Sites and their agents as the API shows them, devices, and the body creating a site."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from hq_server.api.schemas.common import In, Out
from hq_server.sites.agents import state_of
from hq_server.store.models import Agent, Site


class AgentOut(Out):
    """An enrolled agent, as last seen, with the figures of its last heartbeat."""

    id: int
    site_id: int
    site: str
    name: str = Field(description="The host name it reported at enrollment")
    version: str
    enrolled_at: datetime
    last_seen_at: datetime | None
    last_seq: int
    reported_seq: int
    outbox_depth: int
    dropped_events: int
    revoked: bool = Field(description="Its token no longer works (revoked or replaced)")
    state: Literal["active", "revoked", "replaced"]
    revoked_at: datetime | None
    revoked_by: str | None
    replaced_by: int | None = Field(description="The agent that re-enrolled in its place")
    health_at: datetime | None = Field(description="When HQ received its last heartbeat")
    health: dict[str, Any] | None = Field(
        description="Every figure of its last heartbeat but the device map, as sent: version, "
        "queue figures, `host` (CPU, memory, suppressed traps and syslog lines, ...) and any "
        "field newer agents add"
    )

    @classmethod
    def of(cls, agent: Agent) -> AgentOut:
        """From a stored agent."""
        return cls(
            id=agent.id,
            site_id=agent.site_id,
            site=agent.site.name,
            name=agent.name,
            version=agent.version,
            enrolled_at=agent.enrolled_at,
            last_seen_at=agent.last_seen_at,
            last_seq=agent.last_seq,
            reported_seq=agent.reported_seq,
            outbox_depth=agent.outbox_depth,
            dropped_events=agent.dropped_events,
            revoked=agent.revoked_at is not None,
            state=state_of(agent).value,
            revoked_at=agent.revoked_at,
            revoked_by=agent.revoked_by,
            replaced_by=agent.replaced_by_id,
            health_at=agent.health_at,
            health=agent.health,
        )


class SiteOut(Out):
    """A site with its agents."""

    id: int
    name: str
    customer: str
    customer_id: int | None = Field(description="The customer record whose contract covers it")
    contact: str
    timezone: str
    calendar_id: int | None
    created_at: datetime
    agents: list[AgentOut]

    @classmethod
    def of(cls, site: Site, agents: list[Agent]) -> SiteOut:
        """From a stored site and its agents."""
        return cls(
            id=site.id,
            name=site.name,
            customer=site.customer,
            customer_id=site.customer_id,
            contact=site.contact,
            timezone=site.timezone,
            calendar_id=site.calendar_id,
            created_at=site.created_at,
            agents=[AgentOut.of(a) for a in agents],
        )


class DeviceOut(Out):
    """A device at a site, as its agent last reported it, with its active alarm count."""

    site: str
    device_id: str
    device_class: str | None
    profile: str | None = Field(
        default=None, description="The profile polling it, from agents that report it"
    )
    state: str
    active_alarms: int


class SiteIn(In):
    """A new site."""

    name: str = Field(
        max_length=400,
        description="Unique; at most 100 characters once outer spaces are stripped, any script "
        "(e.g. Chinese), no control or invisible characters",
    )
    customer: str = Field(default="", max_length=200)
    contact: str = Field(default="", max_length=200)
    timezone: str = Field(default="UTC", min_length=1, max_length=64, examples=["Asia/Shanghai"])
