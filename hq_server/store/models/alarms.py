"""Tables of alarms: every event as an agent sent it, and the current state of each alarm."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hq_server.store.models.base import Base, BigId
from hq_server.store.models.sites import Site


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
        # Added by revision 0009: the console's overview counts active alarms per site and
        # grade from this index alone.
        Index(None, "active", "site_id", "grade"),
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
    # Added by revision 0010.
    title_zh: Mapped[str] = mapped_column(
        String(200), server_default=text("''"), comment="the title in Simplified Chinese, or ''"
    )

    site: Mapped[Site] = relationship(lazy="joined", innerjoin=True)
