"""Working-time calendars and the calendar of a site."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from hq_server.api.schemas.common import In, Out
from hq_server.core.errors import InvalidInput
from hq_server.store.models import Calendar
from hq_server.tickets.sla import BusinessCalendar

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
HHMM = Field(pattern=r"^([01]\d|2[0-4]):[0-5]\d$")


class Interval(In):
    """Open from `start` to `end` (local time, HH:MM, end up to 24:00)."""

    start: str = HHMM
    end: str = HHMM


class CalendarIn(In):
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


class CalendarOut(Out):
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


class SiteCalendarIn(In):
    """The calendar a site works on; null for the default Mon-Fri 08:30-17:30."""

    calendar_id: int | None = Field(ge=1, le=2_147_483_647)
