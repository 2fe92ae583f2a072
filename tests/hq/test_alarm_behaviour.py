"""Alarm behaviour beyond one raise: flapping, the reopen window, site outages, the dead man's
switch and maintenance windows; time driven by a manual clock and the scheduler's step."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from hq_server.core.clock import ManualClock
from hq_server.core.domain import Role
from protocol.wire import EventKind
from tests.hq.conftest import HQ, START, start_hq

RESOLVED = {"cause": "c", "fix": "f", "tested": True, "confirmed_by_customer": True}


def _whats(hq: HQ, token: str, ticket_id: int) -> list[str]:
    body: dict[str, Any] = hq.get(token, f"/api/v1/tickets/{ticket_id}").json()
    return [h["what"] for h in body["history"]]


def test_flapping_alarm_is_marked_and_does_not_churn_its_ticket(hq: HQ) -> None:
    agent, user = hq.enroll(), hq.user_token(Role.ENGINEER)
    kinds = [EventKind.RAISE, EventKind.CLEAR] * 8
    for kind in kinds:
        hq.clock.advance(timedelta(minutes=1))
        hq.post_events(agent, [hq.event(kind, observed_at=hq.clock.now())])
    [alarm] = hq.alarms(user)
    assert alarm["flapping"] is True
    [ticket] = hq.tickets(user)
    whats = _whats(hq, user, ticket["id"])
    assert whats.count("flapping_started") == 1
    # Before flapping was detected (a full window of 11 states) the changes were recorded;
    # after it, none: 5 clears and 5 raises at most, not 8 of each.
    assert whats.count("alarm_cleared") <= 5 and whats.count("alarm_raised_again") <= 5
    # Resolved while flapping, raised again hours later: the same ticket reopens.
    hq.post(user, f"/api/v1/tickets/{ticket['id']}/resolve", RESOLVED)
    hq.clock.advance(timedelta(hours=5))
    hq.post_events(agent, [hq.event(EventKind.RAISE, observed_at=hq.clock.now())])
    assert [t["id"] for t in hq.tickets(user)] == [ticket["id"]]
    # Steady again: flapping stops after enough stable states.
    for _ in range(12):
        hq.clock.advance(timedelta(minutes=1))
        hq.post_events(agent, [hq.event(EventKind.RAISE, observed_at=hq.clock.now())])
    assert hq.alarms(user)[0]["flapping"] is False
    assert _whats(hq, user, ticket["id"])[-1] == "flapping_stopped"


def test_raise_within_the_reopen_window_reopens_the_resolved_ticket(hq: HQ) -> None:
    agent, eng = hq.enroll(), hq.user_token(Role.ENGINEER)
    hq.post_events(agent, [hq.event(EventKind.RAISE)])
    [ticket] = hq.tickets(eng)
    hq.post(eng, f"/api/v1/tickets/{ticket['id']}/acknowledge")
    hq.post_events(agent, [hq.event(EventKind.CLEAR)])
    hq.post(eng, f"/api/v1/tickets/{ticket['id']}/resolve", RESOLVED)
    hq.clock.advance(timedelta(minutes=29))
    hq.post_events(agent, [hq.event(EventKind.RAISE, grade=2)])
    [again] = hq.tickets(eng)
    assert again["id"] == ticket["id"]
    assert again["status"] == "in_progress"  # it had been acknowledged
    assert again["grade"] == 2 and again["alarm_active"] is True
    assert _whats(hq, eng, ticket["id"])[-2:] == ["reopened", "grade_changed"]
    # Outside the window a new ticket opens.
    hq.post_events(agent, [hq.event(EventKind.CLEAR)])
    hq.post(eng, f"/api/v1/tickets/{ticket['id']}/resolve", RESOLVED)
    hq.clock.advance(timedelta(minutes=31))
    hq.post_events(agent, [hq.event(EventKind.RAISE)])
    assert len(hq.tickets(eng)) == 2


def test_many_unreachable_devices_are_one_site_outage_ticket(hq: HQ) -> None:
    agent, eng = hq.enroll(), hq.user_token(Role.ENGINEER)
    down = [
        hq.event(device_id=f"dev{i}", code="unreachable", grade=2, title="Device unreachable")
        for i in range(6)
    ]
    hq.post_events(agent, down[:2])  # two: below the threshold of 3, own tickets
    assert len(hq.tickets(eng)) == 2
    hq.post_events(agent, down[2:])
    tickets = hq.tickets(eng)
    outage = [t for t in tickets if t["code"] == "site_outage"]
    assert len(tickets) == 3 and len(outage) == 1
    detail = hq.get(eng, f"/api/v1/tickets/{outage[0]['id']}").json()
    assert len(detail["grouped_alarm_ids"]) == 6
    assert detail["grade"] == 2
    assert detail["history"].count  # grouped entries are history
    assert sum(1 for h in detail["history"] if h["what"] == "alarm_grouped") == 6


@pytest.fixture
def hq_deadman(migrated_url: str, clock: ManualClock, tmp_path: Path) -> Iterator[HQ]:
    """HQ with the default dead man's switch (180 s)."""
    with start_hq(migrated_url, clock, tmp_path, heartbeat_timeout=timedelta(seconds=180)) as h:
        yield h


