"""Webhooks go to public addresses only, unless allow_private_webhooks: refused when a chain is
saved (an address or localhost name in the URL) and when sending (every address the name
resolves to). A real receiver on loopback shows what does, and does not, arrive."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from hq_server.core.clock import ManualClock
from hq_server.core.domain import Role
from hq_server.core.settings import Settings
from hq_server.store.models import EscalationChain
from tests.hq.conftest import HQ, START, start_hq
from tests.hq.receivers import WebhookReceiver, webhook

__all__ = ["webhook"]  # fixture

REFUSED = [
    ("http://127.0.0.1:8080/hook", "127.0.0.1 is a loopback address"),
    ("http://127.1/hook", "127.0.0.1 is a loopback address"),  # spelt short, stored normalised
    ("http://2130706433/hook", "127.0.0.1 is a loopback address"),
    ("http://[::1]/hook", "::1 is a loopback address"),
    ("http://[::ffff:127.0.0.1]/hook", "is a loopback address"),
    ("http://localhost:8080/hook", "localhost is this machine"),
    ("http://api.localhost/hook", "api.localhost is this machine"),
    ("https://10.20.0.1/hook", "10.20.0.1 is a private address"),
    ("http://172.16.5.4/hook", "172.16.5.4 is a private address"),
    ("http://192.168.1.10/hook", "192.168.1.10 is a private address"),
    ("http://169.254.169.254/latest/meta-data", "169.254.169.254 is a link-local address"),
    ("http://[fe80::1]/hook", "fe80::1 is a link-local address"),
    ("http://[fd12:3456::1]/hook", "fd12:3456::1 is a unique-local address"),
    ("http://224.0.0.251/hook", "224.0.0.251 is a multicast address"),
    ("http://0.0.0.0/hook", "0.0.0.0 is the unspecified address"),
    ("http://100.64.0.1/hook", "100.64.0.1 is not a public address"),
]


def _chain(*urls: str, name: str = "hooks") -> dict[str, Any]:
    email = {"name": "mail", "email": "duty@example.com"}
    contacts = [email, *({"name": f"hook{i}", "webhook_url": u} for i, u in enumerate(urls))]
    return {"name": name, "levels": [{"name": "duty", "delay_minutes": 0, "contacts": contacts}]}


def _chains(hq: HQ) -> int:
    with hq.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(EscalationChain)) or 0)


def test_a_chain_with_a_webhook_to_a_private_address_is_refused(hq: HQ) -> None:
    admin = hq.user_token(Role.ADMIN)
    for url, reason in REFUSED:
        response = hq.post(admin, "/api/v1/escalation-chains", _chain(url))
        assert response.status_code == 422, (url, response.text)
        (error,) = response.json()["detail"]
        assert error["loc"] == ["body", "levels", 0, "contacts", 1, "webhook_url"]
        assert error["msg"].startswith("levels[0].contacts[1].webhook_url: ")
        assert reason in error["msg"] and "allow_private_webhooks" in error["msg"], url
    assert _chains(hq) == 0


def test_put_is_checked_too_and_public_targets_pass(hq: HQ) -> None:
    admin = hq.user_token(Role.ADMIN)
    # Public: a name (checked again when sending) and a public address. Nothing is sent here.
    public = _chain("https://hooks.example.com/x", "http://93.184.216.34/x")
    created = hq.post(admin, "/api/v1/escalation-chains", public)
    assert created.status_code == 201, created.text
    chain_id = created.json()["id"]
    changed = _chain("https://hooks.example.com/x", "http://192.168.1.10/x")
    response = hq.call("PUT", admin, f"/api/v1/escalation-chains/{chain_id}", changed)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-3:] == ["contacts", 2, "webhook_url"]
    stored = hq.get(admin, f"/api/v1/escalation-chains/{chain_id}").json()
    assert [c["webhook_url"] for c in stored["levels"][0]["contacts"]][1:] == [
        "https://hooks.example.com/x",
        "http://93.184.216.34/x",
    ]


def test_the_setting_allows_them(migrated_url: str, clock: ManualClock, tmp_path: Path) -> None:
    settings = Settings.from_env({"STATIONWATCH_ALLOW_PRIVATE_WEBHOOKS": "true"})
    assert settings.allow_private_webhooks and not Settings().allow_private_webhooks
    with start_hq(migrated_url, clock, tmp_path, allow_private_webhooks=True) as hq:
        admin = hq.user_token(Role.ADMIN)
        urls = [url for url, _ in REFUSED]
        response = hq.post(admin, "/api/v1/escalation-chains", _chain(*urls))
        assert response.status_code == 201, response.text


def _escalate_once(hq: HQ) -> list[dict[str, Any]]:
    """Open a grade-1 ticket, pass its ack deadline, step; the ticket's notification entries."""
    admin = hq.user_token(Role.ADMIN)
    hq.post_events(hq.enroll(), [hq.event(grade=1)])
    ticket_id = hq.tickets(admin)[0]["id"]
    hq.clock.set(START + timedelta(minutes=10))
    hq.step()
    history = hq.get(admin, f"/api/v1/tickets/{ticket_id}").json()["history"]
    return [h for h in history if h["what"] == "notification" and h["data"]["channel"] == "webhook"]


def test_a_name_resolving_to_loopback_is_refused_when_sending(
    migrated_url: str, clock: ManualClock, tmp_path: Path, webhook: WebhookReceiver
) -> None:
    by_name = webhook.url.replace("127.0.0.1", "localhost")
    # Saved while allowed (or by an older HQ); the HQ sending it now does not allow it.
    with start_hq(migrated_url, clock, tmp_path, allow_private_webhooks=True) as hq:
        admin = hq.user_token(Role.ADMIN)
        chain = _chain(by_name, webhook.url)
        assert hq.post(admin, "/api/v1/escalation-chains", chain).status_code == 201
    with start_hq(migrated_url, clock, tmp_path, smtp_port=1, smtp_timeout=1) as hq:
        notes = _escalate_once(hq)
    assert webhook.requests == []
    by_target = {n["data"]["target"]: n for n in notes}
    assert set(by_target) == {by_name, webhook.url}
    assert not any(n["data"]["ok"] for n in notes)
    # The name was resolved: localhost is not refused for its name here, but for its address.
    assert (
        "not sent: localhost resolves to 127.0.0.1, a loopback address"
        in (by_target[by_name]["detail"])
        or "not sent: localhost resolves to ::1, a loopback address" in by_target[by_name]["detail"]
    )
    assert "not sent: 127.0.0.1 is a loopback address" in by_target[webhook.url]["detail"]
    assert "allow_private_webhooks" in by_target[webhook.url]["detail"]


def test_when_allowed_a_name_is_sent_to_the_address_it_resolved_to(
    migrated_url: str, clock: ManualClock, tmp_path: Path, webhook: WebhookReceiver
) -> None:
    by_name = webhook.url.replace("127.0.0.1", "localhost")
    with start_hq(
        migrated_url, clock, tmp_path, allow_private_webhooks=True, smtp_port=1, smtp_timeout=1
    ) as hq:
        admin = hq.user_token(Role.ADMIN)
        assert hq.post(admin, "/api/v1/escalation-chains", _chain(by_name)).status_code == 201
        notes = _escalate_once(hq)
    assert [n["data"]["ok"] for n in notes] == [True]
    (request,) = webhook.requests
    # Sent to the resolved address, still naming the host of the URL.
    assert request.headers["host"] == by_name.split("/")[2]
