"""Working-time arithmetic of SLA calendars: DST, midnight, holidays, weekends, pauses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from hq_server.core.errors import InvalidInput
from hq_server.tickets.sla import (
    AROUND_THE_CLOCK,
    BusinessCalendar,
    CalendarSpec,
    business_clock,
    deadlines_for,
)

BERLIN = ZoneInfo("Europe/Berlin")
SHANGHAI = ZoneInfo("Asia/Shanghai")
WEEKDAYS_0830_1730 = {d: [("08:30", "17:30")] for d in ("mon", "tue", "wed", "thu", "fri")}
ALL_DAY = {d: [("00:00", "24:00")] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def local(tz: ZoneInfo, *args: int) -> datetime:
    """An aware local time."""
    return datetime(*args, tzinfo=tz)  # type: ignore[misc]


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def test_friday_evening_deadline_lands_on_monday() -> None:
    cal = BusinessCalendar.build("Asia/Shanghai", WEEKDAYS_0830_1730)
    friday_evening = local(SHANGHAI, 2026, 3, 6, 19, 0)
    assert cal.add(friday_evening, hours(2)) == local(SHANGHAI, 2026, 3, 9, 10, 30)
    # Friday 16:30 + 2 h: one hour on Friday, one on Monday.
    assert cal.add(local(SHANGHAI, 2026, 3, 6, 16, 30), hours(2)) == local(
        SHANGHAI, 2026, 3, 9, 9, 30
    )


def test_eight_business_hours_span_days_and_nights() -> None:
    cal = BusinessCalendar.build("Asia/Shanghai", WEEKDAYS_0830_1730)
    start = local(SHANGHAI, 2026, 3, 2, 15, 0)  # Monday
    # 2.5 h Monday, 5.5 h Tuesday from 08:30.
    assert cal.add(start, hours(8)) == local(SHANGHAI, 2026, 3, 3, 14, 0)
    assert cal.between(start, local(SHANGHAI, 2026, 3, 3, 14, 0)) == hours(8)


def test_exact_close_and_midnight() -> None:
    cal = BusinessCalendar.build("UTC", {"mon": [("22:00", "24:00")], "tue": [("00:00", "02:00")]})
    start = datetime(2026, 3, 2, 23, 0, tzinfo=UTC)  # Monday 23:00
    assert cal.add(start, hours(1)) == datetime(2026, 3, 3, 0, 0, tzinfo=UTC)
    assert cal.add(start, hours(2)) == datetime(2026, 3, 3, 1, 0, tzinfo=UTC)
    # Ending exactly at the close stays on that day.
    office = BusinessCalendar.build("UTC", WEEKDAYS_0830_1730)
    assert office.add(datetime(2026, 3, 2, 8, 30, tzinfo=UTC), hours(9)) == datetime(
        2026, 3, 2, 17, 30, tzinfo=UTC
    )
    # Zero time from a closed moment is the next opening.
    assert office.add(datetime(2026, 3, 2, 23, 0, tzinfo=UTC), timedelta(0)) == datetime(
        2026, 3, 3, 8, 30, tzinfo=UTC
    )


def test_holidays_are_skipped() -> None:
    # China's National Day week: Oct 1-7 2026 (Thu-Wed), closed.
    holidays = [f"2026-10-0{d}" for d in range(1, 8)]
    cal = BusinessCalendar.build("Asia/Shanghai", WEEKDAYS_0830_1730, holidays)
    start = local(SHANGHAI, 2026, 9, 30, 17, 0)  # Wednesday, 30 minutes before closing
    assert cal.add(start, hours(2)) == local(SHANGHAI, 2026, 10, 8, 10, 0)


def test_berlin_spring_forward_counts_real_minutes() -> None:
    # 29 March 2026: clocks jump 02:00 -> 03:00. A 24-hour Sunday has 23 real hours.
    cal = BusinessCalendar.build("Europe/Berlin", ALL_DAY)
    start = local(BERLIN, 2026, 3, 29, 0, 0)
    assert cal.add(start, hours(3)) == local(BERLIN, 2026, 3, 29, 4, 0)
    assert cal.between(start, local(BERLIN, 2026, 3, 30, 0, 0)) == hours(23)
    # Business hours across the weekend of the change: Friday 17:00 + 1 h -> Monday 09:00.
    office = BusinessCalendar.build(
        "Europe/Berlin", {"mon": [("08:00", "17:00")], "fri": [("08:00", "17:00")]}
    )
    friday = local(BERLIN, 2026, 3, 27, 16, 30)
    due = office.add(friday, hours(1))
    assert due == local(BERLIN, 2026, 3, 30, 8, 30)
    assert due.astimezone(UTC) == datetime(2026, 3, 30, 6, 30, tzinfo=UTC)  # now UTC+2


def test_berlin_fall_back_counts_the_repeated_hour() -> None:
    # 25 October 2026: clocks go back 03:00 -> 02:00. The Sunday has 25 real hours.
    cal = BusinessCalendar.build("Europe/Berlin", ALL_DAY)
    start = local(BERLIN, 2026, 10, 25, 0, 0)
    assert cal.between(start, local(BERLIN, 2026, 10, 26, 0, 0)) == hours(25)
    due = cal.add(start, hours(4))
    assert due.astimezone(UTC) == start.astimezone(UTC) + hours(4)
    assert due.astimezone(BERLIN).hour == 3


def test_an_interval_in_the_spring_forward_gap() -> None:
    # 02:00-04:00 on the change night has only one real hour (02:00-03:00 does not exist).
    cal = BusinessCalendar.build("Europe/Berlin", {"sun": [("02:00", "04:00")]})
    start = local(BERLIN, 2026, 3, 29, 0, 0)
    assert cal.between(start, local(BERLIN, 2026, 3, 30, 0, 0)) == hours(1)
    assert cal.add(start, hours(1)) == local(BERLIN, 2026, 3, 29, 4, 0)


def test_shanghai_has_no_dst_and_local_hours_are_utc_plus_8() -> None:
    cal = BusinessCalendar.build("Asia/Shanghai", WEEKDAYS_0830_1730)
    start = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # Monday 08:00 in Shanghai
    assert cal.add(start, hours(2)) == datetime(2026, 3, 2, 2, 30, tzinfo=UTC)


def test_deadlines_per_grade_and_calendar() -> None:
    opened = datetime(2026, 3, 6, 11, 0, tzinfo=UTC)  # Friday 19:00 in Shanghai
    spec = CalendarSpec(timezone="Asia/Shanghai")  # default Mon-Fri 08:30-17:30
    grade1 = deadlines_for(1, opened, spec)
    assert grade1.ack_due_at == opened + timedelta(minutes=10)  # 24x7
    grade3 = deadlines_for(3, opened, spec)
    assert grade3.ack_due_at == local(SHANGHAI, 2026, 3, 9, 10, 30)
    # 72 h = 8 working days of 9 h: Mon 9 .. Fri 13, Mon 16 .. Wed 18 at closing time.
    assert grade3.restore_due_at == local(SHANGHAI, 2026, 3, 18, 17, 30)
    always = deadlines_for(3, opened, CalendarSpec(timezone="Asia/Shanghai", always_open=True))
    assert always.ack_due_at == opened + hours(2)


def test_pauses_push_deadlines_back_by_their_working_time() -> None:
    opened = local(SHANGHAI, 2026, 3, 2, 9, 0)  # Monday
    spec = CalendarSpec(timezone="Asia/Shanghai")
    # Paused from Monday 10:00 to Tuesday 09:00: 7.5 + 0.5 = 8 working hours.
    pause = (local(SHANGHAI, 2026, 3, 2, 10, 0), local(SHANGHAI, 2026, 3, 3, 9, 0))
    plain = deadlines_for(3, opened, spec)
    paused = deadlines_for(3, opened, spec, [pause])
    assert plain.ack_due_at == local(SHANGHAI, 2026, 3, 2, 11, 0)
    assert paused.ack_due_at == local(SHANGHAI, 2026, 3, 3, 10, 0)
    # On a 24x7 grade the same pause counts 23 wall-clock hours.
    assert deadlines_for(1, opened, spec, [pause]).ack_due_at == opened + hours(23) + timedelta(
        minutes=10
    )


@pytest.mark.parametrize(
    ("timezone", "hours_", "holidays", "message"),
    [
        ("Mars/Olympus", WEEKDAYS_0830_1730, [], "unknown timezone"),
        ("UTC", {"mon": [("09:00", "08:00")]}, [], "closes before it opens"),
        ("UTC", {"mon": [("08:00", "12:00"), ("11:00", "13:00")]}, [], "overlap"),
        ("UTC", {"funday": [("08:00", "12:00")]}, [], "unknown weekday"),
        ("UTC", {"mon": [("8", "12:00")]}, [], "bad time"),
        ("UTC", {}, [], "needs open hours"),
        ("UTC", WEEKDAYS_0830_1730, ["2026-13-01"], "bad holiday"),
    ],
)
def test_bad_calendars_are_refused_with_a_reason(
    timezone: str, hours_: dict[str, list[tuple[str, str]]], holidays: list[str], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        BusinessCalendar.build(timezone, hours_, holidays)


def test_a_calendar_closed_by_holidays_forever_is_an_error_not_a_hang() -> None:
    cal = BusinessCalendar.build("UTC", {"mon": [("08:00", "09:00")]}, ["2026-03-02"])
    # Only one Monday is a holiday: fine.
    assert cal.add(datetime(2026, 3, 2, tzinfo=UTC), hours(1)) == datetime(
        2026, 3, 9, 9, 0, tzinfo=UTC
    )
    assert business_clock(CalendarSpec(timezone="UTC", always_open=True)) is AROUND_THE_CLOCK
