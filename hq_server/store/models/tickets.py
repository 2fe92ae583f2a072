"""Tables of fault tickets and their after-sales process: tickets, their history and numbers,
alarms grouped under them, SLA calendars, escalation chains, maintenance windows, the
notification outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hq_server.core.domain import DONE_STATUSES, TicketStatus
from hq_server.store.models.base import Base, BigId
from hq_server.store.models.sites import Site

# The predicate of the "one open ticket per fingerprint" partial unique index.
OPEN_TICKET_PREDICATE = "status NOT IN ({})".format(", ".join(f"'{s}'" for s in DONE_STATUSES))


class Ticket(Base):
    """A fault ticket with its response deadlines; at most one open per fingerprint (DB rule)."""

    __tablename__ = "tickets"
    __table_args__ = (
        CheckConstraint(
            "status IN ({})".format(", ".join(f"'{s}'" for s in TicketStatus)),
            name="status_known",
        ),
        CheckConstraint("grade BETWEEN 1 AND 5", name="grade_range"),
        Index(
            "uq_tickets_open_fingerprint",
            "site_id",
            "fault_key",
            unique=True,
            sqlite_where=text(OPEN_TICKET_PREDICATE),
            postgresql_where=text(OPEN_TICKET_PREDICATE),
        ),
        Index(None, "status", "opened_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    alarm_id: Mapped[int | None] = mapped_column(ForeignKey("alarms.id"), index=True)
    fault_key: Mapped[str] = mapped_column(String(300))
    device_id: Mapped[str] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(String(64))
    component: Mapped[str] = mapped_column(String(128))
    grade: Mapped[int] = mapped_column(SmallInteger)
    status: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(300))
    opened_at: Mapped[datetime]
    ack_due_at: Mapped[datetime | None]
    restore_due_at: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    alarm_active: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime]
    # Added by revision 0002 (ticket work, SLA pauses, escalation snapshot).
    symptom: Mapped[str] = mapped_column(Text, default="")
    on_duty: Mapped[str] = mapped_column(String(100), default="")
    assignee: Mapped[str] = mapped_column(String(100), default="")
    resolution: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    time_spent_minutes: Mapped[int] = mapped_column(Integer, server_default="0")
    paused_since: Mapped[datetime | None]
    pauses: Mapped[dict[str, Any] | None] = mapped_column(
        JSON, comment='{"intervals": [[start, end], ...]} spent pending the customer'
    )
    escalation: Mapped[dict[str, Any] | None] = mapped_column(
        JSON, comment="the escalation chain copied when the ticket opened"
    )
    # Added by revision 0005: the next step of each escalation (hq_server.tickets.escalation).
    ack_escalation_level: Mapped[int] = mapped_column(
        SmallInteger, server_default="0", comment="ack escalation levels reached so far"
    )
    ack_escalation_at: Mapped[datetime | None] = mapped_column(
        index=True, comment="when the next ack escalation level is due; null: not running"
    )
    restore_escalation_level: Mapped[int] = mapped_column(
        SmallInteger, server_default="0", comment="restore escalation levels reached so far"
    )
    restore_escalation_at: Mapped[datetime | None] = mapped_column(
        index=True, comment="when the next restore escalation level is due; null: not running"
    )
    # Added by revision 0007: folded in Python (hq_server.tickets.records.fold), so one LIKE finds
    # any case of any script on both databases (SQLite's lower() folds ASCII only).
    title_folded: Mapped[str] = mapped_column(
        Text,
        server_default=text("''"),
        comment="the title case-folded (NFKC, casefold), for search",
    )
    # Added by revision 0010.
    title_zh: Mapped[str] = mapped_column(
        String(300), server_default=text("''"), comment="the title in Simplified Chinese, or ''"
    )

    # Added by revision 0011: the service desk's records (manual tickets, regrades, dispatch,
    # the promised fix). Manual tickets: how they came in, who reported them, the grade as the
    # customer's representative gave it.
    source: Mapped[str] = mapped_column(
        String(10), server_default="alarm", comment="alarm, phone, fax, email, web or onsite"
    )
    reporter: Mapped[str] = mapped_column(String(200), server_default=text("''"))
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id"), comment="the customer's contact who reported it"
    )
    customer_grade: Mapped[str] = mapped_column(
        String(20),
        server_default=text("''"),
        comment="the grade in the customer's scheme, as given",
    )
    sla_started_at: Mapped[datetime | None] = mapped_column(
        comment="when the deadlines start counting: an upgrade's confirmation; null: opened_at"
    )
    promised_fix_at: Mapped[datetime | None]
    plan: Mapped[str] = mapped_column(Text, server_default=text("''"))
    dispatch: Mapped[dict[str, Any] | None] = mapped_column(
        JSON,
        comment='{"engineer": ..., "sent_at", "left_at", "arrived_at", "left_site_at": ISO}',
    )
    onsite_due_at: Mapped[datetime | None] = mapped_column(
        comment="when the dispatched engineer must be on site"
    )
    onsite_escalation_level: Mapped[int] = mapped_column(
        SmallInteger, server_default="0", comment="on-site escalation levels reached so far"
    )
    onsite_escalation_at: Mapped[datetime | None] = mapped_column(
        index=True, comment="when the next on-site escalation level is due; null: not running"
    )

    site: Mapped[Site] = relationship(lazy="joined", innerjoin=True)
    history: Mapped[list[TicketEvent]] = relationship(
        back_populates="ticket", order_by="TicketEvent.id", lazy="raise"
    )


class TicketEvent(Base):
    """One entry of a ticket's history: when, who (system, agent:N, a user), what."""

    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    at: Mapped[datetime]
    who: Mapped[str] = mapped_column(String(100))
    what: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)

    ticket: Mapped[Ticket] = relationship(back_populates="history")


