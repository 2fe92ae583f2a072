"""Acceptance: deadlines and escalations on site calendars under a controllable clock -- DST in
Europe/Berlin, Asia/Shanghai, midnight, holidays, calendar edits, pending-customer pauses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hq_server.core.domain import Role
from tests.hq.conftest import HQ

BERLIN = ZoneInfo("Europe/Berlin")
SHANGHAI = ZoneInfo("Asia/Shanghai")
OFFICE = {d: [{"start": "08:30", "end": "17:30"}] for d in ("mon", "tue", "wed", "thu", "fri")}


def _at(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


class Desk:
    """An HQ with one site on a calendar, an admin and an engineer."""

    def __init__(self, hq: HQ, timezone: str, hours: dict[str, Any], holidays: list[str]) -> None:
        self.hq = hq
        self.agent = hq.enroll("station")
        self.admin = hq.user_token(Role.ADMIN, "admin")
        self.engineer = hq.user_token(Role.ENGINEER, "eng")
        body = {"name": "station hours", "timezone": timezone, "hours": hours, "holidays": holidays}
        response = hq.post(self.admin, "/api/v1/calendars", body)
        assert response.status_code == 201, response.text
        self.calendar = response.json()
        self.site_id = hq.get(self.admin, "/api/v1/sites").json()[0]["id"]
        response = hq.call(
            "PUT",
            self.admin,
            f"/api/v1/sites/{self.site_id}/calendar",
            {"calendar_id": self.calendar["id"]},
        )
        assert response.status_code == 200, response.text

    def raise_fault(self, grade: int, device_id: str = "tx1") -> dict[str, Any]:
        """Raise a fault now and return its (only) ticket."""
        event = self.hq.event(grade=grade, device_id=device_id, observed_at=self.hq.clock.now())
        assert self.hq.post_events(self.agent, [event]).status_code == 200
        [ticket] = [t for t in self.hq.tickets(self.admin) if t["device_id"] == device_id]
        return ticket

    def ticket(self, ticket_id: int) -> dict[str, Any]:
        body: dict[str, Any] = self.hq.get(self.admin, f"/api/v1/tickets/{ticket_id}").json()
        return body

    def edit_calendar(self, **changes: Any) -> None:
        body = {k: v for k, v in self.calendar.items() if k in ("name", "timezone", "hours")}
        body["hours"] = {
            d: [{"start": a, "end": b} for a, b in spans] for d, spans in body["hours"].items()
        }
        body["holidays"] = self.calendar["holidays"]
        body.update(changes)
        response = self.hq.call("PUT", self.admin, f"/api/v1/calendars/{self.calendar['id']}", body)
        assert response.status_code == 200, response.text
        self.calendar = response.json()

    def escalations_at(self, when: datetime) -> int:
        self.hq.clock.set(when)
        return self.hq.step().escalated


def test_berlin_spring_forward_weekend(hq: HQ) -> None:
    hq.clock.set(datetime(2026, 3, 27, 16, 30, tzinfo=BERLIN))  # Friday, CET (UTC+1)
    desk = Desk(hq, "Europe/Berlin", OFFICE, [])
    ticket = desk.raise_fault(grade=3)  # ack within 2 business hours
    # 1 h on Friday, 1 h from Monday 08:30, now CEST (UTC+2).
    due = datetime(2026, 3, 30, 9, 30, tzinfo=BERLIN)
    assert _at(ticket["ack_due_at"]) == due
    assert due.astimezone(UTC).hour == 7
    assert desk.escalations_at(due - timedelta(seconds=1)) == 0
    assert desk.escalations_at(due) == 1  # exactly one, at the right instant
    assert desk.escalations_at(due + timedelta(minutes=29)) == 0
    assert len(hq.tickets(desk.admin)) == 1


def test_berlin_fall_back_weekend(hq: HQ) -> None:
    hq.clock.set(datetime(2026, 10, 23, 17, 0, tzinfo=BERLIN))  # Friday, CEST
    desk = Desk(hq, "Europe/Berlin", OFFICE, [])
    ticket = desk.raise_fault(grade=3)
    due = datetime(2026, 10, 26, 10, 0, tzinfo=BERLIN)  # 0.5 h Friday + 1.5 h Monday, CET
    assert _at(ticket["ack_due_at"]) == due
    assert due.astimezone(UTC) == datetime(2026, 10, 26, 9, 0, tzinfo=UTC)
    assert desk.escalations_at(due - timedelta(seconds=1)) == 0
    assert desk.escalations_at(due) == 1


def test_shanghai_friday_evening_holiday_and_calendar_edit(hq: HQ) -> None:
    hq.clock.set(datetime(2026, 9, 25, 19, 0, tzinfo=SHANGHAI))  # Friday evening
    desk = Desk(hq, "Asia/Shanghai", OFFICE, ["2026-09-28"])  # Monday is a holiday
    ticket = desk.raise_fault(grade=3)
    assert _at(ticket["ack_due_at"]) == datetime(2026, 9, 29, 10, 30, tzinfo=SHANGHAI)
    grade1 = desk.raise_fault(grade=1, device_id="mcu")  # 24x7 grades ignore the calendar
    assert _at(grade1["ack_due_at"]) == hq.clock.now() + timedelta(minutes=10)

    # The customer's contract changes: the site works 24x7. Open tickets follow.
    desk.edit_calendar(always_open=True)
    ticket = desk.ticket(ticket["id"])
    assert _at(ticket["ack_due_at"]) == hq.clock.now() + timedelta(hours=2)
    assert ticket["history"][-1]["what"] == "deadlines_changed"
    assert ticket["history"][-1]["who"] == "admin"
    assert _at(desk.ticket(grade1["id"])["ack_due_at"]) == _at(grade1["ack_due_at"])
    # And back, with the holiday removed: due Monday 10:30.
    desk.edit_calendar(always_open=False, holidays=[])
    ticket = desk.ticket(ticket["id"])
    assert _at(ticket["ack_due_at"]) == datetime(2026, 9, 28, 10, 30, tzinfo=SHANGHAI)
    # By Monday the grade-1 ticket has run through all 4 levels of both escalations (24x7);
    # the grade-3 ticket escalates at 10:30 exactly.
    assert desk.escalations_at(datetime(2026, 9, 28, 10, 29, tzinfo=SHANGHAI)) == 8
    assert desk.escalations_at(datetime(2026, 9, 28, 10, 30, tzinfo=SHANGHAI)) == 1
    assert desk.ticket(ticket["id"])["history"][-1]["what"] == "escalated"


def test_midnight_shift_calendar(hq: HQ) -> None:
    # A night shift working 22:00-02:00 across midnight, every day.
    night = {
        d: [{"start": "00:00", "end": "02:00"}, {"start": "22:00", "end": "24:00"}]
        for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    }
    hq.clock.set(datetime(2026, 3, 2, 23, 30, tzinfo=UTC))
    desk = Desk(hq, "UTC", night, [])
    ticket = desk.raise_fault(grade=3)
    # 30 min before midnight, 90 after: 01:30 next day.
    assert _at(ticket["ack_due_at"]) == datetime(2026, 3, 3, 1, 30, tzinfo=UTC)


def test_pending_customer_pauses_business_clock_and_escalation(hq: HQ) -> None:
    hq.clock.set(datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI))  # Monday
    desk = Desk(hq, "Asia/Shanghai", OFFICE, [])
    ticket = desk.raise_fault(grade=3)  # restore within 72 business hours
    restore = _at(ticket["restore_due_at"])
    eng = desk.engineer
    hq.post(eng, f"/api/v1/tickets/{ticket['id']}/acknowledge")
    hq.clock.set(datetime(2026, 3, 2, 10, 0, tzinfo=SHANGHAI))
    hq.post(eng, f"/api/v1/tickets/{ticket['id']}/status", {"status": "pending_customer"})
    # Waiting for the customer past the original deadline: no escalation meanwhile.
    assert restore == datetime(2026, 3, 12, 9, 0, tzinfo=SHANGHAI)
    assert desk.escalations_at(restore + timedelta(hours=1)) == 0
    hq.clock.set(datetime(2026, 3, 13, 10, 0, tzinfo=SHANGHAI))
    response = hq.post(eng, f"/api/v1/tickets/{ticket['id']}/status", {"status": "in_progress"})
    assert response.status_code == 200
    moved = _at(response.json()["restore_due_at"])
    # Paused Mon 2 10:00 -> Fri 13 10:00 = 7.5 + 8 x 9 + 1.5 = 81 working hours, added on.
    assert moved == datetime(2026, 3, 25, 9, 0, tzinfo=SHANGHAI)
    assert desk.escalations_at(moved - timedelta(seconds=1)) == 0
    assert desk.escalations_at(moved) == 1
