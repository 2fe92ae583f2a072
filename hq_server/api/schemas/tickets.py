"""Tickets as the API shows them (with their history, chain and grouped alarms), and the
request bodies of the ticket actions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from hq_server.api.schemas.common import In, Instant, Out
from hq_server.core.domain import TicketStatus
from hq_server.store.models import Ticket

Text = Field(default="", max_length=4000)


class TicketOut(Out):
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
    title_zh: str = Field(description="The title in Simplified Chinese; empty when unknown")
    opened_at: datetime
    ack_due_at: datetime | None
    restore_due_at: datetime | None
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    alarm_active: bool
    updated_at: datetime
    customer: str
    customer_id: int | None = Field(description="the customer record of the ticket's site")
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
    source: str = Field(description="alarm, or how a person reported it: phone, fax, email, ...")
    reporter: str
    contact_id: int | None = Field(description="the customer's contact who reported it")
    customer_grade: str = Field(description="the grade in the customer's scheme, as given")
    sla_started_at: datetime | None = Field(
        description="when the deadlines start counting (an upgrade's confirmation); null: opened_at"
    )
    promised_fix_at: datetime | None
    plan: str
    dispatch: dict[str, Any] | None = Field(
        description="on-site dispatch: engineer, sent_at, left_at, arrived_at, left_site_at"
    )
    onsite_due_at: datetime | None = Field(description="when the engineer must be on site")
    onsite_escalation_level: int
    onsite_escalation_at: datetime | None

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
            "title_zh": t.title_zh,
            "opened_at": t.opened_at,
            "ack_due_at": t.ack_due_at,
            "restore_due_at": t.restore_due_at,
            "acknowledged_at": t.acknowledged_at,
            "resolved_at": t.resolved_at,
            "closed_at": t.closed_at,
            "alarm_active": t.alarm_active,
            "updated_at": t.updated_at,
            "customer": t.site.customer,
            "customer_id": t.site.customer_id,
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
            "source": t.source,
            "reporter": t.reporter,
            "contact_id": t.contact_id,
            "customer_grade": t.customer_grade,
            "sla_started_at": t.sla_started_at,
            "promised_fix_at": t.promised_fix_at,
            "plan": t.plan,
            "dispatch": t.dispatch,
            "onsite_due_at": t.onsite_due_at,
            "onsite_escalation_level": t.onsite_escalation_level,
            "onsite_escalation_at": t.onsite_escalation_at,
        }

    @classmethod
    def of(cls, ticket: Ticket) -> TicketOut:
        """From a stored ticket."""
        return cls(**cls.fields_of(ticket))


class TicketHistoryOut(Out):
    """One entry of a ticket's history."""

    at: datetime
    who: str
    what: str
    detail: str
    data: dict[str, Any]


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
            history=[TicketHistoryOut.model_validate(h) for h in ticket.history],
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


class NoteIn(In):
    """An optional note for the history entry."""

    note: str = Text


class AssignIn(In):
    """Who works on the ticket (and who is on duty, if it changed)."""

    assignee: str = Field(min_length=1, max_length=100)
    on_duty: str | None = Field(default=None, max_length=100)


class CommentIn(In):
    """A history entry: what was seen, what was done, time spent on it."""

    seen: str = Text
    done: str = Text
    time_spent_minutes: int = Field(default=0, ge=0, le=100_000)

    @model_validator(mode="after")
    def _not_empty(self) -> CommentIn:
        if not (self.seen.strip() or self.done.strip()):
            raise ValueError("say what was seen or what was done")
        return self


class StatusIn(In):
    """Move the ticket to in_progress (also "back" from pending_customer) or pending_customer."""

    status: Literal["in_progress", "pending_customer"]
    note: str = Text


class ResolveIn(In):
    """The resolution: cause, fix, tested, confirmed by the customer, FAQ entry, time spent."""

    cause: str = Field(min_length=1, max_length=4000)
    fix: str = Field(min_length=1, max_length=4000)
    tested: bool
    confirmed_by_customer: bool
    faq: bool = False
    faq_text: str = Text
    time_spent_minutes: int = Field(default=0, ge=0, le=100_000)
    confirmed_by: str = Field(
        default="", max_length=200, description="who at the customer confirmed the fix"
    )
    confirmed_at: Instant | None = Field(default=None, description="when they confirmed it")
    customer_opinion: str = Field(default="", max_length=4000, description="what they said")

    @model_validator(mode="after")
    def _faq_needs_text(self) -> ResolveIn:
        if self.faq and not self.faq_text.strip():
            raise ValueError("faq_text is required when faq is true")
        return self


class ReopenIn(In):
    """Why the ticket is reopened."""

    reason: str = Field(min_length=1, max_length=4000)


Grade = Annotated[
    int | str,
    Field(
        description='in the customer\'s grade scheme (its SLA policy), e.g. 1, "A", '
        '"C-1"; the default policy takes 1..5, A-C and C-1..C-3'
    ),
]


class ManualTicketIn(In):
    """A fault reported by a person: how, by whom, where, the grade the customer's
    representative gave, what they see."""

    source: Literal["phone", "fax", "email", "web", "onsite"]
    site_id: int = Field(ge=1, le=2_147_483_647)
    grade: Grade
    symptom: str = Field(min_length=1, max_length=4000)
    reporter: str = Field(default="", max_length=200)
    contact_id: int | None = Field(default=None, ge=1, le=2_147_483_647)
    customer_id: int | None = Field(
        default=None, ge=1, le=2_147_483_647, description="checked against the site's customer"
    )
    device_id: str = Field(default="", max_length=64)
    title: str = Field(default="", max_length=300, description="default: the symptom's first line")

    @field_validator("grade")
    @classmethod
    def _grade_text(cls, value: int | str) -> int | str:
        if isinstance(value, str) and not 1 <= len(value.strip()) <= 20:
            raise ValueError("a grade name has 1 to 20 characters")
        return value


class RegradeIn(In):
    """A new grade (in the customer's scheme) and why; an upgrade counts from `confirmed_at`."""

    grade: Grade
    reason: str = Field(min_length=1, max_length=4000)
    confirmed_at: Instant | None = Field(
        default=None, description="when the new grade was confirmed; default now"
    )


class EscalateIn(In):
    """Why the customer asks for escalation."""

    reason: str = Field(min_length=1, max_length=4000)


class DispatchIn(In):
    """The on-site dispatch: who is sent and the steps so far (each recorded once given;
    sent_at defaults to now on the first call)."""

    engineer: str | None = Field(default=None, min_length=1, max_length=100)
    sent_at: Instant | None = None
    left_at: Instant | None = Field(default=None, description="left for the site")
    arrived_at: Instant | None = None
    left_site_at: Instant | None = None


class PlanIn(In):
    """The fix date promised to the customer, and the plan."""

    promised_fix_at: Instant | None = None
    plan: str = Text


class ConfirmationIn(In):
    """The customer's confirmation of the fix: who, when (default now), their opinion."""

    confirmed_by: str = Field(min_length=1, max_length=200)
    confirmed_at: Instant | None = None
    opinion: str = Text
