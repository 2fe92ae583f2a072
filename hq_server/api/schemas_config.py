"""Request and response models of HQ configuration: calendars, escalation chains, windows."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    model_validator,
)

from hq_server.core.errors import InvalidInput
from hq_server.store.models import Calendar, EscalationChain, MaintenanceWindow
from hq_server.tickets.sla import BusinessCalendar

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
HHMM = Field(pattern=r"^([01]\d|2[0-4]):[0-5]\d$")
EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


def _plausible(value: datetime) -> datetime:
    # Far-off years overflow when converted to UTC or stored; nothing real needs them.
    if not 1970 <= value.year <= 2999:
        raise ValueError("instant must be between the years 1970 and 2999")
    return value


Instant = Annotated[AwareDatetime, AfterValidator(_plausible)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class Interval(_In):
    """Open from `start` to `end` (local time, HH:MM, end up to 24:00)."""

    start: str = HHMM
    end: str = HHMM


class CalendarIn(_In):
    """A working-time calendar: 24x7, or weekly open hours and holidays in a timezone."""

    name: str = Field(min_length=1, max_length=100)
    timezone: str = Field(min_length=1, max_length=64, examples=["Asia/Shanghai"])
    always_open: bool = False
    hours: dict[Weekday, list[Interval]] = Field(default_factory=dict, max_length=7)
    holidays: list[date] = Field(default_factory=list, max_length=1000)

    @model_validator(mode="after")
    def _valid(self) -> CalendarIn:
        hours = {} if self.always_open and not self.hours else self.stored_hours()
        try:
            if self.always_open:
                BusinessCalendar.build(self.timezone, {"mon": [("00:00", "24:00")]})
            else:
                BusinessCalendar.build(self.timezone, hours, self.holidays)
        except InvalidInput as exc:
            raise ValueError(str(exc)) from None
        return self

    def stored_hours(self) -> dict[str, Any]:
        """The hours as stored: {"mon": [["08:30", "17:30"]], ...}."""
        return {day: [[i.start, i.end] for i in spans] for day, spans in self.hours.items()}


class CalendarOut(_Out):
    """A stored calendar."""

    id: int
    name: str
    timezone: str
    always_open: bool
    hours: dict[str, list[list[str]]]
    holidays: list[date]
    updated_at: datetime

    @classmethod
    def of(cls, row: Calendar) -> CalendarOut:
        """From a stored calendar."""
        return cls(
            id=row.id,
            name=row.name,
            timezone=row.timezone,
            always_open=row.always_open,
            hours=row.hours,
            holidays=[date.fromisoformat(d) for d in row.holidays.get("dates", [])],
            updated_at=row.updated_at,
        )


class SiteCalendarIn(_In):
    """The calendar a site works on; null for the default Mon-Fri 08:30-17:30."""

    calendar_id: int | None = Field(ge=1, le=2_147_483_647)


class ContactIn(_In):
    """Someone to notify: at least one of an e-mail address and a webhook."""

    name: str = Field(min_length=1, max_length=100)
    email: str | None = Field(default=None, max_length=254, pattern=EMAIL)
    webhook_url: HttpUrl | None = None
    webhook_secret: str | None = Field(
        default=None,
        min_length=8,
        max_length=200,
        description="HMAC-SHA256 key of the webhook. Never shown again. When a chain is "
        "replaced (PUT), a contact that leaves it out keeps the key the chain holds for the "
        "same contact (same name and webhook_url); null removes it.",
    )

    @model_validator(mode="after")
    def _has_a_method(self) -> ContactIn:
        if self.email is None and self.webhook_url is None:
            raise ValueError(f"contact {self.name!r} needs an email or a webhook_url")
        return self


class LevelIn(_In):
    """One escalation level: who is told, and after how long (since the previous level)."""

    name: str = Field(min_length=1, max_length=100, examples=["department manager"])
    delay_minutes: int = Field(ge=0, le=525_600)
    delay_clock: Literal["working", "wall"] = Field(
        default="working", description="Count the delay in working time or wall-clock time"
    )
    contacts: list[ContactIn] = Field(min_length=1, max_length=20)


class ChainIn(_In):
    """An escalation chain for a customer ('' = any) and grade (0 = any)."""

    name: str = Field(min_length=1, max_length=100)
    customer: str = Field(default="", max_length=200)
    grade: int = Field(default=0, ge=0, le=5)
    levels: list[LevelIn] = Field(min_length=1, max_length=10)

    def stored_levels(self) -> dict[str, Any]:
        """The levels as stored (and copied onto tickets)."""
        return {"levels": [level.model_dump(mode="json") for level in self.levels]}

    def keys_left_out(self) -> list[tuple[int, int]]:
        """(level, contact) positions of webhooks whose key the request left out (not null)."""
        return [
            (i, j)
            for i, level in enumerate(self.levels)
            for j, contact in enumerate(level.contacts)
            if contact.webhook_url is not None and "webhook_secret" not in contact.model_fields_set
        ]


class ContactOut(_Out):
    """A contact, without the webhook secret."""

    name: str
    email: str | None
    webhook_url: str | None
    has_webhook_secret: bool


class LevelOut(_Out):
    """One escalation level."""

    name: str
    delay_minutes: int
    delay_clock: str
    contacts: list[ContactOut]


class ChainOut(_Out):
    """A stored escalation chain."""

    id: int
    name: str
    customer: str
    grade: int
    levels: list[LevelOut]
    updated_at: datetime

    @classmethod
    def of(cls, row: EscalationChain) -> ChainOut:
        """From a stored chain."""
        levels = [
            LevelOut(
                name=level["name"],
                delay_minutes=level["delay_minutes"],
                delay_clock=level["delay_clock"],
                contacts=[
                    ContactOut(
                        name=c["name"],
                        email=c.get("email"),
                        webhook_url=c.get("webhook_url"),
                        has_webhook_secret=bool(c.get("webhook_secret")),
                    )
                    for c in level["contacts"]
                ],
            )
            for level in row.levels["levels"]
        ]
        return cls(
            id=row.id,
            name=row.name,
            customer=row.customer,
            grade=row.grade,
            levels=levels,
            updated_at=row.updated_at,
        )


class WindowIn(_In):
    """A maintenance window; unset matchers match everything."""

    site_id: int | None = Field(default=None, ge=1, le=2_147_483_647)
    device_id: str | None = Field(default=None, min_length=1, max_length=64)
    code: str | None = Field(default=None, min_length=1, max_length=64)
    starts_at: Instant
    ends_at: Instant
    reason: str = Field(min_length=1, max_length=4000)
    approval_ref: str = Field(default="", max_length=100, description="Customer approval")

    @model_validator(mode="after")
    def _ends_after_start(self) -> WindowIn:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class WindowOut(_Out):
    """A stored maintenance window."""

    id: int
    site_id: int | None
    device_id: str | None
    code: str | None
    starts_at: datetime
    ends_at: datetime
    author: str
    reason: str
    approval_ref: str
    created_at: datetime
    released_at: datetime | None

    @classmethod
    def of(cls, row: MaintenanceWindow) -> WindowOut:
        """From a stored window."""
        return cls(
            id=row.id,
            site_id=row.site_id,
            device_id=row.device_id,
            code=row.code,
            starts_at=row.starts_at,
            ends_at=row.ends_at,
            author=row.author,
            reason=row.reason,
            approval_ref=row.approval_ref,
            created_at=row.created_at,
            released_at=row.released_at,
        )
