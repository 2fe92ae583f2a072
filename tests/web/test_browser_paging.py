"""Acknowledge from where the page arrives, in a real browser (Playwright driving Debian's
chromium, headless) against real HQ, simulator and agent processes (tests/web/test_browser.py's
fixtures, one set for this module) and a real DingTalk robot receiver that checks the signature
as DingTalk documents it (tests/channels/receivers.py).

An engineer on duty (user, contact method and rota made through the API) is paged on DingTalk
when tx1 goes off air; the link in the message, opened in a browser with no session, leads
through the login page (axe-core finds no serious or critical violation there) back to that
ticket, where Acknowledge is the first action and has the keyboard focus. Once acknowledged, the
repeat that was due is cancelled instead of sent: HQ's clock is moved past it through its clock
offset file, as in tests/e2e/test_paging_e2e.py, and the test waits on what HQ's database, its
API and the receiver show, never on sleeps."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.channels.conftest import (
    DINGTALK_SECRET,
    DINGTALK_SIGNED,
    vendors,  # noqa: F401 -- a fixture
)
from tests.channels.receivers import Vendors
from tests.web import test_browser as shared
from tests.web.test_browser import PASSWORD, SITE, WAIT_MS, Stack, check_accessibility

# The shared fixtures: one set of processes and one browser for this module.
stack = shared.stack
browser = shared.browser
page = shared.page

pytestmark = pytest.mark.e2e

ENGINEER = "li"


@pytest.fixture(scope="module")
def offset_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """HQ's clock offset (seconds ahead of the wall clock), read at each reading of its clock."""
    path = tmp_path_factory.mktemp("clock") / "offset"
    path.write_text("0\n")
    return path


@pytest.fixture(scope="module")
def stack_env(offset_file: Path) -> dict[str, str]:
    """HQ for paging: channels may point at the loopback receiver; a clock that can be moved."""
    return {
        "STATIONWATCH_CHANNEL_ALLOW_INSECURE": "true",
        "STATIONWATCH_CHANNEL_EXTRA_HOSTS": "127.0.0.1",
        "STATIONWATCH_ALLOW_PRIVATE_WEBHOOKS": "true",
        "STATIONWATCH_SCHEDULER_INTERVAL": "0.5",
        "STATIONWATCH_CLOCK_OFFSET_FILE": str(offset_file),
        # The clock jumps minutes ahead: heartbeats are not what this test is about.
        "STATIONWATCH_HEARTBEAT_TIMEOUT": "86400",
    }


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    """HQ's API with an admin token made by the `hq token create` command."""
    exe = Path(sys.executable).with_name("stationwatch")
    sw = [str(exe)] if exe.exists() else [sys.executable, "-m", "stationwatch"]
    token = subprocess.run(
        [*sw, "hq", "token", "create", "--role", "admin", "--name", "paging",
         "--data-dir", str(stack.data_dir)],
        capture_output=True, text=True, env=shared._env(), check=True, timeout=60,
    ).stdout.strip()  # fmt: skip
    with httpx.Client(
        base_url=stack.url,
        timeout=10,
        trust_env=False,
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        yield client


def _call(api: httpx.Client, method: str, path: str, body: Any = None) -> Any:
    response = api.request(method, path, json=body)
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


def _move_clock(offset_file: Path, by: timedelta) -> None:
    ahead = float(offset_file.read_text().strip() or 0) + by.total_seconds()
    offset_file.write_text(f"{ahead:.3f}\n")


def test_the_link_in_a_page_leads_through_login_to_acknowledge_first(
    page: Page,
    stack: Stack,
    api: httpx.Client,
    offset_file: Path,
    vendors: Vendors,  # noqa: F811
) -> None:
    wait = stack.procs.wait_for
    # An engineer, paged on a signed DingTalk robot, always on duty for the station.
    _call(api, "POST", "/api/v1/users",
          {"username": ENGINEER, "role": "engineer", "password": PASSWORD})  # fmt: skip
    robot = f"{vendors.base}/robot/send?access_token={DINGTALK_SIGNED}"
    _call(api, "PUT", f"/api/v1/oncall/contacts/{ENGINEER}", {"language": "en", "channels": [
        {"kind": "dingtalk", "webhook_url": robot, "secret": DINGTALK_SECRET},
    ]})  # fmt: skip
    team = _call(api, "POST", "/api/v1/oncall/teams",
                 {"name": "south", "timezone": "Asia/Shanghai", "sites": [SITE]})  # fmt: skip
    _call(api, "PUT", f"/api/v1/oncall/teams/{team['id']}/rotations/primary", {
        "period": "daily", "handover": "00:00", "starts_on": "2026-01-01",
        "members": [ENGINEER],
    })  # fmt: skip
    # Grade 1 pages the engineer on duty at once and again every 5 minutes until acknowledged.
    _call(api, "PUT", "/api/v1/paging/policies/1",
          {"on_open": ["on_duty"], "on_raise": ["on_duty"], "repeat_minutes": 5})  # fmt: skip

    stack.sim("tx1", "off_air")
    wait("the page on DingTalk", lambda: vendors.of("dingtalk"), 45)
    [first] = vendors.of("dingtalk")
    assert first.answer == {"errcode": 0, "errmsg": "ok"}, first.answer
    found = re.search(re.escape(stack.url) + r"/tickets/(\d+)", first.json()["markdown"]["text"])
    assert found, first.json()
    link, ticket_id = found.group(0), int(found.group(1))
    ticket = _call(api, "GET", f"/api/v1/tickets/{ticket_id}")
    assert (ticket["fault_key"], ticket["on_duty"], ticket["status"]) == (
        "tx1:off_air", ENGINEER, "new",
    )  # fmt: skip

    # The link, in a browser with no session: the login page, then that ticket.
    page.goto(link)
    expect(page).to_have_url(f"{stack.url}/login?next=/tickets/{ticket_id}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Log in to StationWatch")
    check_accessibility(page, "login page from a page's link")
    page.get_by_label("User name").fill(ENGINEER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(link)
    expect(page.get_by_role("heading", level=1)).to_contain_text(ticket["number"])

    # Acknowledge is the first action, and the keyboard's focus is on it.
    acknowledge = page.locator("aside.actions button").first
    expect(acknowledge).to_have_accessible_name("Acknowledge")
    expect(acknowledge).to_be_focused()
    acknowledge.click()
    expect(page.locator("#ticket-status")).to_have_text("acknowledged")
    expect(page.locator("#ack-clock")).to_contain_text("acknowledged")
    assert _call(api, "GET", f"/api/v1/tickets/{ticket_id}")["status"] == "acknowledged"
    [(due,)] = stack.sql("SELECT next_repeat_at FROM ticket_paging WHERE ticket_id = ?", ticket_id)
    assert due is not None  # the repeat planned when the ticket opened

    # Past the repeat on HQ's clock: the repeat is cancelled, not sent.
    _move_clock(offset_file, timedelta(minutes=5, seconds=1))
    wait(
        "the repeat to be cancelled",
        lambda: (
            stack.sql("SELECT next_repeat_at FROM ticket_paging WHERE ticket_id = ?", ticket_id)
            == [(None,)]
        ),
        WAIT_MS / 1000,
    )
    history = _call(api, "GET", f"/api/v1/tickets/{ticket_id}")["history"]
    assert not [h for h in history if "repeat" in h["data"]], history
    assert len(vendors.of("dingtalk")) == 1
