"""Alarm state and ticket policy through the API, with a controlled clock."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from hq_server.core.domain import TicketStatus
from hq_server.store.models import Alarm, Ticket
from hq_server.tickets.book import TicketBook
from hq_server.tickets.policy import DEFAULT_POLICY, AlarmTransition, TransitionKind
from hq_server.tickets.records import ConcurrentTicket, Subject, format_number, open_subject
from protocol.wire import EventKind
from tests.hq.conftest import HQ, START


def _at(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


def _only(items: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(items) == 1, items
    return items[0]


def _detail(hq: HQ, user: str, ticket_id: int) -> dict[str, Any]:
    response = hq.get(user, f"/api/v1/tickets/{ticket_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_raise_opens_one_ticket_with_grade_deadlines(hq: HQ) -> None:
    agent, user = hq.enroll("tx-north"), hq.user_token()
    hq.clock.advance(timedelta(minutes=3))  # HQ's "now" differs from observed_at
    raise_ = hq.event(EventKind.RAISE, grade=1, observed_at=START)
    assert hq.post_events(agent, [raise_]).status_code == 200

    alarm = _only(hq.alarms(user))
    assert alarm["active"] is True
    assert alarm["grade"] == 1
    assert alarm["site"] == "tx-north"
    assert alarm["fault_key"] == "tx1:off_air"
    assert _at(alarm["first_raised_at"]) == START

    ticket = _only(hq.tickets(user))
    opened = hq.clock.now()
    assert re.fullmatch(r"SW-2026-\d{6}", ticket["number"])
    assert ticket["status"] == "new"
    assert ticket["grade"] == 1
    assert ticket["site"] == "tx-north"
    assert ticket["device_id"] == "tx1"
    assert ticket["fault_key"] == "tx1:off_air"
    assert ticket["title"] == "tx1: Transmitter off air"
    assert ticket["alarm_active"] is True
    assert _at(ticket["opened_at"]) == opened
    assert _at(ticket["ack_due_at"]) == opened + timedelta(minutes=10)
    assert _at(ticket["restore_due_at"]) == opened + timedelta(hours=4)

    detail = _detail(hq, user, ticket["id"])
    assert [h["what"] for h in detail["history"]] == ["opened"]
    assert detail["history"][0]["who"].startswith("agent:")


def test_component_is_part_of_fingerprint_and_title(hq: HQ) -> None:
    agent, user = hq.enroll(), hq.user_token()
    events = [
        hq.event(code="psu_lost", component="PSU1", grade=2, title="PSU lost"),
        hq.event(code="psu_lost", component="PSU2", grade=2, title="PSU lost"),
    ]
    hq.post_events(agent, events)
    titles = sorted(t["title"] for t in hq.tickets(user))
    assert titles == ["tx1: PSU lost (PSU1)", "tx1: PSU lost (PSU2)"]


def test_grades_without_targets_have_no_deadlines(hq: HQ) -> None:
    agent, user = hq.enroll(), hq.user_token()
    hq.post_events(agent, [hq.event(code="drift", grade=4), hq.event(code="remark", grade=5)])
    by_grade = {t["grade"]: t for t in hq.tickets(user)}
    opened = hq.clock.now()
    # Grade 4 runs on business hours (default Mon-Fri 08:30-17:30 in the site's zone, UTC):
    # opened Monday 08:00, the clock starts at 08:30.
    assert opened.isoformat() == "2026-03-02T08:00:00+00:00"
    assert _at(by_grade[4]["ack_due_at"]) == opened + timedelta(hours=8, minutes=30)
    assert by_grade[4]["restore_due_at"] is None
    assert by_grade[5]["ack_due_at"] is None
    assert by_grade[5]["restore_due_at"] is None


def test_repeated_raise_while_open_adds_no_ticket(hq: HQ) -> None:
    agent, user = hq.enroll(), hq.user_token()
    hq.post_events(agent, [hq.event(EventKind.RAISE)])
    hq.clock.advance(timedelta(minutes=1))
    hq.post_events(agent, [hq.event(EventKind.RAISE)])
    ticket = _only(hq.tickets(user))
    assert [h["what"] for h in _detail(hq, user, ticket["id"])["history"]] == ["opened"]
    assert _only(hq.alarms(user))["raise_count"] == 1


def test_clear_deactivates_alarm_but_keeps_ticket_open(hq: HQ) -> None:
    agent, user = hq.enroll(), hq.user_token()
    hq.post_events(agent, [hq.event(EventKind.RAISE)])
    hq.clock.advance(timedelta(minutes=2))
    hq.post_events(agent, [hq.event(EventKind.CLEAR, observed_at=hq.clock.now())])

    alarm = _only(hq.alarms(user))
    assert alarm["active"] is False
    assert _at(alarm["cleared_at"]) == hq.clock.now()
    assert hq.alarms(user, active="true") == []
    assert len(hq.alarms(user, active="false")) == 1

    ticket = _only(hq.tickets(user, open="true"))
    assert ticket["status"] == "new"
    assert ticket["alarm_active"] is False
    history = _detail(hq, user, ticket["id"])["history"]
    assert [h["what"] for h in history] == ["opened", "alarm_cleared"]


def test_reraise_while_ticket_open_adds_history_not_a_ticket(hq: HQ) -> None:
    agent, user = hq.enroll(), hq.user_token()
    hq.post_events(agent, [hq.event(EventKind.RAISE, grade=2)])
    hq.post_events(agent, [hq.event(EventKind.CLEAR, grade=2)])
    hq.clock.advance(timedelta(minutes=5))
    hq.post_events(agent, [hq.event(EventKind.RAISE, grade=2)])

    ticket = _only(hq.tickets(user))
    assert ticket["alarm_active"] is True
    history = _detail(hq, user, ticket["id"])["history"]
    assert [h["what"] for h in history] == ["opened", "alarm_cleared", "alarm_raised_again"]
    alarm = _only(hq.alarms(user))
    assert alarm["active"] is True
    assert alarm["raise_count"] == 2
    assert alarm["cleared_at"] is None


def test_grade_change_updates_ticket_grade_and_deadlines(hq: HQ) -> None:
    agent, user = hq.enroll(), hq.user_token()
    hq.post_events(agent, [hq.event(EventKind.RAISE, grade=2, code="vswr")])
    opened = hq.clock.now()
    ticket = _only(hq.tickets(user))
    assert _at(ticket["ack_due_at"]) == opened + timedelta(minutes=30)
    assert _at(ticket["restore_due_at"]) == opened + timedelta(hours=24)

    hq.clock.advance(timedelta(minutes=7))
    hq.post_events(agent, [hq.event(EventKind.UPDATE, grade=1, code="vswr")])
    ticket = _only(hq.tickets(user))
    assert ticket["grade"] == 1
    assert _at(ticket["opened_at"]) == opened
    assert _at(ticket["ack_due_at"]) == opened + timedelta(minutes=10)
    assert _at(ticket["restore_due_at"]) == opened + timedelta(hours=4)
    assert _only(hq.alarms(user))["grade"] == 1
    history = _detail(hq, user, ticket["id"])["history"]
    assert [h["what"] for h in history] == ["opened", "grade_changed"]
    assert history[1]["data"]["old"] == 2 and history[1]["data"]["new"] == 1

    # A RAISE with another grade on the active alarm acts as an UPDATE.
    hq.post_events(agent, [hq.event(EventKind.RAISE, grade=3, code="vswr")])
    ticket = _only(hq.tickets(user))
    assert ticket["grade"] == 3
    # Grade 3 counts business hours, which start at 08:30 (the ticket opened at 08:00).
    assert _at(ticket["ack_due_at"]) == opened + timedelta(hours=2, minutes=30)


def test_new_ticket_after_the_old_one_is_resolved(hq: HQ) -> None:
    agent, user = hq.enroll(), hq.user_token()
    hq.post_events(agent, [hq.event(EventKind.RAISE)])
    hq.post_events(agent, [hq.event(EventKind.CLEAR)])
    # Ticket actions come later; resolve it in the store as an engineer would.
    with hq.db.writer() as session, session.begin():
        ticket = session.scalars(select(Ticket)).one()
        ticket.status = TicketStatus.RESOLVED.value
        ticket.resolved_at = hq.clock.now()
    hq.clock.advance(timedelta(hours=1))
    hq.post_events(agent, [hq.event(EventKind.RAISE)])
    tickets = hq.tickets(user)
    assert [t["status"] for t in tickets] == ["new", "resolved"]
    assert tickets[0]["number"] != tickets[1]["number"]
    assert len(hq.tickets(user, open="true")) == 1
    assert len(hq.tickets(user, status="resolved")) == 1


def test_stale_events_are_stored_but_not_applied(hq: HQ) -> None:
    agent, user = hq.enroll(), hq.user_token()
    raise_ = hq.event(EventKind.RAISE, seq=10)
    clear = hq.event(EventKind.CLEAR, seq=11)
    late_update = hq.event(EventKind.UPDATE, grade=2, seq=9)
    hq.post_events(agent, [raise_, clear])
    response = hq.post_events(agent, [late_update])
    assert response.json()["stored"] == [late_update["event_id"]]
    alarm = _only(hq.alarms(user))
    assert alarm["active"] is False
    assert alarm["grade"] == 1
    ticket = _only(hq.tickets(user))
    assert ticket["grade"] == 1
    assert ticket["alarm_active"] is False


def test_batch_is_applied_in_seq_order(hq: HQ) -> None:
    agent, user = hq.enroll(), hq.user_token()
    # Sent out of order: the CLEAR (seq 2) must come after the RAISE (seq 1).
    hq.post_events(agent, [hq.event(EventKind.CLEAR, seq=2), hq.event(EventKind.RAISE, seq=1)])
    assert _only(hq.alarms(user))["active"] is False
    assert _only(hq.tickets(user))["alarm_active"] is False


def test_clear_of_unknown_fault_changes_nothing(hq: HQ) -> None:
    agent, user = hq.enroll(), hq.user_token()
    assert hq.post_events(agent, [hq.event(EventKind.CLEAR)]).status_code == 200
    assert hq.alarms(user) == []
    assert hq.tickets(user) == []


def test_fingerprint_is_per_site(hq: HQ) -> None:
    north, south, user = hq.enroll("north"), hq.enroll("south"), hq.user_token()
    hq.post_events(north, [hq.event(agent="n")])
    hq.post_events(south, [hq.event(agent="s")])
    assert sorted(t["site"] for t in hq.tickets(user)) == ["north", "south"]
    assert [t["site"] for t in hq.tickets(user, site="south")] == ["south"]
    assert [a["site"] for a in hq.alarms(user, site="north")] == ["north"]


def test_ticket_numbers_are_sequential_per_year(hq: HQ) -> None:
    agent, user = hq.enroll(), hq.user_token()
    hq.post_events(agent, [hq.event(device_id=f"tx{i}") for i in range(3)])
    hq.clock.set(datetime.fromisoformat("2027-01-01T00:00:05+00:00"))
    hq.post_events(agent, [hq.event(device_id="tx9")])
    numbers = sorted(t["number"] for t in hq.tickets(user))
    assert numbers == [
        "SW-2026-000001",
        "SW-2026-000002",
        "SW-2026-000003",
        "SW-2027-000001",
    ]
    assert format_number(2026, 1234567) == "SW-2026-1234567"


def test_list_filters_and_order(hq: HQ) -> None:
    agent, user = hq.enroll(), hq.user_token()
    hq.post_events(agent, [hq.event(device_id="a", grade=1)])
    hq.clock.advance(timedelta(minutes=1))
    hq.post_events(agent, [hq.event(device_id="b", grade=3, observed_at=hq.clock.now())])
    assert [t["device_id"] for t in hq.tickets(user)] == ["b", "a"]
    assert [t["device_id"] for t in hq.tickets(user, grade=3)] == ["b"]
    assert [a["device_id"] for a in hq.alarms(user)] == ["b", "a"]
    assert [a["device_id"] for a in hq.alarms(user, grade=1)] == ["a"]
    assert hq.tickets(user, status="closed") == []
    assert len(hq.tickets(user, limit=1)) == 1
    assert hq.get(user, "/api/v1/tickets", grade=9).status_code == 422
    assert hq.get(user, "/api/v1/tickets", status="bogus").status_code == 422
    assert hq.get(user, "/api/v1/tickets/999999").status_code == 404


def test_losing_the_race_to_open_a_ticket_uses_the_winner(hq: HQ) -> None:
    agent = hq.enroll()
    hq.post_events(agent, [hq.event(EventKind.RAISE)])
    with hq.db.writer() as session, session.begin():
        alarm = session.scalars(select(Alarm)).one()
        # As if the check "no open ticket yet" had passed just before another transaction
        # committed one: the partial unique index refuses the second, the winner is used.
        outcome = open_subject(session, Subject.of(alarm), hq.clock.now(), "test")
        assert outcome.opened is False
        assert outcome.ticket.number == "SW-2026-000001"
    with hq.db.session() as session:
        assert len(session.scalars(select(Ticket)).all()) == 1
    # The counter was not consumed by the refused attempt.
    hq.post_events(agent, [hq.event(device_id="tx2")])
    assert sorted(t["number"] for t in hq.tickets(hq.user_token())) == [
        "SW-2026-000001",
        "SW-2026-000002",
    ]


def test_a_batch_losing_the_race_to_open_a_ticket_is_run_again(hq: HQ) -> None:
    agent = hq.enroll()
    hq.post_events(agent, [hq.event(EventKind.RAISE)])
    with hq.db.writer() as session, session.begin():
        alarm = session.scalars(select(Alarm)).one()
        # As if the book's lookup had found no open ticket just before another transaction
        # committed one: the batch must be run again (its transaction is spoiled on PostgreSQL).
        book = TicketBook(session, hq.clock.now(), DEFAULT_POLICY)
        book.for_active_alarm(alarm, "test")
        with pytest.raises(ConcurrentTicket):
            book.settle()
    with hq.db.session() as session:
        assert len(session.scalars(select(Ticket)).all()) == 1


def test_the_book_writes_only_the_ticket_columns_it_changed(hq: HQ) -> None:
    agent = hq.enroll()
    hq.post_events(agent, [hq.event(EventKind.RAISE, grade=2)])
    moved = datetime(2030, 1, 1, tzinfo=UTC)
    with hq.db.writer() as session, session.begin():
        alarm = session.scalars(select(Alarm)).one()
        book = TicketBook(session, hq.clock.now(), DEFAULT_POLICY)
        book.preload(alarm.site, [alarm.fault_key])
        # Meanwhile (say, an engineer's transaction on PostgreSQL) the deadline moves.
        session.execute(update(Ticket).values(ack_due_at=moved))
        outcome = book.apply(AlarmTransition(TransitionKind.CLEARED, alarm, 2, "test"))
        assert outcome is not None and outcome.opened is False
        book.settle()
    with hq.db.session() as session:
        ticket = session.scalars(select(Ticket)).one()
        assert ticket.alarm_active is False  # what the book changed
        assert ticket.ack_due_at == moved  # what it did not change is left alone


def test_a_grade_change_moves_the_escalation_from_the_level_reached_meanwhile(hq: HQ) -> None:
    agent = hq.enroll()
    hq.post_events(agent, [hq.event(EventKind.RAISE, grade=2)])
    with hq.db.writer() as session, session.begin():
        alarm = session.scalars(select(Alarm)).one()
        book = TicketBook(session, hq.clock.now(), DEFAULT_POLICY)
        book.preload(alarm.site, [alarm.fault_key])
        # Meanwhile (the scheduler's transaction on PostgreSQL) level 1 escalates.
        session.execute(update(Ticket).values(ack_escalation_level=1))
        alarm.grade = 1
        book.apply(AlarmTransition(TransitionKind.GRADE_CHANGED, alarm, 2, "test"))
        book.settle()
    with hq.db.session() as session:
        ticket = session.scalars(select(Ticket)).one()
        assert ticket.grade == 1 and ticket.ack_due_at is not None
        # Built-in chain: level 2 is due 30 min after level 1, itself due at the deadline.
        assert ticket.ack_escalation_level == 1
        assert ticket.ack_escalation_at == ticket.ack_due_at + timedelta(minutes=30)