class TicketCounter(Base):
    """The last ticket number handed out per year (row-locked while a ticket is opened)."""

    __tablename__ = "ticket_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_number: Mapped[int] = mapped_column(Integer)


class TicketAlarmLink(Base):
    """An alarm grouped under another fingerprint's ticket (a site-wide outage)."""

    __tablename__ = "ticket_alarm_links"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), primary_key=True)
    alarm_id: Mapped[int] = mapped_column(ForeignKey("alarms.id"), primary_key=True)
    linked_at: Mapped[datetime]


class Calendar(Base):
    """A working-time calendar: timezone, weekly hours and holidays, or explicitly 24x7."""

    __tablename__ = "calendars"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    timezone: Mapped[str] = mapped_column(String(64))
    always_open: Mapped[bool] = mapped_column(Boolean, comment="24x7: every minute counts")
    hours: Mapped[dict[str, Any]] = mapped_column(
        JSON, comment='{"mon": [["08:30", "17:30"]], ...}'
    )
    holidays: Mapped[dict[str, Any]] = mapped_column(JSON, comment='{"dates": ["2026-10-01"]}')
    updated_at: Mapped[datetime]


class EscalationChain(Base):
    """Who is told, level by level, when a ticket's deadline passes; per customer and grade."""

    __tablename__ = "escalation_chains"
    __table_args__ = (
        UniqueConstraint("customer", "grade"),
        CheckConstraint("grade BETWEEN 0 AND 5", name="grade_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    customer: Mapped[str] = mapped_column(String(200), comment="'' matches every customer")
    grade: Mapped[int] = mapped_column(SmallInteger, comment="0 matches every grade")
    levels: Mapped[dict[str, Any]] = mapped_column(JSON, comment='{"levels": [...]}')
    updated_at: Mapped[datetime]


class MaintenanceWindow(Base):
    """A planned window: matching alarms are recorded but open no ticket until it ends."""

    __tablename__ = "maintenance_windows"
    __table_args__ = (Index(None, "starts_at", "ends_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"))
    device_id: Mapped[str | None] = mapped_column(String(64))
    code: Mapped[str | None] = mapped_column(String(64))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    author: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text)
    approval_ref: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]
    released_at: Mapped[datetime | None] = mapped_column(
        comment="when the scheduler opened tickets for alarms held by the window"
    )


class Notification(Base):
    """The outbox of notifications, sent and retried by the scheduler: webhooks and e-mails of
    escalation chains, pages to engineers through their contact channels (channel `page`)."""

    __tablename__ = "notifications"
    __table_args__ = (
        CheckConstraint("channel IN ('webhook', 'email', 'page')", name="channel_known"),
        CheckConstraint("status IN ('pending', 'sent', 'failed')", name="status_known"),
        Index(None, "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    channel: Mapped[str] = mapped_column(String(10))
    target: Mapped[str] = mapped_column(String(500))
    # Never the key itself (a dump of the outbox must not hand out signing keys): where it is
    # looked up when sending, see hq_server.tickets.notify.
    secret_ref: Mapped[str | None] = mapped_column(
        String(100),
        comment="where the webhook's HMAC key is looked up when sending: contact:<level>:<index> "
        "of the ticket's escalation chain, or url (settings.webhook_secrets); never the key itself",
    )
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(10))
    last_error: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    # Added by revision 0012: due notifications are claimed most urgent first.
    priority: Mapped[int] = mapped_column(
        SmallInteger,
        server_default="3",
        comment="claimed lowest first: the ticket's grade (1 most urgent)",
    )
