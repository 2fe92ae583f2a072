"""Tables of HQ's after-sales process: users and audit, calendars, escalation, outbox, windows.

Imported by hq_server.models (so one metadata holds every table); revision 0002 creates them.
"""

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
)
from sqlalchemy.orm import Mapped, mapped_column

from hq_server.domain import Role
from hq_server.models import Base, BigId


class User(Base):
    """A person who logs in: a role and a scrypt password hash (see hq_server.passwords)."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(
            "role IN ({})".format(", ".join(f"'{r}'" for r in Role)), name="role_known"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(300))
    disabled: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime]
    # Added by revision 0008: one user per name whatever its case.
    username_key: Mapped[str] = mapped_column(
        String(64),
        unique=True,
        comment="the user name in lower case: names are unique regardless of case",
    )


class AuditEntry(Base):
    """One mutating API call: who, what, when, from where, with what result (append-only)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "at"), Index(None, "actor", "at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(500))
    summary: Mapped[str] = mapped_column(String(500))
    target_ids: Mapped[dict[str, Any]] = mapped_column(JSON)
    client: Mapped[str] = mapped_column(String(100))
    status: Mapped[int] = mapped_column(SmallInteger)


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


class Notification(Base):
    """The outbox of webhook and e-mail notifications, sent and retried by the scheduler."""

    __tablename__ = "notifications"
    __table_args__ = (
        CheckConstraint("channel IN ('webhook', 'email')", name="channel_known"),
        CheckConstraint("status IN ('pending', 'sent', 'failed')", name="status_known"),
        Index(None, "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    channel: Mapped[str] = mapped_column(String(10))
    target: Mapped[str] = mapped_column(String(500))
    # Never the key itself (a dump of the outbox must not hand out signing keys): where it is
    # looked up when sending, see hq_server.notify.
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


class TicketAlarmLink(Base):
    """An alarm grouped under another fingerprint's ticket (a site-wide outage)."""

    __tablename__ = "ticket_alarm_links"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), primary_key=True)
    alarm_id: Mapped[int] = mapped_column(ForeignKey("alarms.id"), primary_key=True)
    linked_at: Mapped[datetime]


class HqFact(Base):
    """A fact HQ keeps about its own database, e.g. which key seals its webhook keys."""

    __tablename__ = "hq_facts"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime]
