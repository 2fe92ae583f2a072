"""Paging in HQ, on SQLite and PostgreSQL, with real local receivers (DingTalk, WeCom, Feishu,
webhook receivers that check the vendors' schemes; an aiosmtpd server): on-call teams and the
gaps they leave, contact methods refused with the field named, a grade-1 ticket paging the
on-duty engineer and the backup at once and again until acknowledged, fallback to the next
channel, the rate limit and its one digest, a grade raised, undelivered pages told to the
backup and the service manager, unreachable contacts, the handover at midnight Asia/Shanghai."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from hq_server.access.users import create_user
from hq_server.core.clock import ManualClock
from hq_server.core.domain import Role
from hq_server.store.models import Notification, PageDigestItem
from hq_server.tickets.notify import stable_message_id
from hq_server.tickets.paging import DIGEST_ITEMS
from tests.channels.conftest import (
    DINGTALK_SECRET,
    DINGTALK_SIGNED,
    FEISHU_SECRET,
    FEISHU_SIGNED,
    WEBHOOK_SECRET,
    WECOM_KEY,
    Mailbox,
    smtp_plain,  # noqa: F401 -- a fixture
    vendors,  # noqa: F401 -- a fixture
)
from tests.channels.receivers import Vendors
from tests.hq.conftest import HQ, start_hq
from tests.peers import free_port

PASSWORD = "correct horse battery staple 42"
CONSOLE = "https://console.example.net"
DINGTALK = "https://oapi.dingtalk.com/robot/send?access_token="
SMS = "https://sms.example.net/send?to={phone}"


def paging_settings(smtp_port: int) -> dict[str, Any]:
    """HQ settings for paging through receivers on 127.0.0.1."""
    return {
        "console_url": CONSOLE,
        "channel_allow_insecure": True,
        "channel_extra_hosts": ("127.0.0.1",),
        "allow_private_webhooks": True,
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "smtp_sender": "hq@example.net",
        "page_connect_timeout": 3.0,
        "page_read_timeout": 2.0,
    }


@pytest.fixture
def phq(
    migrated_url: str,
    clock: ManualClock,
    tmp_path: Path,
    smtp_plain: Mailbox,  # noqa: F811
) -> Iterator[HQ]:
    """HQ paging through the local receivers."""
    with start_hq(migrated_url, clock, tmp_path, **paging_settings(smtp_plain.port)) as started:
        yield started


def add_users(hq: HQ, *names: str, role: Role = Role.ENGINEER) -> None:
    """HQ users who can be on duty."""
    with hq.db.writer() as session, session.begin():
        for name in names:
            create_user(session, name, role, PASSWORD, hq.clock.now())


def dingtalk(v: Vendors) -> dict[str, Any]:
    return {
        "kind": "dingtalk",
        "webhook_url": f"{v.base}/robot/send?access_token={DINGTALK_SIGNED}",
        "secret": DINGTALK_SECRET,
    }


def feishu(v: Vendors) -> dict[str, Any]:
    return {
        "kind": "feishu",
        "webhook_url": f"{v.base}/open-apis/bot/v2/hook/{FEISHU_SIGNED}",
        "secret": FEISHU_SECRET,
    }


def wecom(v: Vendors) -> dict[str, Any]:
    return {"kind": "wecom", "webhook_url": f"{v.base}/cgi-bin/webhook/send?key={WECOM_KEY}"}


def webhook(v: Vendors) -> dict[str, Any]:
    return {"kind": "webhook", "url": f"{v.base}/hook", "secret": WEBHOOK_SECRET}


def dead_webhook() -> dict[str, Any]:
    """A webhook to a port nobody listens on."""
    return {"kind": "webhook", "url": f"http://127.0.0.1:{free_port()}/hook"}


def set_contact(
    hq: HQ, admin: str, user: str, channels: list[dict[str, Any]], language: str = "zh-CN"
) -> dict[str, Any]:
    response = hq.call(
        "PUT",
        admin,
        f"/api/v1/oncall/contacts/{user}",
        {"language": language, "channels": channels},
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def make_team(
    hq: HQ,
    admin: str,
    primary: list[str],
    backup: list[str] | None = None,
    *,
    manager: str = "",
    zone: str = "Asia/Shanghai",
    handover: str = "00:00",
    period: str = "daily",
    starts_on: str = "2026-03-01",
) -> dict[str, Any]:
    response = hq.post(
        admin,
        "/api/v1/oncall/teams",
        {"name": "north", "timezone": zone, "sites": ["site-a"], "service_manager": manager},
    )
    assert response.status_code == 201, response.text
    team: dict[str, Any] = response.json()
    for role, members in (("primary", primary), ("backup", backup)):
        if not members:
            continue
        body = {"period": period, "handover": handover, "starts_on": starts_on, "members": members}
        response = hq.call(
            "PUT", admin, f"/api/v1/oncall/teams/{team['id']}/rotations/{role}", body
        )
        assert response.status_code == 200, response.text
        team = response.json()
    return team


def pages(hq: HQ, **where: Any) -> list[Notification]:
    with hq.db.session() as session:
        stmt = select(Notification).where(Notification.channel == "page")
        for name, value in where.items():
            stmt = stmt.where(getattr(Notification, name) == value)
        return list(session.scalars(stmt.order_by(Notification.id)))


def open_ticket(hq: HQ, agent: str, **event: Any) -> dict[str, Any]:
    response = hq.post_events(agent, [hq.event(**event)])
    assert response.status_code == 200, response.text
    tickets = hq.tickets(hq.user_token(Role.VIEWER), open=True)
    return max(tickets, key=lambda t: t["id"])


# ---- rotas and gaps ----------------------------------------------------------------------------


def test_a_team_without_a_rota_is_all_gap_and_a_rotation_flags_what_it_leaves(phq: HQ) -> None:
    admin = phq.user_token(Role.ADMIN)
    add_users(phq, "li", "wang")
    response = phq.post(
        admin, "/api/v1/oncall/teams", {"name": "north", "timezone": "Asia/Shanghai"}
    )
    assert response.status_code == 201, response.text
    team = response.json()
    now = phq.clock.now()
    assert [(g["starts_at"], g["ends_at"]) for g in team["gaps"]] == [
        (_iso(now), _iso(now + timedelta(days=14)))
    ]
    # The rotation starts on 5 March (midnight Shanghai): the days before are a gap.
    body = {"period": "daily", "handover": "00:00", "starts_on": "2026-03-05", "members": ["li"]}
    response = phq.call("PUT", admin, f"/api/v1/oncall/teams/{team['id']}/rotations/primary", body)
    assert response.status_code == 200, response.text
    gap_end = datetime(2026, 3, 4, 16, 0, tzinfo=UTC)
    assert [(g["starts_at"], g["ends_at"]) for g in response.json()["gaps"]] == [
        (_iso(now), _iso(gap_end))
    ]
    # An override covers it; the overview's list of gaps is then empty.
    cover = {"username": "wang", "starts_at": _iso(now), "ends_at": _iso(gap_end)}
    response = phq.post(
        phq.user_token(Role.ENGINEER), f"/api/v1/oncall/teams/{team['id']}/overrides", cover
    )
    assert response.status_code == 201, response.text
    assert response.json()["gaps"] == []
    overview = phq.get(admin, "/api/v1/oncall/gaps").json()
    assert overview == [{"team_id": team["id"], "team": "north", "gaps": []}]
    duty = phq.get(admin, "/api/v1/oncall/duty").json()
    primary = next(d for d in duty if d["role"] == "primary")
    assert (primary["now"], primary["next"], primary["next_at"]) == ("wang", "li", _iso(gap_end))


def test_rotation_members_must_be_hq_users(phq: HQ) -> None:
    admin = phq.user_token(Role.ADMIN)
    add_users(phq, "li")
    team = phq.post(admin, "/api/v1/oncall/teams", {"name": "n", "timezone": "UTC"}).json()
    body = {"handover": "09:00", "starts_on": "2026-03-01", "members": ["li", "nobody"]}
    response = phq.call("PUT", admin, f"/api/v1/oncall/teams/{team['id']}/rotations/primary", body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "members", "1"]
    bad_zone = phq.post(admin, "/api/v1/oncall/teams", {"name": "m", "timezone": "Mars/Base"})
    assert bad_zone.status_code == 422
    assert bad_zone.json()["detail"][0]["loc"] == ["body", "timezone"]


# ---- contact methods ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "field"),
    [
        ({"kind": "webhook", "url": "ftp://example.net/hook"}, "url"),
        ({"kind": "dingtalk", "webhook_url": DINGTALK + "x"}, "webhook_url"),
        ({"kind": "dingtalk", "webhook_url": DINGTALK + "1" * 64, "secret": "short"}, "secret"),
        ({"kind": "sms", "url_template": SMS, "phone": "12345"}, "phone"),
        ({"kind": "pager"}, "kind"),
    ],
)  # fmt: skip
def test_a_malformed_channel_is_refused_with_the_field_named(
    phq: HQ, channel: dict[str, Any], field: str
) -> None:
    admin = phq.user_token(Role.ADMIN)
    add_users(phq, "li")
    response = phq.call(
        "PUT",
        admin,
        "/api/v1/oncall/contacts/li",
        {"channels": [{"kind": "email", "to": ["li@example.net"]}, channel]},
    )
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"][:4] == ["body", "channels", 1, field], error
    assert "short" not in error["msg"]  # a refused secret is never echoed


def test_contacts_show_targets_never_secrets_and_only_admins_set_others(
    phq: HQ,
    vendors: Vendors,  # noqa: F811
) -> None:
    admin = phq.user_token(Role.ADMIN)
    add_users(phq, "li", "wang")
    shown = set_contact(phq, admin, "li", [dingtalk(vendors), webhook(vendors)])
    assert [c["kind"] for c in shown["channels"]] == ["dingtalk", "webhook"]
    text = phq.get(admin, "/api/v1/oncall/contacts").text
    assert DINGTALK_SECRET not in text and WEBHOOK_SECRET not in text
    assert DINGTALK_SIGNED not in text  # the robot's token is a secret too
    engineer = phq.user_token(Role.ENGINEER, name="wang")
    response = phq.call(
        "PUT", engineer, "/api/v1/oncall/contacts/li", {"channels": [webhook(vendors)]}
    )
    assert response.status_code == 403


# ---- paging -------------------------------------------------------------------------------------


def test_grade_1_pages_on_duty_and_backup_at_once_repeats_and_stops_when_acknowledged(
    phq: HQ,
    vendors: Vendors,  # noqa: F811
    smtp_plain: Mailbox,  # noqa: F811
) -> None:
    admin = phq.user_token(Role.ADMIN)
    add_users(phq, "li", "wang")
    set_contact(phq, admin, "li", [dingtalk(vendors), webhook(vendors)], language="zh-CN")
    set_contact(phq, admin, "wang", [{"kind": "email", "to": ["wang@example.net"]}], "en")
    make_team(phq, admin, ["li"], ["wang"])
    agent = phq.enroll("site-a")

    ticket = open_ticket(phq, agent, grade=1)
    assert ticket["on_duty"] == "li"  # filled from the rota
    queued = pages(phq)
    assert sorted(p.target for p in queued) == ["li", "wang"]
    phq.step()
    [robot] = vendors.of("dingtalk")
    text = robot.json()["markdown"]["text"]
    assert "新故障" in text and "site-a" in text and "tx1" in text
    assert f"{CONSOLE}/tickets/{ticket['id']}" in text
    [mail] = smtp_plain.messages
    assert "New fault" in mail["Subject"] and "grade 1" in mail["Subject"]
    assert vendors.of("webhook") == []  # the first channel delivered: no fallback

    # Not acknowledged: paged again after 5 minutes (the grade-1 default), and again.
    phq.clock.advance(timedelta(minutes=5))
    report = phq.step()
    assert report.repeated_pages == 2
    assert len(vendors.of("dingtalk")) == 2
    assert "故障仍未确认" in vendors.of("dingtalk")[1].json()["markdown"]["text"]

    engineer = phq.user_token(Role.ENGINEER, name="li")
    response = phq.post(engineer, f"/api/v1/tickets/{ticket['id']}/acknowledge")
    assert response.status_code == 200, response.text
    phq.clock.advance(timedelta(minutes=30))
    assert phq.step().repeated_pages == 0
    assert len(vendors.of("dingtalk")) == 2
    history = phq.get(admin, f"/api/v1/tickets/{ticket['id']}").json()["history"]
    assert any(h["what"] == "paged" and "li" in h["detail"] for h in history)
    assert any(h["what"] == "notification" and h["data"]["kind"] == "repeat" for h in history)
    sent = phq.get(admin, f"/api/v1/tickets/{ticket['id']}/notifications").json()
    assert [(n["target"], n["kind"], n["status"]) for n in sent] == [
        ("li", "opened", "sent"),
        ("wang", "opened", "sent"),
        ("li", "repeat", "sent"),
        ("wang", "repeat", "sent"),
    ]


def test_a_failed_channel_falls_back_to_the_next(
    phq: HQ,
    vendors: Vendors,  # noqa: F811
) -> None:
    admin = phq.user_token(Role.ADMIN)
    add_users(phq, "li")
    set_contact(phq, admin, "li", [dead_webhook(), feishu(vendors), wecom(vendors)])
    make_team(phq, admin, ["li"])
    ticket = open_ticket(phq, phq.enroll("site-a"), grade=2)
    phq.step()
    assert len(vendors.of("feishu")) == 1 and vendors.of("wecom") == []
    [sent] = pages(phq)
    assert sent.status == "sent"
    detail = phq.get(admin, f"/api/v1/tickets/{ticket['id']}").json()["history"]
    [entry] = [h for h in detail if h["what"] == "notification"]
    assert [(a["kind"], a["ok"]) for a in entry["data"]["attempts"]] == [
        ("webhook", False),
        ("feishu", True),
    ]


def test_an_outage_sends_each_contact_a_handful_of_pages_and_one_digest(
    phq: HQ,
    vendors: Vendors,  # noqa: F811
) -> None:
    admin = phq.user_token(Role.ADMIN)
    add_users(phq, "li", "wang")
    set_contact(phq, admin, "li", [webhook(vendors)])
    set_contact(phq, admin, "wang", [wecom(vendors)])
    make_team(phq, admin, ["li"], ["wang"])
    agent = phq.enroll("site-a")
    events = [phq.event(device_id=f"tx{i}", grade=1) for i in range(60)]
    assert phq.post_events(agent, events).status_code == 200
    phq.step()
    limit = 5  # page_rate_limit's default
    assert len(vendors.of("webhook")) == limit and len(vendors.of("wecom")) == limit
    phq.clock.advance(timedelta(minutes=2))
    report = phq.step()
    assert report.digests == 2
    assert len(vendors.of("webhook")) == limit + 1
    digest = vendors.of("webhook")[-1].json()
    assert digest["event"] == "digest" and len(digest["items"]) == DIGEST_ITEMS
    assert "共55张工单" in digest["subject"]  # li reads Chinese
    with phq.db.session() as session:
        left = session.scalars(select(PageDigestItem).where(PageDigestItem.sent_at.is_(None)))
        assert list(left) == []
    # Still the limit later: the repeats after 5 minutes go to the next digest as well.
    phq.clock.advance(timedelta(minutes=3))
    phq.step()
    assert len(vendors.of("webhook")) <= 2 * limit + 2


def test_a_slow_endpoint_does_not_delay_the_page_to_another_contact(
    phq: HQ,
    vendors: Vendors,  # noqa: F811
) -> None:
    admin = phq.user_token(Role.ADMIN)
    add_users(phq, "li", "wang")
    # li's webhook holds every request (longer than the page read timeout of 2 s).
    slow = {"kind": "webhook", "url": f"{vendors.base}/slow/hook", "secret": WEBHOOK_SECRET}
    set_contact(phq, admin, "li", [slow])
    set_contact(phq, admin, "wang", [wecom(vendors)])
    make_team(phq, admin, ["li"], ["wang"])
    ticket = open_ticket(phq, phq.enroll("site-a"), grade=1)
    phq.step()
    [held] = vendors.of("webhook")
    [fast] = vendors.of("wecom")
    # wang's page arrived before li's attempt could have timed out (sent side by side).
    assert fast.at < held.at + 2.0
    history = phq.get(admin, f"/api/v1/tickets/{ticket['id']}").json()["history"]
    to_li = next(h for h in history if h["what"] == "notification" and h["data"]["target"] == "li")
    [attempt] = to_li["data"]["attempts"]
    assert attempt["ok"] is False and attempt["seconds"] >= 2.0


def test_a_grade_raised_pages_by_the_new_grades_policy(
    phq: HQ,
    vendors: Vendors,  # noqa: F811
) -> None:
    admin = phq.user_token(Role.ADMIN)
    add_users(phq, "li", "wang")
    set_contact(phq, admin, "li", [webhook(vendors)])
    set_contact(phq, admin, "wang", [webhook(vendors)])
    make_team(phq, admin, ["li"], ["wang"])
    agent = phq.enroll("site-a")
    open_ticket(phq, agent, grade=3)
    phq.step()
    assert [r.json()["event"] for r in vendors.of("webhook")] == ["opened"]  # grade 3: on duty
    assert phq.post_events(agent, [phq.event("update", grade=1)]).status_code == 200
    phq.step()
    assert sorted(r.json()["event"] for r in vendors.of("webhook")) == [
        "opened",
        "regraded",
        "regraded",
    ]


def test_a_person_raising_the_grade_pages_like_an_alarm_raising_it(
    phq: HQ,
    vendors: Vendors,  # noqa: F811
) -> None:
    admin = phq.user_token(Role.ADMIN)
    add_users(phq, "li", "wang")
    set_contact(phq, admin, "li", [webhook(vendors)])
    set_contact(phq, admin, "wang", [webhook(vendors)])
    make_team(phq, admin, ["li"], ["wang"])
    ticket = open_ticket(phq, phq.enroll("site-a"), grade=3)
    phq.step()
    assert [r.json()["event"] for r in vendors.of("webhook")] == ["opened"]
    engineer = phq.user_token(Role.ENGINEER, name="desk")
    body = {"grade": 1, "reason": "the customer says the station is off air"}
    assert phq.post(engineer, f"/api/v1/tickets/{ticket['id']}/regrade", body).status_code == 200
    phq.step()
    assert sorted(r.json()["event"] for r in vendors.of("webhook")) == [
        "opened",
        "regraded",
        "regraded",
    ]
    # A downgrade pages nobody.
    body = {"grade": 2, "reason": "back on air, reduced power"}
    assert phq.post(engineer, f"/api/v1/tickets/{ticket['id']}/regrade", body).status_code == 200
    phq.step()
    assert len(vendors.of("webhook")) == 3


def test_an_undelivered_page_alarms_backup_and_service_manager_and_shows_unreachable(
    phq: HQ,
    vendors: Vendors,  # noqa: F811
) -> None:
    admin = phq.user_token(Role.ADMIN)
    add_users(phq, "li", "wang", "boss")
    set_contact(phq, admin, "li", [dead_webhook()])
    set_contact(phq, admin, "wang", [webhook(vendors)])
    set_contact(phq, admin, "boss", [wecom(vendors)], language="en")
    # Grade 2 pages only the on-duty engineer; the backup hears of it only if that fails.
    make_team(phq, admin, ["li"], ["wang"], manager="boss")
    open_ticket(phq, phq.enroll("site-a"), grade=2)
    phq.step()
    assert vendors.of("webhook") == [] and vendors.of("wecom") == []
    phq.clock.advance(timedelta(seconds=61))
    report = phq.step()
    assert report.undelivered_alarms == 2
    [to_backup] = vendors.of("webhook")
    assert to_backup.json()["event"] == "undelivered"
    [to_manager] = vendors.of("wecom")
    assert "Page not delivered" in to_manager.json()["markdown"]["content"]
    assert "li" in to_manager.json()["markdown"]["content"]
    # Failing again and again: li is shown unreachable.
    for _ in range(3):
        phq.clock.advance(timedelta(minutes=10))
        phq.step()
    li = phq.get(admin, "/api/v1/oncall/contacts/li").json()
    assert li["unreachable"] is True and li["channels"][0]["failing"] is True
    assert phq.get(admin, "/api/v1/oncall/contacts/wang").json()["unreachable"] is False


def test_the_rota_hands_over_at_midnight_shanghai_and_the_next_ticket_pages_the_new_engineer(
    phq: HQ,
    vendors: Vendors,  # noqa: F811
) -> None:
    admin = phq.user_token(Role.ADMIN)
    add_users(phq, "li", "wang")
    set_contact(phq, admin, "li", [webhook(vendors)])
    set_contact(phq, admin, "wang", [wecom(vendors)])
    make_team(phq, admin, ["li", "wang"], handover="00:00", starts_on="2026-03-02")
    agent = phq.enroll("site-a")
    phq.clock.set(datetime(2026, 3, 2, 15, 59, 59, tzinfo=UTC))  # 23:59:59 in Shanghai
    first = open_ticket(phq, agent, device_id="tx1", grade=1)
    phq.clock.set(datetime(2026, 3, 2, 16, 0, 0, tzinfo=UTC))  # midnight in Shanghai
    second = open_ticket(phq, agent, device_id="tx2", grade=1)
    phq.step()
    assert (first["on_duty"], second["on_duty"]) == ("li", "wang")
    assert [r.json()["ticket"]["id"] for r in vendors.of("webhook")] == [first["id"]]
    assert len(vendors.of("wecom")) == 1


def test_an_escalation_chain_contact_can_be_the_on_duty_engineer_paged_on_their_channels(
    phq: HQ,
    vendors: Vendors,  # noqa: F811
) -> None:
    admin = phq.user_token(Role.ADMIN)
    add_users(phq, "li", "boss")
    set_contact(phq, admin, "li", [webhook(vendors)])
    set_contact(phq, admin, "boss", [wecom(vendors)], language="en")
    make_team(phq, admin, ["li"])
    chain = {
        "name": "paging",
        "levels": [
            {"name": "on duty", "delay_minutes": 0, "delay_clock": "wall",
             "contacts": [{"name": "on duty", "user": "@on_duty"}]},
            {"name": "manager", "delay_minutes": 30, "delay_clock": "wall",
             "contacts": [{"name": "boss", "user": "boss"}]},
        ],
    }  # fmt: skip
    response = phq.post(admin, "/api/v1/escalation-chains", chain)
    assert response.status_code == 201, response.text
    assert response.json()["levels"][0]["contacts"][0]["user"] == "@on_duty"
    open_ticket(phq, phq.enroll("site-a"), grade=3)  # grade 3: paged once, no repeats
    phq.step()
    assert [r.json()["event"] for r in vendors.of("webhook")] == ["opened"]
    # Grade 3: acknowledge within 2 working hours (from 08:30 on the default calendar).
    phq.clock.advance(timedelta(hours=3))
    phq.step()
    assert [r.json()["event"] for r in vendors.of("webhook")] == ["opened", "escalated"]
    phq.clock.advance(timedelta(minutes=30))
    phq.step()
    [to_boss] = vendors.of("wecom")
    assert "Fault escalated" in to_boss.json()["markdown"]["content"]


def test_due_notifications_are_claimed_most_urgent_first(phq: HQ) -> None:
    from hq_server.tickets import notify

    now = phq.clock.now()
    with phq.db.writer() as session, session.begin():
        for key, priority in (("minor", 4), ("major", 1), ("general", 3)):
            notify.enqueue(
                session, ticket_id=None, channel="page", target="nobody", secret_ref=None,
                payload={}, key=key, now=now, priority=priority,
            )  # fmt: skip
    settings = phq.client.app.state.settings  # type: ignore[attr-defined]
    claimed = notify._claim(phq.db, now, settings)
    assert [n.key for n in claimed] == ["major", "general", "minor"]


def test_e_mail_message_id_is_stable_per_notification() -> None:
    one = stable_message_id("page:7:opened:li", "example.net")
    assert one == stable_message_id("page:7:opened:li", "example.net")
    assert one != stable_message_id("page:7:opened:wang", "example.net")
    assert one.startswith("<") and one.endswith("@example.net>")


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
