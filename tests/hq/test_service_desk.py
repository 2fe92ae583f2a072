"""The service desk's records through the API on both databases: customers, contacts and SLA
policies as data (A-D and C-1..C-3 schemes on business-hours calendars), manual tickets,
regrades with the seed's clock rule, escalation at the customer's request, on-site dispatch with
its deadline and the escalation of a missed arrival, the promised fix, the customer's
confirmation and the customer's notifications (a real SMTP receiver on loopback)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.header import decode_header, make_header
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from hq_server.core.clock import ManualClock
from hq_server.core.domain import Role
from tests.hq.conftest import HQ, START, start_hq
from tests.hq.receivers import Mailbox, smtp

__all__ = ["smtp"]  # fixture

# START is Monday 2026-03-02 08:00 UTC, 16:00 in Shanghai.
OFFICE = {
    "name": "shanghai office",
    "timezone": "Asia/Shanghai",
    "hours": {
        day: [{"start": "09:00", "end": "18:00"}] for day in ("mon", "tue", "wed", "thu", "fri")
    },
    "holidays": ["2026-03-04"],
}


def _targets(
    ack: int | None, restore: int | None, onsite: int | None, clock: str
) -> dict[str, Any]:
    return {
        "ack_minutes": ack,
        "restore_minutes": restore,
        "onsite_minutes": onsite,
        "clock": clock,
    }


A_TO_D: dict[str, Any] = {
    "name": "broadcaster A-D",
    "scheme": {"A": 1, "B": 2, "C": 3, "D": 5},
    "grades": {
        "1": _targets(15, 240, 120, "24x7"),
        "2": _targets(60, 480, 480, "business"),
        "3": _targets(240, 4320, None, "business"),
        "4": _targets(None, None, None, "business"),
        "5": _targets(None, None, None, "business"),
    },
}
C_LEVELS: dict[str, Any] = {
    "name": "telecom C-1..C-3",
    "scheme": {"C-1": 1, "C-2": 2, "C-3": 3},
    "grades": {
        "1": _targets(10, 180, 240, "24x7"),
        "2": _targets(30, 600, None, "business"),
        "3": _targets(120, 2700, None, "business"),
        "4": _targets(None, None, None, "business"),
        "5": _targets(None, None, None, "business"),
    },
}


def _at(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).astimezone(UTC)


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _refused(response: Any, *loc: str | int) -> str:
    """The message of a 422 whose first error names `loc` (after "body")."""
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail[0]["loc"][: len(loc) + 1] == ["body", *loc], detail
    return str(detail[0]["msg"])


class Desk:
    """An admin and an engineer on an HQ, with helpers to set customers up."""

    def __init__(self, hq: HQ) -> None:
        self.hq = hq
        self.admin = hq.user_token(Role.ADMIN, "admin")
        self.engineer = hq.user_token(Role.ENGINEER, "wang")

    def site(self, name: str) -> int:
        site: dict[str, Any] = _ok(
            self.hq.post(self.admin, "/api/v1/sites", {"name": name, "timezone": "Asia/Shanghai"}),
            201,
        )
        return int(site["id"])

    def calendar(self) -> int:
        return int(_ok(self.hq.post(self.admin, "/api/v1/calendars", OFFICE), 201)["id"])

    def policy(self, body: dict[str, Any], calendar_id: int | None) -> int:
        response = self.hq.post(
            self.admin, "/api/v1/sla-policies", {**body, "calendar_id": calendar_id}
        )
        return int(_ok(response, 201)["id"])

    def customer(self, name: str, policy_id: int | None, **extra: Any) -> dict[str, Any]:
        body = {"name": name, "contract_number": f"{name}-2026", "sla_policy_id": policy_id}
        customer: dict[str, Any] = _ok(
            self.hq.post(self.admin, "/api/v1/customers", {**body, **extra}), 201
        )
        return customer

    def contact(self, customer_id: int, name: str, email: str = "", **extra: Any) -> int:
        body = {"name": name, "role": "station chief", "phone": "+86 10 1234 5678", "email": email}
        response = self.hq.post(
            self.admin,
            f"/api/v1/customers/{customer_id}/contacts",
            {**body, "notify": bool(email), **extra},
        )
        return int(_ok(response, 201)["id"])

    def under(self, site_id: int, customer_id: int | None) -> None:
        path = f"/api/v1/sites/{site_id}/customer"
        _ok(self.hq.call("PUT", self.admin, path, {"customer_id": customer_id}))

    def report(self, site_id: int, grade: int | str, **extra: Any) -> Any:
        body = {"source": "phone", "site_id": site_id, "grade": grade, "symptom": "no picture"}
        return self.hq.post(self.engineer, "/api/v1/tickets", {**body, **extra})

    def open(self, site_id: int, grade: int | str, **extra: Any) -> dict[str, Any]:
        ticket: dict[str, Any] = _ok(self.report(site_id, grade, **extra), 201)
        return ticket

    def act(self, ticket_id: int, action: str, body: Any = None, status: int = 200) -> Any:
        return _ok(
            self.hq.post(self.engineer, f"/api/v1/tickets/{ticket_id}/{action}", body), status
        )

    def ticket(self, ticket_id: int) -> dict[str, Any]:
        ticket: dict[str, Any] = _ok(self.hq.get(self.admin, f"/api/v1/tickets/{ticket_id}"))
        return ticket


@pytest.fixture
def desk(hq: HQ) -> Desk:
    return Desk(hq)


def test_policies_customers_and_contacts_refuse_bad_fields_by_name(desk: Desk) -> None:
    hq, admin = desk.hq, desk.admin
    missing = {**A_TO_D, "grades": {k: v for k, v in A_TO_D["grades"].items() if k != "4"}}
    assert "grade 4" in _refused(hq.post(admin, "/api/v1/sla-policies", missing), "grades")
    bad_clock = {**A_TO_D, "grades": {**A_TO_D["grades"], "2": _targets(60, 480, None, "9x5")}}
    _refused(hq.post(admin, "/api/v1/sla-policies", bad_clock), "grades", "2", "clock")
    bad_minutes = {**A_TO_D, "grades": {**A_TO_D["grades"], "3": _targets(0, 10, None, "24x7")}}
    _refused(hq.post(admin, "/api/v1/sla-policies", bad_minutes), "grades", "3", "ack_minutes")
    bad_scheme = {**A_TO_D, "scheme": {"A": 1, "E": 7}}
    _refused(hq.post(admin, "/api/v1/sla-policies", bad_scheme), "scheme", "E")
    twice = {**A_TO_D, "scheme": {"A": 1, "a": 2}}
    assert "named twice" in _refused(hq.post(admin, "/api/v1/sla-policies", twice), "scheme")
    no_calendar = {**A_TO_D, "calendar_id": 999}
    _refused(hq.post(admin, "/api/v1/sla-policies", no_calendar), "calendar_id")
    assert hq.post(desk.engineer, "/api/v1/sla-policies", A_TO_D).status_code == 403

    policy_id = desk.policy(A_TO_D, desk.calendar())
    assert hq.post(admin, "/api/v1/sla-policies", A_TO_D).status_code == 409
    stored = _ok(hq.get(desk.engineer, f"/api/v1/sla-policies/{policy_id}"))
    assert stored["scheme"] == {"A": 1, "B": 2, "C": 3, "D": 5}
    assert stored["grades"]["1"] == _targets(15, 240, 120, "24x7")

    customer = {"name": "CCTV Hebei", "sla_policy_id": policy_id}
    _refused(hq.post(admin, "/api/v1/customers", {**customer, "timezone": "Mars/Base"}), "timezone")
    _refused(hq.post(admin, "/api/v1/customers", {**customer, "language": "fr"}), "language")
    _refused(
        hq.post(admin, "/api/v1/customers", {**customer, "sla_policy_id": 999}), "sla_policy_id"
    )
    term = {**customer, "contract_start": "2026-01-01", "contract_end": "2025-12-31"}
    _refused(hq.post(admin, "/api/v1/customers", term), "contract_end")
    created = desk.customer("CCTV Hebei", policy_id, language="en", timezone="Asia/Shanghai")
    assert hq.post(admin, "/api/v1/customers", customer).status_code == 409

    path = f"/api/v1/customers/{created['id']}/contacts"
    _refused(hq.post(admin, path, {"name": "Zhao", "notify": True}), "email")
    _refused(hq.post(admin, path, {"name": "Zhao", "email": "not an address"}), "email")
    _refused(hq.post(admin, path, {"name": "Zhao", "phone": "call me"}), "phone")
    contact_id = desk.contact(created["id"], "Zhao Lei", "zhao@example.com", im_channel="wecom:zl")
    site_id = desk.site("hebei-tx")
    desk.under(site_id, created["id"])
    shown = _ok(hq.get(desk.engineer, f"/api/v1/customers/{created['id']}"))
    assert shown["sites"] == ["hebei-tx"]
    assert [(c["id"], c["im_channel"]) for c in shown["contacts"]] == [(contact_id, "wecom:zl")]
    site = _ok(hq.get(admin, f"/api/v1/sites/{site_id}"))
    assert (site["customer"], site["customer_id"]) == ("CCTV Hebei", created["id"])
    # Renaming the customer renames it on its sites (escalation chains match on the name).
    _ok(
        hq.call("PUT", admin, f"/api/v1/customers/{created['id']}", {**customer, "name": "CCTV HB"})
    )
    assert _ok(hq.get(admin, f"/api/v1/sites/{site_id}"))["customer"] == "CCTV HB"
    desk.under(site_id, None)
    site = _ok(hq.get(admin, f"/api/v1/sites/{site_id}"))
    assert (site["customer"], site["customer_id"]) == ("", None)


def test_manual_tickets_run_on_the_customers_policy_a_to_d_and_c_levels(desk: Desk) -> None:
    calendar_id = desk.calendar()
    broadcaster = desk.customer("Hebei TV", desk.policy(A_TO_D, calendar_id))
    telecom = desk.customer("Unicom", desk.policy(C_LEVELS, calendar_id))
    tv, exchange, plain = desk.site("tv-1"), desk.site("pbx-1"), desk.site("plain")
    desk.under(tv, broadcaster["id"])
    desk.under(exchange, telecom["id"])
    chief = desk.contact(broadcaster["id"], "Li Ming")

    # "b" is the customer's B, our grade 2: business hours 09:00-18:00 Shanghai. Opened Monday
    # 16:00 local: acknowledge in 1 h (17:00 = 09:00 UTC); restore in 8 business hours: 2 h on
    # Monday, then Tuesday 09:00-15:00 local (07:00 UTC).
    t = desk.open(tv, "b", contact_id=chief, device_id="tx1", customer_id=broadcaster["id"])
    assert (t["grade"], t["customer_grade"], t["source"]) == (2, "B", "phone")
    assert (t["customer"], t["customer_id"]) == ("Hebei TV", broadcaster["id"])
    assert (t["reporter"], t["contact_id"], t["title"]) == ("Li Ming", chief, "tx1: no picture")
    assert _at(t["ack_due_at"]) == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert _at(t["restore_due_at"]) == datetime(2026, 3, 3, 7, 0, tzinfo=UTC)
    assert t["status"] == "new" and t["alarm_id"] is None and t["escalation_chain"] == "built-in"
    assert t["ack_escalation_at"] == t["ack_due_at"]
    assert t["history"][0]["what"] == "opened"
    assert "given as B" in t["history"][0]["detail"] and "by phone" in t["history"][0]["detail"]
    # C: grade 3, 240 business minutes: 2 h Monday, then Tuesday 09:00-11:00 local.
    t = desk.open(tv, "C", source="fax")
    assert _at(t["ack_due_at"]) == datetime(2026, 3, 3, 3, 0, tzinfo=UTC)
    # 72 business hours: 2 h Monday, Tuesday 9 h, Wednesday is a holiday, then 9 h a day from
    # Thursday: 61 h is 6 more days (Thu, Fri, Mon .. Thu) and 7 h on Friday 2026-03-13: 16:00.
    assert _at(t["restore_due_at"]) == datetime(2026, 3, 13, 8, 0, tzinfo=UTC)
    # A: grade 1, 24x7.
    t = desk.open(tv, "a")
    assert _at(t["ack_due_at"]) == START + timedelta(minutes=15)
    assert _at(t["restore_due_at"]) == START + timedelta(hours=4)

    # C-1..C-3: C-2 is grade 2 on business hours (30 min: 16:30 local), C-1 grade 1 24x7.
    t = desk.open(exchange, "c-2", source="email")
    assert (t["grade"], t["customer_grade"]) == (2, "C-2")
    assert _at(t["ack_due_at"]) == datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
    # 600 business minutes: 2 h Monday, 8 h Tuesday (to 17:00 local = 09:00 UTC).
    assert _at(t["restore_due_at"]) == datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
    t = desk.open(exchange, "C-1", source="onsite")
    assert (t["grade"], _at(t["ack_due_at"])) == (1, START + timedelta(minutes=10))

    mine = desk.hq.tickets(desk.admin, customer_id=telecom["id"])
    assert sorted(x["customer_grade"] for x in mine) == ["C-1", "C-2"]
    assert [x["source"] for x in desk.hq.tickets(desk.admin, source="fax")] == ["fax"]

    # A site without a customer runs on the default policy (the fixed table).
    t = desk.open(plain, "C-1", source="web")
    assert (t["grade"], _at(t["ack_due_at"])) == (1, START + timedelta(minutes=10))
    assert _at(t["restore_due_at"]) == START + timedelta(hours=4)

    # Errors name the field.
    assert "use one of A, B, C, D" in _refused(desk.report(tv, "E"), "grade")
    _refused(desk.report(exchange, "A"), "grade")
    _refused(desk.report(tv, "1", source="telegram"), "source")
    _refused(desk.report(999, "1"), "site_id")
    _refused(desk.report(tv, "A", customer_id=telecom["id"]), "customer_id")
    _refused(desk.report(exchange, "C-1", contact_id=chief), "contact_id")
    _refused(desk.report(tv, "A", symptom=""), "symptom")
    in_use = desk.hq.call("DELETE", desk.admin, f"/api/v1/contacts/{chief}")
    assert in_use.status_code == 409 and "reported ticket" in in_use.text
    spare = desk.contact(telecom["id"], "Spare")
    assert desk.hq.call("DELETE", desk.admin, f"/api/v1/contacts/{spare}").status_code == 204
    assert desk.hq.call("DELETE", desk.admin, f"/api/v1/contacts/{spare}").status_code == 404
    viewer = desk.hq.user_token(Role.VIEWER, "v")
    body = {"source": "phone", "site_id": tv, "grade": "A", "symptom": "x"}
    assert desk.hq.post(viewer, "/api/v1/tickets", body).status_code == 403

    # A new policy for the customer moves its open tickets' deadlines.
    faster = {
        **A_TO_D,
        "name": "faster",
        "grades": {**A_TO_D["grades"], "1": _targets(5, 60, 60, "24x7")},
    }
    faster_id = desk.policy(faster, None)
    body = {"name": "Hebei TV", "sla_policy_id": faster_id}
    _ok(desk.hq.call("PUT", desk.admin, f"/api/v1/customers/{broadcaster['id']}", body))
    grade_a = [x for x in desk.hq.tickets(desk.admin, site="tv-1") if x["customer_grade"] == "A"]
    assert _at(grade_a[0]["ack_due_at"]) == START + timedelta(minutes=5)

    # The contract's calendar changes: its customers' open tickets follow (C-2 now has 10 min on
    # Monday, closing at 16:10, and 20 min from Tuesday 09:00 local); it cannot be deleted.
    short = {
        **OFFICE,
        "hours": {
            "mon": [{"start": "09:00", "end": "16:10"}],
            "tue": [{"start": "09:00", "end": "18:00"}],
        },
    }
    _ok(desk.hq.call("PUT", desk.admin, f"/api/v1/calendars/{calendar_id}", short))
    [c2] = [x for x in desk.hq.tickets(desk.admin, site="pbx-1") if x["customer_grade"] == "C-2"]
    assert _at(c2["ack_due_at"]) == datetime(2026, 3, 3, 1, 20, tzinfo=UTC)
    refused = desk.hq.call("DELETE", desk.admin, f"/api/v1/calendars/{calendar_id}")
    assert refused.status_code == 409 and "telecom C-1..C-3" in refused.text


def test_regrade_upgrade_counts_from_confirmation_downgrade_keeps_the_start(
    desk: Desk, clock: ManualClock
) -> None:
    site = desk.site("north")
    t = desk.open(site, 2)
    assert _at(t["ack_due_at"]) == START + timedelta(minutes=30)
    clock.advance(timedelta(hours=2))
    confirmed = START + timedelta(hours=1, minutes=50)
    body = {
        "grade": 1,
        "reason": "customer: all channels off air",
        "confirmed_at": confirmed.isoformat(),
    }
    t = desk.act(t["id"], "regrade", body)
    assert t["grade"] == 1 and _at(t["sla_started_at"]) == confirmed
    assert _at(t["ack_due_at"]) == confirmed + timedelta(minutes=10)
    assert _at(t["restore_due_at"]) == confirmed + timedelta(hours=4)
    assert t["ack_escalation_at"] == t["ack_due_at"]
    entry = t["history"][-1]
    assert entry["what"] == "grade_changed" and entry["who"] == "wang"
    assert entry["data"]["reason"] == "customer: all channels off air"
    assert entry["data"]["upgraded"] is True and "all channels off air" in entry["detail"]

    # A downgrade keeps the start: grade 3 on the default calendar (Mon-Fri 08:30-17:30 in the
    # site's zone, Shanghai): the start 09:50 UTC is 17:50 local, after hours; 2 business hours
    # from Tuesday 08:30 local.
    clock.advance(timedelta(hours=1))
    t = desk.act(t["id"], "regrade", {"grade": "3", "reason": "one channel back"})
    assert _at(t["sla_started_at"]) == confirmed
    assert _at(t["ack_due_at"]) == datetime(2026, 3, 3, 2, 30, tzinfo=UTC)
    assert t["history"][-1]["data"]["upgraded"] is False

    assert "already grade 3" in _refused(
        desk.hq.post(
            desk.engineer, f"/api/v1/tickets/{t['id']}/regrade", {"grade": 3, "reason": "x"}
        ),
        "grade",
    )
    future = {
        "grade": 1,
        "reason": "x",
        "confirmed_at": (clock.now() + timedelta(hours=1)).isoformat(),
    }
    _refused(
        desk.hq.post(desk.engineer, f"/api/v1/tickets/{t['id']}/regrade", future), "confirmed_at"
    )
    _refused(
        desk.hq.post(desk.engineer, f"/api/v1/tickets/{t['id']}/regrade", {"grade": 1}), "reason"
    )


def _chain_of(emails: list[str]) -> dict[str, Any]:
    return {
        "name": "desk chain",
        "levels": [
            {
                "name": f"level {i + 1}",
                "delay_minutes": 0 if i == 0 else 30,
                "delay_clock": "wall",
                "contacts": [{"name": email.split("@")[0], "email": email}],
            }
            for i, email in enumerate(emails)
        ],
    }


@pytest.fixture
def mailing_desk(
    migrated_url: str, clock: ManualClock, tmp_path: Path, smtp: Mailbox
) -> Iterator[Desk]:
    with start_hq(migrated_url, clock, tmp_path, smtp_port=smtp.port) as started:
        yield Desk(started)


def test_escalate_now_notifies_the_next_level_at_once_and_later_levels_keep_their_times(
    mailing_desk: Desk, smtp: Mailbox, clock: ManualClock
) -> None:
    desk = mailing_desk
    chain = _chain_of(["duty@example.com", "manager@example.com"])
    _ok(desk.hq.post(desk.admin, "/api/v1/escalation-chains", chain), 201)
    t = desk.open(desk.site("north"), 1)
    clock.advance(timedelta(minutes=3))
    t = desk.act(t["id"], "escalate", {"reason": "the minister is watching"})
    assert t["ack_escalation_level"] == 1
    # Level 2 stays due when the deadline makes it due: 10 min + 30 min.
    assert _at(t["ack_escalation_at"]) == START + timedelta(minutes=40)
    entry = t["history"][-1]
    assert entry["what"] == "escalated" and entry["who"] == "wang"
    assert entry["data"]["requested"] is True and entry["data"]["level"] == 1
    assert "at the customer's request (the minister is watching)" in entry["detail"]
    assert desk.hq.step().notification_attempts == 1
    assert smtp.recipients == [["duty@example.com"]]
    assert "escalated at the customer's request" in _subject(smtp.messages[0])

    # The ack deadline passes: level 1 was taken already, nothing more until level 2 is due.
    clock.advance(timedelta(minutes=8))
    assert desk.hq.step().escalated == 0
    clock.advance(timedelta(minutes=30))
    report = desk.hq.step()
    assert report.escalated == 1 and report.notification_attempts == 1
    assert smtp.recipients[-1] == ["manager@example.com"]
    refused = desk.hq.post(desk.engineer, f"/api/v1/tickets/{t['id']}/escalate", {"reason": "more"})
    assert refused.status_code == 409 and "last level" in refused.text
    _refused(desk.hq.post(desk.engineer, f"/api/v1/tickets/{t['id']}/escalate", {}), "reason")


def test_dispatch_sets_the_onsite_deadline_and_a_missed_arrival_escalates(
    mailing_desk: Desk, smtp: Mailbox, clock: ManualClock
) -> None:
    desk = mailing_desk
    _ok(desk.hq.post(desk.admin, "/api/v1/escalation-chains", _chain_of(["duty@example.com"])), 201)
    customer = desk.customer("Hebei TV", desk.policy(A_TO_D, None))
    site = desk.site("tv-1")
    desk.under(site, customer["id"])
    t = desk.open(site, "A")
    t = desk.act(t["id"], "acknowledge")
    clock.advance(timedelta(minutes=10))
    sent = clock.now()
    path = f"/api/v1/tickets/{t['id']}/dispatch"
    _refused(desk.hq.post(desk.engineer, path, {"sent_at": sent.isoformat()}), "engineer")
    t = desk.act(t["id"], "dispatch", {"engineer": "Zhang Wei"})
    # On site within 120 min of the fault's report (24x7 for grade A).
    assert _at(t["onsite_due_at"]) == START + timedelta(minutes=120)
    assert t["dispatch"] == {"engineer": "Zhang Wei", "sent_at": sent.isoformat()}
    assert _at(t["onsite_escalation_at"]) == START + timedelta(minutes=120)
    assert t["history"][-1]["what"] == "dispatch"
    clock.advance(timedelta(minutes=5))
    t = desk.act(t["id"], "dispatch", {"left_at": clock.now().isoformat()})
    early = (sent - timedelta(minutes=1)).isoformat()
    _refused(desk.hq.post(desk.engineer, path, {"arrived_at": early}), "arrived_at")
    future = (clock.now() + timedelta(minutes=1)).isoformat()
    _refused(desk.hq.post(desk.engineer, path, {"arrived_at": future}), "arrived_at")

    clock.set(START + timedelta(minutes=119))
    assert desk.hq.step().escalated == 0
    clock.set(START + timedelta(minutes=120))
    report = desk.hq.step()
    assert report.escalated == 1 and smtp.recipients == [["duty@example.com"]]
    t = desk.ticket(t["id"])
    entry = t["history"][-2]
    assert entry["what"] == "escalated" and entry["data"]["kind"] == "onsite"
    assert "not on site by" in entry["detail"]
    assert t["onsite_escalation_level"] == 1 and t["onsite_escalation_at"] is None

    clock.advance(timedelta(minutes=20))
    t = desk.act(t["id"], "dispatch", {"arrived_at": clock.now().isoformat()})
    assert t["history"][-1]["data"]["late"] is True
    assert t["onsite_escalation_at"] is None
    clock.advance(timedelta(hours=2))
    t = desk.act(t["id"], "dispatch", {"left_site_at": clock.now().isoformat()})
    assert set(t["dispatch"]) == {"engineer", "sent_at", "left_at", "arrived_at", "left_site_at"}


def test_promised_fix_confirmation_and_customer_notifications_in_its_language(
    mailing_desk: Desk, smtp: Mailbox, clock: ManualClock
) -> None:
    desk = mailing_desk
    customer = desk.customer(
        "Hebei TV", None, language="zh", notify_acknowledged=True, notify_resolved=True
    )
    desk.contact(customer["id"], "Li Ming", "li@example.com")
    desk.contact(customer["id"], "Quiet", "quiet@example.com", notify=False)
    desk.contact(customer["id"], "No mail")
    site = desk.site("tv-1")
    desk.under(site, customer["id"])
    t = desk.open(site, 2)

    promised = START + timedelta(days=2)
    t = desk.act(t["id"], "plan", {"promised_fix_at": promised.isoformat(), "plan": "swap the PA"})
    assert (_at(t["promised_fix_at"]), t["plan"]) == (promised, "swap the PA")
    assert t["history"][-1]["what"] == "plan_changed"
    early = {"promised_fix_at": (START - timedelta(days=1)).isoformat()}
    _refused(
        desk.hq.post(desk.engineer, f"/api/v1/tickets/{t['id']}/plan", early), "promised_fix_at"
    )

    desk.act(t["id"], "acknowledge")
    assert desk.hq.step().notification_attempts == 1
    [mail] = smtp.messages
    assert smtp.recipients == [["li@example.com"]]
    assert _subject(mail).startswith(f"[{t['number']}] 故障已受理")
    text = _body(mail)
    # Times in the customer's zone (START is 16:00 in Shanghai).
    assert "Li Ming" in text and "2026-03-02 16:00 CST" in text

    clock.advance(timedelta(hours=3))
    resolution = {
        "cause": "PA module failed",
        "fix": "PA module swapped",
        "tested": True,
        "confirmed_by_customer": True,
        "confirmed_by": "Li Ming",
        "customer_opinion": "picture is back, thanks",
        "confirmed_at": (clock.now() - timedelta(minutes=5)).isoformat(),
    }
    bad = {**resolution, "confirmed_by": ""}
    _refused(desk.hq.post(desk.engineer, f"/api/v1/tickets/{t['id']}/resolve", bad), "confirmed_by")
    t = desk.act(t["id"], "resolve", resolution)
    assert t["resolution"]["confirmed_by"] == "Li Ming"
    assert t["resolution"]["customer_opinion"] == "picture is back, thanks"
    assert desk.hq.step().notification_attempts == 1
    assert "PA module swapped" in _body(smtp.messages[-1])
    assert _subject(smtp.messages[-1]).startswith(f"[{t['number']}] 故障已修复")

    # A confirmation given later, on the resolved ticket.
    clock.advance(timedelta(hours=1))
    body = {"confirmed_by": "Director Wu", "opinion": "satisfied"}
    t = desk.act(t["id"], "confirmation", body)
    assert t["resolution"]["confirmed_by"] == "Director Wu"
    assert _at(t["resolution"]["confirmed_at"]) == clock.now()
    assert t["history"][-1]["what"] == "customer_confirmed"

    # An English customer gets English text; a customer who did not ask gets nothing.
    english = desk.customer("Rural Radio", None, language="en", notify_acknowledged=True)
    desk.contact(english["id"], "Sam", "sam@example.com")
    other = desk.site("radio-1")
    desk.under(other, english["id"])
    t = desk.open(other, 3)
    desk.act(t["id"], "acknowledge")
    desk.hq.step()
    assert _subject(smtp.messages[-1]).startswith(f"[{t['number']}] Fault acknowledged")
    desk.act(
        t["id"],
        "resolve",
        {"cause": "c", "fix": "f", "tested": True, "confirmed_by_customer": False},
    )
    assert desk.hq.step().notification_attempts == 0


def _body(mail: Message) -> str:
    payload = mail.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode(mail.get_content_charset() or "utf-8")


def _subject(mail: Message) -> str:
    """The subject unfolded."""
    return " ".join(str(make_header(decode_header(str(mail["Subject"])))).split())


def test_a_persons_grade_stands_until_the_alarm_gets_worse(desk: Desk, clock: ManualClock) -> None:
    hq = desk.hq
    agent = hq.enroll("north")
    assert hq.post_events(agent, [hq.event(grade=3)]).status_code == 200
    [t] = hq.tickets(desk.admin)
    t = desk.act(t["id"], "regrade", {"grade": 2, "reason": "the customer says it is severe"})
    assert (t["grade"], t["customer_grade"]) == (2, "2")
    clock.advance(timedelta(minutes=5))
    # The alarm improves (3 -> 4): the person's grade stands.
    assert hq.post_events(agent, [hq.event("update", grade=4)]).status_code == 200
    assert desk.ticket(t["id"])["grade"] == 2
    # It gets worse than the person's grade: the alarm's grade applies again.
    assert hq.post_events(agent, [hq.event("update", grade=1)]).status_code == 200
    t = desk.ticket(t["id"])
    assert (t["grade"], t["customer_grade"]) == (1, "")
    assert t["history"][-1]["what"] == "grade_changed"


def test_openapi_documents_the_desk_routes_with_models_and_errors(hq: HQ) -> None:
    paths = hq.client.get("/openapi.json").json()["paths"]
    expected = {
        "/api/v1/customers": ["get", "post"],
        "/api/v1/customers/{customer_id}": ["get", "put"],
        "/api/v1/customers/{customer_id}/contacts": ["post"],
        "/api/v1/contacts/{contact_id}": ["put", "delete"],
        "/api/v1/sla-policies": ["get", "post"],
        "/api/v1/sla-policies/{policy_id}": ["get", "put"],
        "/api/v1/sites/{site_id}/customer": ["put"],
        "/api/v1/tickets": ["get", "post"],
        "/api/v1/tickets/{ticket_id}/regrade": ["post"],
        "/api/v1/tickets/{ticket_id}/escalate": ["post"],
        "/api/v1/tickets/{ticket_id}/dispatch": ["post"],
        "/api/v1/tickets/{ticket_id}/plan": ["post"],
        "/api/v1/tickets/{ticket_id}/confirmation": ["post"],
    }
    for path, methods in expected.items():
        for method in methods:
            codes = set(paths[path][method]["responses"])
            success = next(c for c in codes if c.startswith("2"))
            if success != "204":
                assert "$ref" in str(paths[path][method]["responses"][success]), (path, method)
            assert {"401", "403"} <= codes, (path, method)
            if method != "get":
                assert "422" in codes, (path, method)
            if "{" in path:
                assert "404" in codes, (path, method)
    for action in ("regrade", "escalate", "dispatch", "plan", "confirmation"):
        assert "409" in paths[f"/api/v1/tickets/{{ticket_id}}/{action}"]["post"]["responses"]
