"""Response models of the user API (the agent API answers with protocol.wire models)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from hq_server.core.domain import TicketStatus
from hq_server.sites.agents import state_of
from hq_server.store.models import Agent, Alarm, Event, Site, Ticket, TicketEvent


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class ErrorOut(_Out):
    """The body of every error response (422 has FastAPI's list of validation errors)."""

    detail: str


class HealthOut(_Out):
    """Liveness and database reachability."""

    status: Literal["ok", "error"]
    db: str


class AlarmOut(_Out):
    """The current state of one fault condition at a site."""

    id: int
    site_id: int
    site: str
    fault_key: str
    device_id: str
    device_class: str
    code: str
    component: str
    grade: int
    title: str
    active: bool
    flapping: bool
    first_raised_at: datetime
    last_change_at: datetime
    cleared_at: datetime | None
    raise_count: int

    @classmethod
    def of(cls, alarm: Alarm) -> AlarmOut:
        """From a stored alarm (with its site loaded)."""
        return cls(
            id=alarm.id,
            site_id=alarm.site_id,
            site=alarm.site.name,
            fault_key=alarm.fault_key,
            device_id=alarm.device_id,
            device_class=alarm.device_class,
            code=alarm.code,
            component=alarm.component,
            grade=alarm.grade,
            title=alarm.title,
            active=alarm.active,
            flapping=alarm.flapping,
            first_raised_at=alarm.first_raised_at,
            last_change_at=alarm.last_change_at,
            cleared_at=alarm.cleared_at,
            raise_count=alarm.raise_count,
        )


class AlarmEventOut(_Out):
    """One event of an alarm's history, as its agent sent it."""

    event_id: UUID
    agent_id: int
    seq: int
    kind: str = Field(description="raise, update or clear")
    grade: int
    title: str
    detail: str
    values: dict[str, Any] = Field(description="The readings the agent saw")
    observed_at: datetime
    received_at: datetime
    applied: bool = Field(
        description="False when the event changed nothing (a repeat, or older than the alarm's "
        "state)"
    )

    @classmethod
    def of(cls, event: Event) -> AlarmEventOut:
        """From a stored event."""
        return cls(
            event_id=event.event_id,
            agent_id=event.agent_id,
            seq=event.seq,
            kind=event.kind,
            grade=event.grade,
            title=event.title,
            detail=event.detail,
            values=event.values,
            observed_at=event.observed_at,
            received_at=event.received_at,
            applied=event.applied,
        )


class TicketOut(_Out):
    """A fault ticket with its deadlines."""

    id: int
    number: str
    site_id: int
    site: str
    alarm_id: int | None
    fault_key: str
    device_id: str
    code: str
    component: str
    grade: int
    status: TicketStatus
    title: str
    opened_at: datetime
    ack_due_at: datetime | None
    restore_due_at: datetime | None
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    alarm_active: bool
    updated_at: datetime
    customer: str
    contact: str
    symptom: str
    on_duty: str
    assignee: str
    paused_since: datetime | None
    time_spent_minutes: int
    resolution: dict[str, Any] | None
    escalation_chain: str | None
    ack_escalation_level: int = Field(description="ack escalation levels reached so far")
    ack_escalation_at: datetime | None = Field(
        description="when the next ack escalation level is due; null: not running"
    )
    restore_escalation_level: int = Field(description="restore escalation levels reached so far")
    restore_escalation_at: datetime | None = Field(
        description="when the next restore escalation level is due; null: not running"
    )

    @classmethod
    def fields_of(cls, t: Ticket) -> dict[str, Any]:
        """The field values of a stored ticket (with its site loaded)."""
        return {
            "id": t.id,
            "number": t.number,
            "site_id": t.site_id,
            "site": t.site.name,
            "alarm_id": t.alarm_id,
            "fault_key": t.fault_key,
            "device_id": t.device_id,
            "code": t.code,
            "component": t.component,
            "grade": t.grade,
            "status": TicketStatus(t.status),
            "title": t.title,
            "opened_at": t.opened_at,
            "ack_due_at": t.ack_due_at,
            "restore_due_at": t.restore_due_at,
            "acknowledged_at": t.acknowledged_at,
            "resolved_at": t.resolved_at,
            "closed_at": t.closed_at,
            "alarm_active": t.alarm_active,
            "updated_at": t.updated_at,
            "customer": t.site.customer,
            "contact": t.site.contact,
            "symptom": t.symptom,
            "on_duty": t.on_duty,
            "assignee": t.assignee,
            "paused_since": t.paused_since,
            "time_spent_minutes": t.time_spent_minutes,
            "resolution": t.resolution,
            "escalation_chain": (t.escalation or {}).get("name"),
            "ack_escalation_level": t.ack_escalation_level,
            "ack_escalation_at": t.ack_escalation_at,
            "restore_escalation_level": t.restore_escalation_level,
            "restore_escalation_at": t.restore_escalation_at,
        }

    @classmethod
    def of(cls, ticket: Ticket) -> TicketOut:
        """From a stored ticket."""
        return cls(**cls.fields_of(ticket))


class TicketHistoryOut(_Out):
    """One entry of a ticket's history."""

    at: datetime
    who: str
    what: str
    detail: str
    data: dict[str, Any]

    @classmethod
    def of(cls, entry: TicketEvent) -> TicketHistoryOut:
        """From a stored history entry."""
        return cls(
            at=entry.at, who=entry.who, what=entry.what, detail=entry.detail, data=entry.data
        )


class TicketDetailOut(TicketOut):
    """A ticket with its history (oldest entry first), escalation chain and grouped alarms."""

    history: list[TicketHistoryOut]
    escalation: dict[str, Any] | None
    grouped_alarm_ids: list[int]

    @classmethod
    def with_history(cls, ticket: Ticket, grouped: list[int] | None = None) -> TicketDetailOut:
        """From a stored ticket whose history is loaded."""
        return cls(
            **cls.fields_of(ticket),
            history=[TicketHistoryOut.of(h) for h in ticket.history],
            escalation=_public_chain(ticket.escalation),
            grouped_alarm_ids=grouped or [],
        )


def _public_chain(chain: dict[str, Any] | None) -> dict[str, Any] | None:
    """The chain copied on a ticket without webhook secrets."""
    if chain is None:
        return None
    levels = [
        {
            **level,
            "contacts": [
                {k: v for k, v in c.items() if k != "webhook_secret"}
                for c in level.get("contacts", [])
            ],
        }
        for level in chain.get("levels", [])
    ]
    return {**chain, "levels": levels}


class AgentOut(_Out):
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


class SiteOut(_Out):
    """A site with its agents."""

    id: int
    name: str
    customer: str
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
            contact=site.contact,
            timezone=site.timezone,
            calendar_id=site.calendar_id,
            created_at=site.created_at,
            agents=[AgentOut.of(a) for a in agents],
        )


class DeviceOut(_Out):
    """A device at a site, as its agent last reported it, with its active alarm count."""

    site: str
    device_id: str
    device_class: str | None
    state: str
    active_alarms: int
