"""On-call teams, rotations, overrides, who is on duty, gaps; contacts; paging policies."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field

from hq_server.api.schemas.common import In, Instant, Out

HHMM = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", examples=["09:00"])
RoleName = Literal["primary", "backup"]
Who = Literal["on_duty", "backup", "service_manager"]
UserName = Field(min_length=1, max_length=64)


class TeamIn(In):
    """A team: the sites it covers by name (a region) or a customer's sites; no sites and no
    customer: every site no other team covers."""

    name: str = Field(min_length=1, max_length=100)
    timezone: str = Field(min_length=1, max_length=64, examples=["Asia/Shanghai"])
    sites: list[str] = Field(default_factory=list, max_length=2000)
    customer: str = Field(default="", max_length=200)
    service_manager: str = Field(default="", max_length=64)


class RotationIn(In):
    """Members taking turns, handing over at a local time daily or weekly on a weekday."""

    period: Literal["daily", "weekly"] = "weekly"
    handover: str = HHMM
    weekday: int = Field(default=0, ge=0, le=6, description="weekly: 0 = Monday")
    starts_on: date
    members: list[str] = Field(min_length=1, max_length=100)
    holidays: list[date] = Field(default_factory=list, max_length=1000)
    holiday_cover: str = Field(default="", max_length=64)


class OverrideIn(In):
    """`username` on duty from `starts_at` to `ends_at` in place of the rota."""

    role: RoleName = "primary"
    username: str = UserName
    starts_at: Instant
    ends_at: Instant
    reason: str = Field(default="", max_length=500)


class RotationOut(Out):
    """A stored rotation."""

    role: str
    period: str
    handover: str
    weekday: int
    starts_on: date
    members: list[str]
    holidays: list[date]
    holiday_cover: str


class OverrideOut(Out):
    """A stored override."""

    id: int
    role: str
    username: str
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str


class Gap(Out):
    """A time with nobody on duty."""

    starts_at: datetime
    ends_at: datetime


class DutyOut(Out):
    """Who is on duty for a role now, and who takes over next and when."""

    role: str
    now: str | None
    next: str | None
    next_at: datetime | None


class TeamOut(Out):
    """A team with its rotations, current and coming overrides, duty now and gaps ahead."""

    id: int
    name: str
    timezone: str
    sites: list[str]
    customer: str
    service_manager: str
    rotations: list[RotationOut]
    overrides: list[OverrideOut]
    duty: list[DutyOut]
    gaps: list[Gap] = Field(description="times of the next 14 days with nobody on duty")
    updated_at: datetime


class TeamDutyOut(Out):
    """Who of a team is on duty for a role now, and who next (the overview's panel)."""

    team_id: int
    team: str
    role: str
    now: str | None
    next: str | None
    next_at: datetime | None


class TeamGapsOut(Out):
    """The gaps of one team (for the overview)."""

    team_id: int
    team: str
    gaps: list[Gap]


class ContactIn(In):
    """How a user is paged: channels tried in order, and the language of the pages."""

    language: Literal["zh-CN", "en"] = "zh-CN"
    channels: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=10,
        description="each {kind: email|webhook|dingtalk|wecom|feishu|sms, ...its settings}; "
        "see docs/channels.md",
    )


class ChannelShown(Out):
    """A contact channel as shown: no secrets."""

    kind: str
    target: str
    failures_in_a_row: int
    failing: bool


class ContactOut(Out):
    """A user's contact methods; unreachable while a channel keeps failing."""

    user_id: int
    username: str
    language: str
    channels: list[ChannelShown]
    unreachable: bool
    last_error: str
    updated_at: datetime


class PolicyIn(In):
    """Who is paged for tickets of a grade, and how."""

    on_open: list[Who] = Field(default_factory=list, max_length=3)
    on_raise: list[Who] = Field(default_factory=list, max_length=3)
    repeat_minutes: int | None = Field(default=None, ge=1, le=1440)
    digest: bool = False
    channels: list[str] = Field(
        default_factory=list,
        max_length=10,
        description="the kinds of contact channels used, in the contact's order; empty: all",
    )
    all_channels: bool = Field(
        default=False,
        description="send on every channel at once instead of falling back channel by channel",
    )
    language: Literal["", "zh-CN", "en"] = ""


class PolicyOut(Out):
    """A stored paging policy."""

    grade: int
    on_open: list[str]
    on_raise: list[str]
    repeat_minutes: int | None
    digest: bool
    channels: list[str]
    all_channels: bool
    language: str
    updated_at: datetime


class NotificationOut(Out):
    """A notification of a ticket: a page to an engineer, or an escalation e-mail or webhook."""

    id: int
    channel: str
    target: str
    kind: str | None = Field(description="a page: opened, repeat, regraded, escalated, ...")
    status: str
    attempts: int
    created_at: datetime
    sent_at: datetime | None
    last_error: str
