"""HQ's tables (SQLAlchemy 2 typed declarative). The schema is created only by migrations.

A change here needs a new revision in hq_server/migrations/versions; tests/hq/test_migrations.py
fails while the migrated schema and these models differ.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from hq_server.domain import DONE_STATUSES, Role, TicketStatus

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Large, append-mostly tables get 64-bit keys on PostgreSQL; SQLite needs INTEGER for rowid keys.
BigId = BigInteger().with_variant(Integer(), "sqlite")

# The predicate of the "one open ticket per fingerprint" partial unique index.
OPEN_TICKET_PREDICATE = "status NOT IN ({})".format(", ".join(f"'{s}'" for s in DONE_STATUSES))


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes; store UTC (naive on SQLite, which has no zone type)."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Read back as an aware UTC datetime."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    # On SQLite, one conversion each way straight to and from the stored text (the format of
    # SQLAlchemy's SQLite DATETIME, "YYYY-MM-DD HH:MM:SS.ffffff"), instead of ours plus the
    # dialect's regular-expression parsing: ingest converts tens of thousands per second.

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """SQLite: aware datetime -> UTC text; elsewhere the two-step default."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def to_text(value: datetime | None) -> str | None:
            if value is None:
                return None
            zone = value.tzinfo
            if zone is not UTC:  # most values are UTC already: no conversion
                if zone is None:
                    raise ValueError("naive datetime given to a UTCDateTime column")
                value = value.astimezone(UTC)
            return value.replace(tzinfo=None).isoformat(" ", "microseconds")

        return to_text

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        """SQLite: stored text -> aware UTC datetime; elsewhere the two-step default."""
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        def from_text(value: str | None) -> datetime | None:
            if value is None:
                return None
            parsed = datetime.fromisoformat(value)
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)

        return from_text


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so migrations name constraints predictably."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class Site(Base):
    """A station (transmitter site, PBX room) of a customer; agents enroll into one."""

    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    customer: Mapped[str] = mapped_column(String(200), default="")
    contact: Mapped[str] = mapped_column(String(200), default="")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    created_at: Mapped[datetime]
    calendar_id: Mapped[int | None] = mapped_column(
        ForeignKey("calendars.id"), comment="business hours; none: Mon-Fri 08:30-17:30 local"
    )


class Agent(Base):
    """An enrolled agent; its bearer token is stored as a sha256 hash only."""

    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    name: Mapped[str] = mapped_column(String(253), comment="hostname reported at enrollment")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    version: Mapped[str] = mapped_column(String(32))
    enrolled_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    last_seen_at: Mapped[datetime | None]
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0, comment="highest seq stored")
    reported_seq: Mapped[int] = mapped_column(
        BigInteger, default=0, comment="last_seq the agent reported in its heartbeat"
    )
    outbox_depth: Mapped[int] = mapped_column(Integer, default=0)
    dropped_events: Mapped[int] = mapped_column(BigInteger, default=0)
    device_states: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Added by revision 0008: revocation, replacement, the last heartbeat's figures.
    revoked_by: Mapped[str | None] = mapped_column(String(100))
    replaced_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id"), comment="the agent that re-enrolled in this one's place"
    )
    health: Mapped[dict[str, Any] | None] = mapped_column(
        JSON, comment="the last heartbeat's figures"
    )
    health_at: Mapped[datetime | None] = mapped_column(
        comment="when HQ received the last heartbeat"
    )

    site: Mapped[Site] = relationship(lazy="joined", innerjoin=True)


class EnrollmentToken(Base):
    """A one-time token an admin creates for a site; an agent trades it for its own token."""

    __tablename__ = "enrollment_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    # Added by revision 0008.
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(100))
    replaces_agent_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id"), comment="re-enrollment: the agent its use retires"
    )


class ApiToken(Base):
    """A bearer token for people and scripts: standalone with a role, or a user's."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        CheckConstraint(
            "role IN ({})".format(", ".join(f"'{r}'" for r in Role)), name="role_known"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    expires_at: Mapped[datetime]  # added by revision 0008


class Event(Base):
    """A fault event exactly as an agent sent it, stored once (idempotent on event_id)."""

    __tablename__ = "events"
    __table_args__ = (
        CheckConstraint("kind IN ('raise', 'update', 'clear')", name="kind_known"),
        CheckConstraint("grade BETWEEN 1 AND 5", name="grade_range"),
        Index(None, "site_id", "fault_key", "observed_at"),
        Index(None, "agent_id", "seq"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    seq: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(8))
    fault_key: Mapped[str] = mapped_column(String(300))
    device_id: Mapped[str] = mapped_column(String(64))
    device_class: Mapped[str] = mapped_column(String(32))
    code: Mapped[str] = mapped_column(String(64))
    component: Mapped[str] = mapped_column(String(128))
    grade: Mapped[int] = mapped_column(SmallInteger)
    title: Mapped[str] = mapped_column(String(200))
    detail: Mapped[str] = mapped_column(Text)
    observed_at: Mapped[datetime]
    received_at: Mapped[datetime]
    values: Mapped[dict[str, Any]]
    applied: Mapped[bool] = mapped_column(
        Boolean, comment="true when the event changed the state of its alarm"
    )


class Alarm(Base):
    """The current state of one fault condition at a site; history is in `events`.

    The fingerprint is (site, device, code, component) = (site_id, fault_key), never the grade.
    """

    __tablename__ = "alarms"
    __table_args__ = (
        UniqueConstraint("site_id", "fault_key"),
        CheckConstraint("grade BETWEEN 1 AND 5", name="grade_range"),
        Index(None, "active", "last_change_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    fault_key: Mapped[str] = mapped_column(String(300))
    device_id: Mapped[str] = mapped_column(String(64))
    device_class: Mapped[str] = mapped_column(String(32))
    code: Mapped[str] = mapped_column(String(64))
    component: Mapped[str] = mapped_column(String(128))
    grade: Mapped[int] = mapped_column(SmallInteger)
    title: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean)
    first_raised_at: Mapped[datetime]
    last_change_at: Mapped[datetime] = mapped_column(
        comment="observed_at of the last applied event"
    )
    cleared_at: Mapped[datetime | None]
    raise_count: Mapped[int] = mapped_column(Integer, default=1)
    last_agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    last_event_seq: Mapped[int] = mapped_column(BigInteger)
    flapping: Mapped[bool] = mapped_column(Boolean, server_default=false())
    state_log: Mapped[str] = mapped_column(
        String(32), default="", comment="last states, 1=raised 0=cleared, newest last"
    )

    site: Mapped[Site] = relationship(lazy="joined", innerjoin=True)


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
    # Added by revision 0005: the next step of each escalation (hq_server.escalation).
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
    # Added by revision 0007: folded in Python (hq_server.tickets.fold), so one LIKE finds any
    # case of any script on both databases (SQLite's lower() folds ASCII only).
    title_folded: Mapped[str] = mapped_column(
        Text,
        server_default=text("''"),
        comment="the title case-folded (NFKC, casefold), for search",
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


# Tables in their own modules, imported so that one metadata holds every table.
import hq_server.models_ops  # noqa: E402, F401
from hq_server import models_jobs  # noqa: E402, F401