def _heartbeat(hq: HQ, token: str) -> None:
    body = {
        "agent_version": "1",
        "sent_at": hq.clock.now().isoformat(),
        "outbox_depth": 0,
        "dropped_events": 0,
        "last_seq": 0,
    }
    response = hq.client.post(
        "/api/v1/heartbeat", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200


def test_silent_agent_raises_site_unreachable_and_heartbeat_clears_it(hq_deadman: HQ) -> None:
    hq = hq_deadman
    agent, eng = hq.enroll("tx-north"), hq.user_token(Role.ENGINEER)
    _heartbeat(hq, agent)
    hq.post_events(agent, [hq.event(device_id="ups", code="unreachable", grade=2)])
    hq.clock.advance(timedelta(seconds=179))
    assert hq.step().raised_sites == []
    hq.clock.advance(timedelta(seconds=1))
    assert len(hq.step().raised_sites) == 1
    assert hq.step().raised_sites == []  # once
    site_ticket = next(t for t in hq.tickets(eng) if t["code"] == "site_unreachable")
    assert site_ticket["grade"] == 1 and site_ticket["alarm_active"] is True
    detail = hq.get(eng, f"/api/v1/tickets/{site_ticket['id']}").json()
    assert len(detail["grouped_alarm_ids"]) == 1  # the unreachable UPS joined it
    assert detail["history"][0]["who"] == "hq:deadman"
    # Events prove the agent is back: the next step clears the alarm. A device going
    # unreachable meanwhile joins the site ticket instead of opening its own.
    hq.clock.advance(timedelta(seconds=10))
    hq.post_events(agent, [hq.event(device_id="mux", code="unreachable", grade=2)])
    assert not [t for t in hq.tickets(eng) if t["device_id"] == "mux"]
    assert len(hq.step().cleared_sites) == 1
    site_ticket = next(t for t in hq.tickets(eng) if t["code"] == "site_unreachable")
    assert site_ticket["alarm_active"] is False
    assert site_ticket["status"] == "new"  # an engineer resolves it
    # Silent again, then a heartbeat: cleared at once, without waiting for a step.
    hq.clock.advance(timedelta(seconds=180))
    assert len(hq.step().raised_sites) == 1
    assert next(t for t in hq.tickets(eng) if t["code"] == "site_unreachable")["alarm_active"]
    _heartbeat(hq, agent)
    site_ticket = next(t for t in hq.tickets(eng) if t["code"] == "site_unreachable")
    assert site_ticket["alarm_active"] is False
    assert hq.step().cleared_sites == []
    whats = _whats(hq, eng, site_ticket["id"])
    assert whats.count("alarm_cleared") == 2 and whats.count("alarm_raised_again") == 1


def test_maintenance_window_holds_tickets_and_escalations(hq: HQ) -> None:
    agent, admin = hq.enroll(), hq.user_token(Role.ADMIN)
    hq.post_events(agent, [hq.event(device_id="tx2", grade=1)])  # before the window
    site_id = hq.get(admin, "/api/v1/sites").json()[0]["id"]
    window = {
        "site_id": site_id,
        "device_id": None,
        "starts_at": (START + timedelta(minutes=1)).isoformat(),
        "ends_at": (START + timedelta(hours=1)).isoformat(),
        "reason": "replace PA module",
        "approval_ref": "CUST-CHG-42",
    }
    response = hq.post(admin, "/api/v1/maintenance-windows", window)
    assert response.status_code == 201, response.text
    assert response.json()["author"] == "test"
    hq.clock.advance(timedelta(minutes=5))
    hq.post_events(agent, [hq.event(device_id="tx1", grade=1, observed_at=hq.clock.now())])
    hq.post_events(agent, [hq.event(device_id="tx3", grade=1, observed_at=hq.clock.now())])
    hq.post_events(
        agent, [hq.event(EventKind.CLEAR, device_id="tx3", grade=1, observed_at=hq.clock.now())]
    )
    assert [t["device_id"] for t in hq.tickets(admin)] == ["tx2"]  # held, alarm recorded
    assert {a["device_id"] for a in hq.alarms(admin, active="true")} == {"tx1", "tx2"}
    # tx2's ticket (opened before) does not escalate during the window.
    hq.clock.set(START + timedelta(minutes=30))
    report = hq.step()
    assert (report.escalated, report.deferred) == (0, 1)
    # The window ends: tx1 (still active) gets its ticket, tx3 (cleared) none; tx2 escalates.
    hq.clock.set(START + timedelta(hours=1))
    report = hq.step()
    assert report.released_windows == 1 and report.escalated == 1
    assert sorted(t["device_id"] for t in hq.tickets(admin)) == ["tx1", "tx2"]
    tx1 = next(t for t in hq.tickets(admin) if t["device_id"] == "tx1")
    assert tx1["opened_at"].startswith("2026-03-02T09:00")
    assert hq.step().released_windows == 0
    assert (
        hq.post(
            admin, "/api/v1/maintenance-windows", {**window, "ends_at": window["starts_at"]}
        ).status_code
        == 422
    )
    assert (
        hq.post(hq.user_token(Role.ENGINEER), "/api/v1/maintenance-windows", window).status_code
        == 403
    )


def test_running_window_deleted_ends_now_and_releases(hq: HQ) -> None:
    agent, admin = hq.enroll(), hq.user_token(Role.ADMIN)
    window = {
        "code": "off_air",
        "starts_at": START.isoformat(),
        "ends_at": (START + timedelta(days=1)).isoformat(),
        "reason": "antenna work",
    }
    window_id = hq.post(admin, "/api/v1/maintenance-windows", window).json()["id"]
    hq.post_events(agent, [hq.event()])
    assert hq.tickets(admin) == []
    assert len(hq.get(admin, "/api/v1/maintenance-windows", active="true").json()) == 1
    hq.clock.advance(timedelta(minutes=10))
    assert hq.call("DELETE", admin, f"/api/v1/maintenance-windows/{window_id}").status_code == 204
    assert hq.step().released_windows == 1
    assert len(hq.tickets(admin)) == 1
    assert hq.get(admin, f"/api/v1/maintenance-windows/{window_id}").status_code == 200
    assert hq.call("DELETE", admin, "/api/v1/maintenance-windows/999").status_code == 404
