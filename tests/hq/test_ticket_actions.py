"""Engineers working tickets through the API: the status machine, fields, filters, roles."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from hq_server.core.domain import Role
from protocol.wire import EventKind
from tests.hq.conftest import HQ

RESOLUTION = {
    "cause": "PSU fan seized",
    "fix": "replaced fan, PA back to 1 kW",
    "tested": True,
    "confirmed_by_customer": True,
    "faq": True,
    "faq_text": "Fan seized: swap the fan tray",
    "time_spent_minutes": 45,
}


def _at(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


def _open_ticket(hq: HQ, grade: int = 1, device_id: str = "tx1") -> int:
    agent = hq.enroll(hostname=f"box-{device_id}")
    assert hq.post_events(agent, [hq.event(grade=grade, device_id=device_id)]).status_code == 200
    tickets = [t for t in hq.tickets(hq.user_token()) if t["device_id"] == device_id]
    ticket_id: int = tickets[0]["id"]
    return ticket_id


def _act(hq: HQ, token: str, ticket_id: int, action: str, body: Any = None) -> dict[str, Any]:
    response = hq.post(token, f"/api/v1/tickets/{ticket_id}/{action}", body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_full_life_of_a_ticket(hq: HQ) -> None:
    ticket_id = _open_ticket(hq)
    eng = hq.user_token(Role.ENGINEER, "li.wei")
    hq.clock.advance(timedelta(minutes=4))
    t = _act(hq, eng, ticket_id, "acknowledge")
    assert t["status"] == "acknowledged"
    assert _at(t["acknowledged_at"]) == hq.clock.now()
    t = _act(hq, eng, ticket_id, "assign", {"assignee": "zhang.min", "on_duty": "li.wei"})
    assert (t["assignee"], t["on_duty"]) == ("zhang.min", "li.wei")
    t = _act(hq, eng, ticket_id, "status", {"status": "in_progress"})
    assert t["status"] == "in_progress"
    t = _act(
        hq,
        eng,
        ticket_id,
        "comment",
        {"seen": "PA1 fan not turning", "done": "ordered spare", "time_spent_minutes": 15},
    )
    assert t["time_spent_minutes"] == 15
    t = _act(hq, eng, ticket_id, "resolve", RESOLUTION)
    assert t["status"] == "resolved"
    assert t["resolution"]["faq_text"] == "Fan seized: swap the fan tray"
    assert t["resolution"]["tested"] is True
    assert t["time_spent_minutes"] == 60
    t = _act(hq, eng, ticket_id, "close", {"note": "customer signed off"})
    assert t["status"] == "closed" and t["closed_at"] is not None
    t = _act(hq, eng, ticket_id, "reopen", {"reason": "fault came back"})
    assert t["status"] == "in_progress"
    assert t["resolved_at"] is None and t["closed_at"] is None
    whats = [h["what"] for h in t["history"]]
    assert whats == [
        "opened",
        "acknowledged",
        "assigned",
        "status_changed",
        "comment",
        "resolved",
        "closed",
        "reopened",
    ]
    comment = t["history"][4]
    assert comment["who"] == "li.wei"
    assert comment["data"] == {
        "seen": "PA1 fan not turning",
        "done": "ordered spare",
        "minutes": 15,
    }
    assert t["customer"] == "" and t["symptom"] == "Transmitter off air"


@pytest.mark.parametrize(
    ("steps", "action", "body"),
    [
        (["acknowledge"], "acknowledge", None),
        (["resolve"], "acknowledge", None),
        ([], "close", {}),
        ([], "reopen", {"reason": "x"}),
        (["resolve"], "assign", {"assignee": "a"}),
        (["resolve"], "resolve", RESOLUTION),
        (["resolve"], "status", {"status": "in_progress"}),
        ([], "status", {"status": "pending_customer"}),
    ],
)
def test_invalid_transitions_are_409_with_a_reason(
    hq: HQ, steps: list[str], action: str, body: Any
) -> None:
    ticket_id = _open_ticket(hq)
    eng = hq.user_token(Role.ENGINEER)
    for step in steps:
        _act(hq, eng, ticket_id, step, RESOLUTION if step == "resolve" else None)
    response = hq.post(eng, f"/api/v1/tickets/{ticket_id}/{action}", body)
    assert response.status_code == 409, response.text
    assert "cannot" in response.json()["detail"]


def test_bad_bodies_unknown_tickets_and_roles(hq: HQ) -> None:
    ticket_id = _open_ticket(hq)
    eng, viewer = hq.user_token(Role.ENGINEER), hq.user_token(Role.VIEWER)
    assert hq.post(viewer, f"/api/v1/tickets/{ticket_id}/acknowledge").status_code == 403
    assert hq.post(eng, "/api/v1/tickets/99999/acknowledge").status_code == 404
    no_faq_text = {**RESOLUTION, "faq_text": ""}
    for action, body in [
        ("resolve", no_faq_text),
        ("resolve", {"cause": "x"}),
        ("comment", {"seen": "", "done": " "}),
        ("status", {"status": "closed"}),
        ("assign", {"assignee": ""}),
        ("reopen", {}),
    ]:
        response = hq.post(eng, f"/api/v1/tickets/{ticket_id}/{action}", body)
        assert response.status_code == 422, (action, response.text)


def test_reopen_refused_while_another_ticket_is_open_for_the_fault(hq: HQ) -> None:
    agent, eng = hq.enroll(), hq.user_token(Role.ENGINEER)
    hq.post_events(agent, [hq.event()])
    first = hq.tickets(eng)[0]["id"]
    _act(hq, eng, first, "resolve", RESOLUTION)
    hq.clock.advance(timedelta(hours=2))  # past the reopen window: a new ticket
    hq.post_events(agent, [hq.event(EventKind.CLEAR), hq.event(EventKind.RAISE)])
    assert len(hq.tickets(eng, open="true")) == 1
    response = hq.post(eng, f"/api/v1/tickets/{first}/reopen", {"reason": "again"})
    assert response.status_code == 409
    assert "already open" in response.json()["detail"]


def test_pending_customer_pauses_the_clock_and_back_resumes_it(hq: HQ) -> None:
    ticket_id = _open_ticket(hq, grade=2)  # 24x7: ack 30 min, restore 24 h
    eng = hq.user_token(Role.ENGINEER)
    opened = hq.clock.now()
    _act(hq, eng, ticket_id, "acknowledge")
    hq.clock.advance(timedelta(hours=1))
    t = _act(hq, eng, ticket_id, "status", {"status": "pending_customer", "note": "waiting"})
    assert _at(t["paused_since"]) == hq.clock.now()
    hq.clock.advance(timedelta(hours=3))
    t = _act(hq, eng, ticket_id, "status", {"status": "in_progress"})  # back
    assert t["paused_since"] is None
    assert _at(t["restore_due_at"]) == opened + timedelta(hours=27)
    assert t["history"][-1]["data"]["restore_due_at"] is not None


def test_text_search_finds_any_case_of_any_script(hq: HQ) -> None:
    eng = hq.user_token(Role.ENGINEER)
    agent = hq.enroll()
    titles = {
        "tx1": "Σφάλμα πομπού",
        "tx2": "1号发射机停播",
        "tx3": "ΠΟΜΠΟΣ ΕΚΤΟΣ",
        "ups1": "Lüfter defekt an der Straße",
    }
    events = [hq.event(device_id=d, title=t, code=f"c_{d}") for d, t in titles.items()]
    assert hq.post_events(agent, events).status_code == 200
    by_device = {t["device_id"]: t["id"] for t in hq.tickets(eng)}

    def found(q: str) -> set[str]:
        ids = {t["id"] for t in hq.tickets(eng, q=q)}
        return {d for d, i in by_device.items() if i in ids}

    assert found("σφάλμα") == found("ΣΦΆΛΜΑ") == found("Σφάλμα") == {"tx1"}
    assert found("发射机") == {"tx2"}
    # Greek sigma in its three forms: final (the query), capital (the title), medial.
    assert found("πομπος") == found("ΠΟΜΠΟΣ") == found("Πομποσ") == {"tx3"}
    assert found("πομπ") == {"tx1", "tx3"}
    assert found("LÜFTER") == found("strasse") == {"ups1"}
    # Full-width letters, as a Chinese input method types them.
    assert found("\uff34\uff381") == {"tx1"}
    assert found("%") == set()


def test_ticket_filters(hq: HQ) -> None:
    eng = hq.user_token(Role.ENGINEER)
    a = _open_ticket(hq, grade=1, device_id="exciter")
    b = _open_ticket(hq, grade=2, device_id="mux")
    _act(hq, eng, b, "assign", {"assignee": "wang"})
    assert [t["id"] for t in hq.tickets(eng, assignee="wang")] == [b]
    assert [t["id"] for t in hq.tickets(eng, q="EXCITER")] == [a]
    assert hq.tickets(eng, q="100%_") == []
    assert hq.tickets(eng, overdue="true") == []
    hq.clock.advance(timedelta(minutes=11))  # grade 1 ack deadline (10 min) has passed
    assert [t["id"] for t in hq.tickets(eng, overdue="true")] == [a]
    assert [t["id"] for t in hq.tickets(eng, overdue="false")] == [b]
    _act(hq, eng, a, "acknowledge")
    assert hq.tickets(eng, overdue="true") == []
    assert [t["id"] for t in hq.tickets(eng, status="acknowledged")] == [a]
