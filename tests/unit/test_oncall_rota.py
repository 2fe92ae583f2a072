"""Rota computations: handovers in the team's zone (midnight Asia/Shanghai, DST zones),
weekly turns, holidays, overrides, now/next and gaps."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hq_server.oncall.rota import Duty, Override, Period, Role, Rotation

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def _local(
    zone: ZoneInfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    """A local wall-clock time of `zone` as a UTC instant."""
    return datetime(year, month, day, hour, minute, second, tzinfo=zone).astimezone(UTC)


def test_daily_handover_at_midnight_asia_shanghai() -> None:
    rota = Rotation(
        members=("li", "wang"),
        zone="Asia/Shanghai",
        handover=time(0, 0),
        period=Period.DAILY,
        starts_on=date(2026, 3, 1),
    )
    # Midnight in Shanghai is 16:00 UTC the day before.
    before = _local(SHANGHAI, 2026, 3, 1, 23, 59, 59)
    at = _local(SHANGHAI, 2026, 3, 2, 0, 0)
    assert at == datetime(2026, 3, 1, 16, 0, tzinfo=UTC)
    assert rota.member(before) == "li"
    assert rota.member(at) == "wang"
    assert rota.member(at + timedelta(days=1)) == "li"
    # Before the first handover nobody is on duty by this rotation.
    assert rota.member(_local(SHANGHAI, 2026, 2, 28, 23, 0)) == ""


def test_weekly_handover_on_a_weekday_keeps_local_time_across_dst() -> None:
    rota = Rotation(
        members=("anna", "ben", "carl"),
        zone="Europe/Berlin",
        handover=time(9, 0),
        period=Period.WEEKLY,
        weekday=0,  # Monday
        starts_on=date(2026, 3, 18),  # a Wednesday: the first handover is Monday 23 March
    )
    assert rota.member(_local(BERLIN, 2026, 3, 23, 8, 59)) == ""
    assert rota.member(_local(BERLIN, 2026, 3, 23, 9, 0)) == "anna"
    # Clocks go forward on Sunday 29 March: the next handover is still 09:00 local, which is
    # 07:00 UTC instead of 08:00 UTC; the shift was an hour shorter.
    handover = _local(BERLIN, 2026, 3, 30, 9, 0)
    assert handover == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    assert rota.member(handover - timedelta(seconds=1)) == "anna"
    assert rota.member(handover) == "ben"
    assert rota.member(_local(BERLIN, 2026, 4, 6, 9, 0)) == "carl"
    assert rota.member(_local(BERLIN, 2026, 4, 13, 9, 0)) == "anna"


def test_handover_in_the_hour_skipped_in_spring_and_the_hour_repeated_in_autumn() -> None:
    rota = Rotation(
        members=("a", "b"),
        zone="America/New_York",
        handover=time(2, 30),
        period=Period.DAILY,
        starts_on=date(2026, 3, 7),
    )
    # 8 March 2026: 02:00-03:00 does not exist in New York; 02:30 is read as 03:30 EDT.
    assert rota.handover_at(date(2026, 3, 8)) == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    assert rota.member(datetime(2026, 3, 8, 7, 29, tzinfo=UTC)) == "a"
    assert rota.member(datetime(2026, 3, 8, 7, 30, tzinfo=UTC)) == "b"
    # 1 November 2026: 01:00-02:00 happens twice; 02:30 happens once (EST).
    assert rota.handover_at(date(2026, 11, 1)) == datetime(2026, 11, 1, 7, 30, tzinfo=UTC)
    day_shifts = Duty(rota).spans(
        datetime(2026, 10, 30, 12, tzinfo=UTC), datetime(2026, 11, 2, 12, tzinfo=UTC)
    )
    lengths = [(b - a) for a, b, _ in day_shifts[1:-1]]
    # The shift over the change lasts 25 hours, the next one 24 again.
    assert lengths == [timedelta(hours=25), timedelta(hours=24)]


def test_holidays_give_way_to_the_cover_or_to_nobody() -> None:
    rota = Rotation(
        members=("li", "wang"),
        zone="Asia/Shanghai",
        handover=time(9, 0),
        period=Period.DAILY,
        starts_on=date(2026, 9, 1),
        holidays=frozenset({date(2026, 10, 1)}),
        holiday_cover="zhao",
    )
    assert rota.member(_local(SHANGHAI, 2026, 9, 30, 23, 59)) == rota.rotation_member(
        _local(SHANGHAI, 2026, 9, 30, 23, 59)
    )
    assert rota.member(_local(SHANGHAI, 2026, 10, 1, 0, 0)) == "zhao"
    assert rota.member(_local(SHANGHAI, 2026, 10, 1, 23, 59)) == "zhao"
    assert rota.member(_local(SHANGHAI, 2026, 10, 2, 0, 0)) != "zhao"
    uncovered = dataclasses.replace(rota, holiday_cover="")
    duty = Duty(uncovered)
    start, end = _local(SHANGHAI, 2026, 9, 30), _local(SHANGHAI, 2026, 10, 3)
    assert duty.gaps(start, end) == [(_local(SHANGHAI, 2026, 10, 1), _local(SHANGHAI, 2026, 10, 2))]


def test_override_covers_tuesday_night_and_the_latest_wins() -> None:
    rota = Rotation(
        members=("li",), zone="Asia/Shanghai", handover=time(9), period=Period.WEEKLY,
        starts_on=date(2026, 3, 2),
    )  # fmt: skip
    night = Override("wang", _local(SHANGHAI, 2026, 3, 3, 18), _local(SHANGHAI, 2026, 3, 4, 8))
    later = Override("zhao", _local(SHANGHAI, 2026, 3, 3, 22), _local(SHANGHAI, 2026, 3, 3, 23))
    duty = Duty(rota, (night, later))
    assert duty.who(_local(SHANGHAI, 2026, 3, 3, 17, 59)) == "li"
    assert duty.who(_local(SHANGHAI, 2026, 3, 3, 18)) == "wang"
    assert duty.who(_local(SHANGHAI, 2026, 3, 3, 22, 30)) == "zhao"
    assert duty.who(_local(SHANGHAI, 2026, 3, 4, 8)) == "li"
    # Now and next.
    assert duty.next_change(_local(SHANGHAI, 2026, 3, 3, 12)) == (
        _local(SHANGHAI, 2026, 3, 3, 18),
        "wang",
    )


def test_gaps_before_the_start_between_overrides_and_none_when_covered() -> None:
    start = _local(SHANGHAI, 2026, 3, 1)
    end = _local(SHANGHAI, 2026, 3, 8)
    assert Duty(None).gaps(start, end) == [(start, end)]
    only_override = Duty(None, (Override("li", start, start + timedelta(days=2)),))
    assert only_override.gaps(start, end) == [(start + timedelta(days=2), end)]
    rota = Rotation(
        members=("li", "wang"), zone="Asia/Shanghai", handover=time(0), period=Period.DAILY,
        starts_on=date(2026, 3, 3),
    )  # fmt: skip
    assert Duty(rota).gaps(start, end) == [(start, _local(SHANGHAI, 2026, 3, 3))]
    assert Duty(rota, (Override("zhao", start, end),)).gaps(start, end) == []


def test_backup_overrides_do_not_change_primary_duty() -> None:
    rota = Rotation(members=("li",), zone="UTC", period=Period.DAILY, starts_on=date(2026, 1, 1))
    at = datetime(2026, 3, 1, 12, tzinfo=UTC)
    override = Override("wang", at, at + timedelta(hours=1), Role.BACKUP)
    primary = Duty(rota, tuple(o for o in (override,) if o.role is Role.PRIMARY))
    assert primary.who(at) == "li"
