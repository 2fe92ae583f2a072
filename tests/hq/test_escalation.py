"""Escalation chains and notifications, driven by a manual clock and the scheduler's step:
real webhook and SMTP receivers on loopback, restarts in the middle of an escalation."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from hq_server.core.clock import ManualClock
from hq_server.core.domain import Role
from hq_server.store.models import Notification, Ticket
from hq_server.tickets.notify import IDEMPOTENCY_HEADER, SIGNATURE_HEADER
from tests.hq.conftest import HQ, START
from tests.hq.conftest import start_hq as _start_hq
from tests.hq.receivers import Mailbox, WebhookReceiver, smtp, webhook

__all__ = ["smtp", "webhook"]  # fixtures

SECRET = "hook-secret-123"


def start_hq(
    url: str, clock: ManualClock, tmp_path: Path, **overrides: Any
) -> AbstractContextManager[HQ]:
    """HQ that may send webhooks to the loopback receivers (by default it refuses them)."""
    return _start_hq(url, clock, tmp_path, allow_private_webhooks=True, **overrides)


@pytest.fixture
def hq(migrated_url: str, clock: ManualClock, tmp_path: Path) -> Iterator[HQ]:
    """The conftest's HQ, allowed to send webhooks to loopback."""
    with start_hq(migrated_url, clock, tmp_path) as started:
        yield started


def _chain(webhook_url: str) -> dict[str, Any]:
    return {
        "name": "default",
        "levels": [
            {
                "name": "on-duty engineer",
                "delay_minutes": 0,
                "contacts": [
                    {"name": "duty", "webhook_url": webhook_url, "webhook_secret": SECRET}
                ],
            },
            {
                "name": "department manager",
                "delay_minutes": 15,
                "delay_clock": "wall",
                "contacts": [{"name": "Manager Liu", "email": "liu@example.com"}],
            },
            {
                "name": "customer-service centre manager",
                "delay_minutes": 30,
                "contacts": [{"name": "CSC Chen", "email": "chen@example.com"}],
            },
        ],
    }


@pytest.fixture
def hqn(migrated_url: str, clock: ManualClock, tmp_path: Path, smtp: Mailbox) -> Iterator[HQ]:
    """HQ whose notifications go to the loopback SMTP server."""
    with start_hq(migrated_url, clock, tmp_path, smtp_port=smtp.port, webhook_timeout=5) as h:
        yield h


def _history(hq: HQ, token: str, ticket_id: int) -> list[dict[str, Any]]:
    body: dict[str, Any] = hq.get(token, f"/api/v1/tickets/{ticket_id}").json()
    return list(body["history"])


def _escalations(hq: HQ, token: str, ticket_id: int) -> list[tuple[str, int]]:
    return [
        (h["data"]["kind"], h["data"]["level"])
        for h in _history(hq, token, ticket_id)
        if h["what"] == "escalated"
    ]


def _open(hq: HQ, grade: int = 1) -> tuple[str, int]:
    agent = hq.enroll()
    hq.post_events(agent, [hq.event(grade=grade)])
    admin = hq.user_token(Role.ADMIN)
    return admin, hq.tickets(admin)[0]["id"]


def test_chain_validation(hq: HQ) -> None:
    admin = hq.user_token(Role.ADMIN)
    good = _chain("http://127.0.0.1:9/hook")
    response = hq.post(admin, "/api/v1/escalation-chains", good)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["levels"][0]["contacts"][0]["has_webhook_secret"] is True
    assert SECRET not in response.text
    assert hq.post(admin, "/api/v1/escalation-chains", good).status_code == 409
    no_method = json.loads(json.dumps(good))
    no_method["customer"] = "ACME"
    no_method["levels"][1]["contacts"] = [{"name": "nobody"}]
    response = hq.post(admin, "/api/v1/escalation-chains", no_method)
    assert response.status_code == 422
    assert "needs an email, a webhook_url or a user" in response.text
    no_contacts = {**no_method, "levels": [{"name": "x", "delay_minutes": 0, "contacts": []}]}
    assert hq.post(admin, "/api/v1/escalation-chains", no_contacts).status_code == 422
    engineer = hq.user_token(Role.ENGINEER)
    assert hq.post(engineer, "/api/v1/escalation-chains", good).status_code == 403
    assert hq.get(engineer, "/api/v1/escalation-chains").status_code == 200


