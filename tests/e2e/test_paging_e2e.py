"""Paging end to end with real processes (HQ, simulator, agent) and real local receivers:
DingTalk's and Feishu's signed robots and a generic webhook checked the way the vendors
document it (tests/channels/receivers.py), and an aiosmtpd SMTP server.

HQ's clock is moved through its clock offset file (`clock_offset_file`): the test puts HQ a
few minutes before midnight Asia/Shanghai, lets the page repeat, acknowledges through the
API and crosses the handover. Arrival times are recorded by the receivers (wall clock) and
compared with the ticket's opening; the test waits on what the receivers and HQ's database
show, never on sleeps.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from hq_server.tickets.paging import DIGEST_ITEMS
from stationwatch.demo import write_agent_config
from tests.channels.conftest import (
    DINGTALK_SECRET,
    DINGTALK_SIGNED,
    FEISHU_SECRET,
    FEISHU_SIGNED,
    WEBHOOK_SECRET,
    Mailbox,
    smtp_plain,  # noqa: F401 -- a fixture
    vendors,  # noqa: F401 -- a fixture
)
from tests.channels.receivers import Vendors
from tests.e2e.conftest import Hq, prefill, start_sim, write_site
from tests.peers import free_port
from tests.procs import Procs

pytestmark = pytest.mark.e2e

SHANGHAI = ZoneInfo("Asia/Shanghai")
SITE = "E2E station"
PASSWORD = "correct horse battery staple 42"


@dataclass
class Paging:
    """A running HQ set up for paging, and how to move its clock."""

    hq: Hq
    procs: Procs
    offset_file: Path

    def offset(self) -> timedelta:
        text = self.offset_file.read_text().strip() if self.offset_file.exists() else ""
        return timedelta(seconds=float(text or 0))

    def set_offset(self, offset: timedelta) -> None:
        self.offset_file.write_text(f"{offset.total_seconds():.3f}\n")

    def hq_now(self) -> datetime:
        return datetime.now(UTC) + self.offset()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        response = self.hq.api.request(method, path, json=body)
        assert response.status_code < 300, response.text
        return response.json() if response.content else None


def _env(clean_env: dict[str, str], offset_file: Path, smtp_port: int) -> dict[str, str]:
    return clean_env | {
        "STATIONWATCH_CONSOLE_URL": "https://console.example.net",
        "STATIONWATCH_CHANNEL_ALLOW_INSECURE": "true",
        "STATIONWATCH_CHANNEL_EXTRA_HOSTS": "127.0.0.1",
        "STATIONWATCH_ALLOW_PRIVATE_WEBHOOKS": "true",
        "STATIONWATCH_SMTP_HOST": "127.0.0.1",
        "STATIONWATCH_SMTP_PORT": str(smtp_port),
        "STATIONWATCH_SMTP_SENDER": "hq@example.net",
        "STATIONWATCH_SCHEDULER_INTERVAL": "0.5",
        "STATIONWATCH_PAGE_CONNECT_TIMEOUT": "3",
        "STATIONWATCH_PAGE_READ_TIMEOUT": "2",
        "STATIONWATCH_CLOCK_OFFSET_FILE": str(offset_file),
        # The clock jumps minutes ahead: heartbeats are not what this test is about.
        "STATIONWATCH_HEARTBEAT_TIMEOUT": "86400",
    }


@pytest.fixture
def paging(
    tmp_path: Path,
    stationwatch_cmd: list[str],
    clean_env: dict[str, str],
    smtp_plain: Mailbox,  # noqa: F811
) -> Iterator[Paging]:
    offset_file = tmp_path / "clock-offset"
    procs = Procs(tmp_path, clean_env)
    env = _env(clean_env, offset_file, smtp_plain.port)
    hq = Hq(procs, stationwatch_cmd, env, tmp_path / "hq")
    procs.env = env
    try:
        hq.start()
        yield Paging(hq, procs, offset_file)
    finally:
        hq.api.close()
        procs.stop_all()


def _users(p: Paging, *names: str) -> None:
    for name in names:
        p.call(
            "POST", "/api/v1/users", {"username": name, "role": "engineer", "password": PASSWORD}
        )


def _team(p: Paging, members: list[str], starts_on: str, backup: list[str] | None = None) -> None:
    team = p.call(
        "POST", "/api/v1/oncall/teams",
        {"name": "north", "timezone": "Asia/Shanghai", "sites": [SITE]},
    )  # fmt: skip
    for role, who in (("primary", members), ("backup", backup)):
        if who:
            body = {"period": "daily", "handover": "00:00", "starts_on": starts_on, "members": who}
            p.call("PUT", f"/api/v1/oncall/teams/{team['id']}/rotations/{role}", body)


def _ticket(p: Paging, fault_key: str) -> dict[str, Any] | None:
    return next((t for t in p.hq.tickets() if t["fault_key"] == fault_key), None)


def test_off_air_pages_on_duty_on_two_channels_repeats_stops_and_hands_over_at_midnight(
    paging: Paging,
    stationwatch_cmd: list[str],
    clean_env: dict[str, str],
    tmp_path: Path,
    vendors: Vendors,  # noqa: F811
    smtp_plain: Mailbox,  # noqa: F811
) -> None:
    p, wait = paging, paging.procs.wait_for
    # HQ's clock ten minutes before the next midnight in Shanghai.
    real = datetime.now(UTC)
    midnight = datetime.combine(
        real.astimezone(SHANGHAI).date() + timedelta(days=1), datetime.min.time(), SHANGHAI
    )
    p.set_offset(midnight - timedelta(minutes=10) - real)
    starts_on = (midnight - timedelta(days=1)).date().isoformat()

    _users(p, "li", "wang")
    p.call("PUT", "/api/v1/oncall/contacts/li", {"language": "zh-CN", "channels": [
        {"kind": "dingtalk", "webhook_url": f"{vendors.base}/robot/send?access_token="
         f"{DINGTALK_SIGNED}", "secret": DINGTALK_SECRET},
        {"kind": "email", "to": ["li@example.net"]},
    ]})  # fmt: skip
    p.call("PUT", "/api/v1/oncall/contacts/wang", {"language": "en", "channels": [
        {"kind": "webhook", "url": f"http://127.0.0.1:{free_port()}/hook",
         "secret": WEBHOOK_SECRET},
        {"kind": "feishu", "webhook_url": f"{vendors.base}/open-apis/bot/v2/hook/"
         f"{FEISHU_SIGNED}", "secret": FEISHU_SECRET},
    ]})  # fmt: skip
    _team(p, ["li", "wang"], starts_on)
    # Grade 1: on duty only (no backup rota here), on every channel at once, again every 5 min.
    p.call("PUT", "/api/v1/paging/policies/1", {
        "on_open": ["on_duty", "backup"], "on_raise": ["on_duty"], "repeat_minutes": 5,
        "all_channels": True,
    })  # fmt: skip

    manifest = start_sim(p.procs, stationwatch_cmd, tmp_path / "sim")
    site = write_agent_config(manifest, tmp_path / "agent", p.hq.url, poll_s=1.0)
    p.procs.start(
        "agent",
        [*stationwatch_cmd, "agent", "run", "--config", str(site)],
        env=clean_env | {"STATIONWATCH_ENROLL_TOKEN": p.hq.enroll_token(SITE)},
    )
    control = httpx.Client(base_url=manifest["control_url"], timeout=5, trust_env=False)
    try:
        assert control.post("/devices/tx1/conditions", json={"condition": "off_air"}).is_success
        ticket = wait("the off-air ticket", lambda: _ticket(p, "tx1:off_air"), 60)
        assert ticket["grade"] == 1 and ticket["on_duty"] == "li"
        wait("the page on DingTalk", lambda: vendors.of("dingtalk"), 10)
        wait("the page by e-mail", lambda: smtp_plain.messages, 10)
        # Within 2 s of the ticket opening (its opening on HQ's clock, less the offset).
        opened = datetime.fromisoformat(ticket["opened_at"]) - p.offset()
        robot_latency = vendors.of("dingtalk")[0].at - opened.timestamp()
        mail_latency = smtp_plain.arrived_at[0] - opened.timestamp()
        assert 0 <= robot_latency < 2 and 0 <= mail_latency < 2, (robot_latency, mail_latency)
        assert f"/tickets/{ticket['id']}" in vendors.of("dingtalk")[0].json()["markdown"]["text"]

        # Not acknowledged: five minutes later (HQ's clock) li is paged again.
        p.set_offset(p.offset() + timedelta(minutes=5, seconds=1))
        wait("the repeated page", lambda: len(vendors.of("dingtalk")) >= 2, 15)
        assert "故障仍未确认" in vendors.of("dingtalk")[1].json()["markdown"]["text"]
        assert [t["fault_key"] for t in p.hq.tickets()] == ["tx1:off_air"]

        # Acknowledged through the API: the repeats stop.
        p.call("POST", f"/api/v1/tickets/{ticket['id']}/acknowledge")
        pages_to_li = len(vendors.of("dingtalk"))
        p.set_offset(p.offset() + timedelta(minutes=5, seconds=1))  # past midnight, too

        def repeat_stopped() -> bool:
            rows = p.hq.query(
                "SELECT next_repeat_at FROM ticket_paging WHERE ticket_id = ?", ticket["id"]
            )
            return rows == [(None,)]

        wait("the repeat to be cancelled", repeat_stopped, 15)
        assert len(vendors.of("dingtalk")) == pages_to_li

        # After midnight in Shanghai wang is on duty: the next ticket pages wang, whose dead
        # webhook falls back to Feishu (one channel after the other, as grade 1 now says).
        p.call("PUT", "/api/v1/paging/policies/1", {
            "on_open": ["on_duty"], "on_raise": ["on_duty"], "repeat_minutes": 5,
        })  # fmt: skip
        assert control.post(
            "/devices/tx1/conditions", json={"condition": "reflected_high"}
        ).is_success
        second = wait(
            "a second ticket",
            lambda: next((t for t in p.hq.tickets() if t["id"] != ticket["id"]), None),
            60,
        )
        assert second["on_duty"] == "wang"
        wait("the page on Feishu", lambda: vendors.of("feishu"), 15)
        [feishu_page] = vendors.of("feishu")
        assert "Fault" in json.dumps(feishu_page.json())
        history = p.call("GET", f"/api/v1/tickets/{second['id']}")["history"]
        [sent] = [h for h in history if h["what"] == "notification"]
        assert [(a["kind"], a["ok"]) for a in sent["data"]["attempts"]] == [
            ("webhook", False),
            ("feishu", True),
        ]
    finally:
        control.close()


def test_500_tickets_of_an_outage_give_each_contact_a_handful_of_pages_and_one_digest(
    paging: Paging,
    stationwatch_cmd: list[str],
    clean_env: dict[str, str],
    tmp_path: Path,
    vendors: Vendors,  # noqa: F811
) -> None:
    p, wait = paging, paging.procs.wait_for
    _users(p, "li", "wang")
    for name, path in (("li", "/hook"), ("wang", "/hook")):
        p.call("PUT", f"/api/v1/oncall/contacts/{name}", {"channels": [
            {"kind": "webhook", "url": f"{vendors.base}{path}", "secret": WEBHOOK_SECRET},
        ]})  # fmt: skip
    _team(p, ["li"], "2026-01-01", backup=["wang"])
    # 500 grade-1 faults waiting in the agent's outbox when it starts: one upload.
    agent_dir = tmp_path / "agent"
    write_site(agent_dir, p.hq.url, site=SITE)
    prefill(agent_dir / "state", [1] * 500, prefix="outage")
    p.procs.start(
        "agent",
        [*stationwatch_cmd, "agent", "run", "--config", str(agent_dir / "site.yaml")],
        env=clean_env | {"STATIONWATCH_ENROLL_TOKEN": p.hq.enroll_token(SITE)},
    )
    wait("500 tickets", lambda: len(p.hq.tickets(limit=500)) >= 500, 120)
    limit = 5  # page_rate_limit

    wait("the pages", lambda: len(vendors.of("webhook")) >= 2 * limit, 30)
    # The digest is due two minutes later on HQ's clock.
    p.set_offset(p.offset() + timedelta(minutes=2, seconds=1))
    wait(
        "two digests",
        lambda: sum(r.json()["event"] == "digest" for r in vendors.of("webhook")) >= 2,
        30,
    )
    events = [r.json()["event"] for r in vendors.of("webhook")]
    assert events.count("opened") == 2 * limit
    assert events.count("digest") == 2
    digests = [r.json() for r in vendors.of("webhook") if r.json()["event"] == "digest"]
    # A digest lists the worst tickets (DIGEST_ITEMS) and counts all of them.
    assert [len(d["items"]) for d in digests] == [DIGEST_ITEMS, DIGEST_ITEMS]
    assert all("共495张工单" in d["subject"] for d in digests), [d["subject"] for d in digests]
    assert len(vendors.of("webhook")) == 2 * (limit + 1)
