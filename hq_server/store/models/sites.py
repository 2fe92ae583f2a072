"""Tables of sites and their agents: sites, enrolled agents, one-time enrollment tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hq_server.store.models.base import Base


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
    # Added by revision 0011: the customer record (hq_server.customers); `customer` keeps its name.
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id"), index=True, comment="the customer whose contract covers it"
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