def test_chain_is_chosen_by_customer_and_grade_and_copied_on_open(hq: HQ) -> None:
    admin = hq.user_token(Role.ADMIN)
    for customer, grade, name in (("", 0, "default"), ("", 1, "grade-1"), ("ACME", 0, "acme")):
        chain = {**_chain("http://127.0.0.1:9/h"), "customer": customer, "grade": grade}
        assert (
            hq.post(admin, "/api/v1/escalation-chains", {**chain, "name": name}).status_code == 201
        )
    agent = hq.enroll()
    hq.post_events(agent, [hq.event(grade=1), hq.event(grade=2, device_id="tx2")])
    by_grade = {t["grade"]: t["escalation_chain"] for t in hq.tickets(admin)}
    assert by_grade == {1: "grade-1", 2: "default"}
    # Editing the chain later does not change the copy on the open ticket.
    chains = hq.get(admin, "/api/v1/escalation-chains").json()
    grade1 = next(c for c in chains if c["name"] == "grade-1")
    assert hq.call("DELETE", admin, f"/api/v1/escalation-chains/{grade1['id']}").status_code == 204
    ticket = next(t for t in hq.tickets(admin) if t["grade"] == 1)
    detail = hq.get(admin, f"/api/v1/tickets/{ticket['id']}").json()
    assert detail["escalation"]["name"] == "grade-1"
    assert "webhook_secret" not in json.dumps(detail)


def test_ack_escalation_level_by_level_with_webhook_and_email(
    hqn: HQ, webhook: WebhookReceiver, smtp: Mailbox
) -> None:
    hq = hqn
    admin = hq.user_token(Role.ADMIN)
    hq.post(admin, "/api/v1/escalation-chains", _chain(webhook.url))
    _, ticket_id = _open(hq)  # grade 1 at 08:00: ack by 08:10, restore by 12:00
    hq.clock.advance(timedelta(minutes=9, seconds=59))
    assert hq.step().escalated == 0
    hq.clock.set(START + timedelta(minutes=10))
    report = hq.step()
    assert (report.escalated, report.notification_attempts) == (1, 1)
    assert _escalations(hq, admin, ticket_id) == [("ack", 1)]

    [request] = webhook.requests
    expected = "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers[SIGNATURE_HEADER.lower()] == expected
    assert request.headers[IDEMPOTENCY_HEADER.lower()] == f"escalation:{ticket_id}:ack:0:0:webhook"
    payload = json.loads(request.body)
    assert payload["ticket"]["id"] == ticket_id
    assert (payload["kind"], payload["level"], payload["contact"]) == ("ack", 1, "duty")

    # Level 2: 15 wall-clock minutes later, by e-mail.
    hq.clock.set(START + timedelta(minutes=24))
    assert hq.step().escalated == 0
    hq.clock.set(START + timedelta(minutes=25))
    assert hq.step().escalated == 1
    [mail] = smtp.messages
    assert smtp.recipients == [["liu@example.com"]]
    assert "not acknowledged" in mail["Subject"] and "level 2" in mail["Subject"]
    assert mail[IDEMPOTENCY_HEADER] == f"escalation:{ticket_id}:ack:1:0:email"

    # Acknowledging stops the ack escalation; nothing more until the restore deadline.
    engineer = hq.user_token(Role.ENGINEER)
    assert hq.post(engineer, f"/api/v1/tickets/{ticket_id}/acknowledge").status_code == 200
    hq.clock.set(START + timedelta(hours=3, minutes=59))
    assert hq.step().escalated == 0
    hq.clock.set(START + timedelta(hours=4))
    assert hq.step().escalated == 1
    assert _escalations(hq, admin, ticket_id) == [("ack", 1), ("ack", 2), ("restore", 1)]
    assert len(webhook.requests) == 2

    # Resolving stops the restore escalation too.
    hq.post(
        engineer,
        f"/api/v1/tickets/{ticket_id}/resolve",
        {"cause": "c", "fix": "f", "tested": True, "confirmed_by_customer": False},
    )
    hq.clock.advance(timedelta(days=2))
    assert hq.step().escalated == 0
    notes = [h for h in _history(hq, admin, ticket_id) if h["what"] == "notification"]
    assert [n["data"]["ok"] for n in notes] == [True, True, True]
    assert "attempt 1: sent" in notes[0]["detail"]


def test_webhook_retried_with_backoff_after_a_500(hqn: HQ, webhook: WebhookReceiver) -> None:
    hq = hqn
    admin = hq.user_token(Role.ADMIN)
    chain = _chain(webhook.url)
    chain["levels"] = chain["levels"][:1]
    hq.post(admin, "/api/v1/escalation-chains", chain)
    _, ticket_id = _open(hq)
    webhook.replies = [500, 503]
    hq.clock.set(START + timedelta(minutes=10))
    hq.step()
    assert len(webhook.requests) == 1
    hq.clock.advance(timedelta(seconds=29))  # first retry after 30 s (notify_backoff)
    assert hq.step().notification_attempts == 0
    hq.clock.advance(timedelta(seconds=1))
    assert hq.step().notification_attempts == 1
    hq.clock.advance(timedelta(seconds=59))  # second retry after 60 s more
    assert hq.step().notification_attempts == 0
    hq.clock.advance(timedelta(seconds=1))
    assert hq.step().notification_attempts == 1
    assert len(webhook.requests) == 3
    keys = {r.headers[IDEMPOTENCY_HEADER.lower()] for r in webhook.requests}
    assert keys == {f"escalation:{ticket_id}:ack:0:0:webhook"}
    notes = [h for h in _history(hq, admin, ticket_id) if h["what"] == "notification"]
    assert [n["data"]["attempt"] for n in notes] == [1, 2, 3]
    assert [n["data"]["ok"] for n in notes] == [False, False, True]
    assert "HTTP 500" in notes[0]["detail"]
    with hq.db.session() as session:
        row = session.scalars(select(Notification)).one()
        assert (row.status, row.attempts) == ("sent", 3)


