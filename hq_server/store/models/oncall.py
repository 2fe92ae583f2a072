"""Tables of on-call duty and paging: teams, their rotations and overrides, engineers' contact
methods, the paging policy per grade, the paging state of tickets, and digest items."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from hq_server.store.models.base import Base, BigId


class OncallTeam(Base):
    """A team on call for some sites: named sites, a customer's sites, or (neither) the rest."""

    __tablename__ = "oncall_teams"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    timezone: Mapped[str] = mapped_column(String(64), comment="handovers are local times here")
    sites: Mapped[dict[str, Any]] = mapped_column(
        JSON, comment='{"names": [...]}: the sites the team covers by name (a region)'
    )
    customer: Mapped[str] = mapped_column(
        String(200), comment="covers the sites of this customer (sites.customer); '' none"
    )
    service_manager: Mapped[str] = mapped_column(
        String(64), comment="user name told when a page cannot be delivered"
    )
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class OncallRotation(Base):
    """The turns of one role (primary, backup) of a team."""

    __tablename__ = "oncall_rotations"
    __table_args__ = (
        UniqueConstraint("team_id", "role"),
        CheckConstraint("role IN ('primary', 'backup')", name="role_known"),
        CheckConstraint("period IN ('daily', 'weekly')", name="period_known"),
        CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("oncall_teams.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(10))
    period: Mapped[str] = mapped_column(String(10))
    handover: Mapped[str] = mapped_column(String(5), comment="HH:MM local time of the team")
    weekday: Mapped[int] = mapped_column(SmallInteger, comment="weekly: 0 = Monday")
    starts_on: Mapped[date] = mapped_column(Date)
    members: Mapped[dict[str, Any]] = mapped_column(JSON, comment='{"members": [user names]}')
    holidays: Mapped[dict[str, Any]] = mapped_column(JSON, comment='{"dates": ["2026-10-01"]}')
    holiday_cover: Mapped[str] = mapped_column(String(64), comment="on duty on holidays; '' none")
    updated_at: Mapped[datetime]


class OncallOverride(Base):
    """Someone on duty for a while in place of the rotation ("I cover Tuesday night")."""

    __tablename__ = "oncall_overrides"
    __table_args__ = (
        CheckConstraint("role IN ('primary', 'backup')", name="role_known"),
        Index(None, "team_id", "ends_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("oncall_teams.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(10))
    username: Mapped[str] = mapped_column(String(64))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]


class EngineerContact(Base):
    """How an HQ user is paged: channels in order (sealed: they hold secrets) and a language."""

    __tablename__ = "engineer_contacts"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    language: Mapped[str] = mapped_column(String(8))
    channels_sealed: Mapped[str] = mapped_column(
        Text, comment="the channels' settings as JSON, sealed with HQ's key (hold secrets)"
    )
    channels_shown: Mapped[dict[str, Any]] = mapped_column(
        JSON, comment='{"channels": [{"kind", "target"}]}: what may be shown, no secrets'
    )
    failures: Mapped[dict[str, Any]] = mapped_column(
        JSON, comment='{"0": n, ...}: failed attempts in a row per channel index'
    )
    last_error: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]


class PagingPolicy(Base):
    """Who is paged for a ticket of one grade when it opens and when its grade rises."""

    __tablename__ = "paging_policies"
    __table_args__ = (CheckConstraint("grade BETWEEN 1 AND 5", name="grade_range"),)

    grade: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    on_open: Mapped[dict[str, Any]] = mapped_column(
        JSON, comment='{"who": ["on_duty", "backup", "service_manager"]}'
    )
    on_raise: Mapped[dict[str, Any]] = mapped_column(JSON, comment='{"who": [...]}')
    repeat_minutes: Mapped[int | None] = mapped_column(
        Integer, comment="page again every so many minutes until acknowledged; null: once"
    )
    digest: Mapped[bool] = mapped_column(Boolean, comment="a daily digest instead of pages")
    channels: Mapped[dict[str, Any]] = mapped_column(
        JSON, comment='{"kinds": [...]}: the contact channels used; empty: all, in order'
    )
    language: Mapped[str] = mapped_column(String(8), comment="'' the contact's own")
    updated_at: Mapped[datetime]


class TicketPaging(Base):
    """The paging of one ticket: whom it pages and when it pages them again."""

    __tablename__ = "ticket_paging"

    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True
    )
    team_id: Mapped[int | None] = mapped_column(ForeignKey("oncall_teams.id", ondelete="SET NULL"))
    recipients: Mapped[dict[str, Any]] = mapped_column(JSON, comment='{"users": [...]}')
    repeat_minutes: Mapped[int | None] = mapped_column(Integer)
    next_repeat_at: Mapped[datetime | None] = mapped_column(index=True)
    repeats: Mapped[int] = mapped_column(Integer)


class PageDigestItem(Base):
    """A ticket left for a contact's next digest (rate limit reached, or a daily-digest grade)."""

    __tablename__ = "page_digest_items"
    __table_args__ = (
        UniqueConstraint("username", "ticket_id", "reason"),
        CheckConstraint("reason IN ('rate_limit', 'daily')", name="reason_known"),
        Index(None, "sent_at", "due_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(10))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("oncall_teams.id", ondelete="SET NULL"))
    due_at: Mapped[datetime]
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