def test_notification_gives_up_after_max_attempts(
    migrated_url: str, clock: ManualClock, tmp_path: Path
) -> None:
    with start_hq(
        migrated_url, clock, tmp_path, notify_max_attempts=2, smtp_port=1, smtp_timeout=2
    ) as hq:
        admin = hq.user_token(Role.ADMIN)
        chain = {
            "name": "mail",
            "levels": [
                {"name": "duty", "delay_minutes": 0, "contacts": [{"name": "a", "email": "a@b.cn"}]}
            ],
        }
        hq.post(admin, "/api/v1/escalation-chains", chain)
        _open(hq)
        clock.set(START + timedelta(minutes=10))
        hq.step()
        clock.advance(timedelta(minutes=1))
        hq.step()
        clock.advance(timedelta(hours=1))
        assert hq.step().notification_attempts == 0
        with hq.db.session() as session:
            row = session.scalars(select(Notification)).one()
            assert (row.status, row.attempts) == ("failed", 2)
            assert row.last_error


def test_restart_mid_escalation_neither_loses_nor_repeats_a_step(
    migrated_url: str, clock: ManualClock, tmp_path: Path, webhook: WebhookReceiver
) -> None:
    with start_hq(migrated_url, clock, tmp_path) as hq:
        admin = hq.user_token(Role.ADMIN)
        hq.post(admin, "/api/v1/escalation-chains", _chain(webhook.url))
        _, ticket_id = _open(hq)
        clock.set(START + timedelta(minutes=10))
        assert hq.step().escalated == 1
    # A new HQ process on the same database, at the same instant: nothing to repeat.
    with start_hq(migrated_url, clock, tmp_path) as hq:
        assert hq.step().escalated == 0
        clock.set(START + timedelta(hours=1))  # level 2 (08:25) and 3 (08:55) are both due
        assert hq.step().escalated == 2
    with start_hq(migrated_url, clock, tmp_path) as hq:
        assert hq.step().escalated == 0
        assert _escalations(hq, admin, ticket_id) == [("ack", 1), ("ack", 2), ("ack", 3)]
        with hq.db.session() as session:
            keys = session.scalars(select(Notification.idempotency_key)).all()
            ticket = session.get_one(Ticket, ticket_id)
            reached = (ticket.ack_escalation_level, ticket.ack_escalation_at)
    assert sorted(keys) == [
        f"escalation:{ticket_id}:ack:0:0:webhook",
        f"escalation:{ticket_id}:ack:1:0:email",
        f"escalation:{ticket_id}:ack:2:0:email",
    ]
    assert reached == (3, None)  # all three levels of the chain reached, none left
    assert len(webhook.requests) == 1


def test_escalation_without_any_chain_is_still_recorded(hq: HQ) -> None:
    admin, ticket_id = _open(hq)
    hq.clock.set(START + timedelta(minutes=10))
    assert hq.step().escalated == 1
    [entry] = [h for h in _history(hq, admin, ticket_id) if h["what"] == "escalated"]
    assert "on-duty engineer" in entry["detail"] and "no contacts" in entry["detail"]


def test_a_grade_without_a_restore_target_and_back_rearms_the_restore_escalation(
    hq: HQ,
) -> None:
    agent = hq.enroll()

    seen: dict[int, Any] = {}
    for kind, grade in [("raise", 2), ("update", 4), ("update", 3)]:
        assert hq.post_events(agent, [hq.event(kind, grade=grade)]).status_code == 200
        [ticket] = hq.tickets(hq.user_token())
        seen[grade] = (ticket["restore_escalation_level"], ticket["restore_escalation_at"])
    # Grade 4 has no restore target: its escalation stops; grade 3 has one: it runs again,
    # from grade 3's deadline (72 business hours, later than grade 2's 24 h).
    assert seen[2][1] is not None
    assert seen[4] == (0, None)
    deadline = datetime.fromisoformat(ticket["restore_due_at"].replace("Z", "+00:00"))
    step = datetime.fromisoformat(seen[3][1].replace("Z", "+00:00"))
    assert seen[3][0] == 0
    assert step >= deadline > datetime.fromisoformat(seen[2][1].replace("Z", "+00:00"))
