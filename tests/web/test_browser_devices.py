"""The device, maintenance and administration pages in a real browser (Playwright driving
Debian's chromium, headless) against real HQ, simulator and agent processes, one set for this
module (tests/web/test_browser.py's fixtures): an engineer asks for a poll of the transmitter
and sees the job run and its readings without reloading; backs up the PBX's configuration
before and after a change and opens the side-by-side diff; an admin plans a maintenance window
(an end before the start is shown next to its field) and finds it in the audit log. axe-core
finds no serious or critical violation on these pages; screenshots in both languages go to
test-output/console/."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.web import test_browser as shared
from tests.web.test_browser import (
    PASSWORD,
    SITE,
    WAIT_MS,
    Stack,
    check_accessibility,
    login,
    screenshot,
)

# The shared fixtures: one set of processes and one browser for this module.
stack = shared.stack
browser = shared.browser
page = shared.page

pytestmark = pytest.mark.e2e


def _device(tab: Page, device_id: str) -> None:
    """From the device list to a device's page (the list fills in as heartbeats arrive)."""
    tab.goto("/devices")
    tab.get_by_role("link", name=device_id, exact=True).click(timeout=WAIT_MS)
    expect(tab.locator("h1")).to_contain_text(device_id)


def _answering(tab: Page, device_id: str) -> None:
    """Wait until the agent has identified and polled the device (its heartbeat says so): a
    poll job sent before that has nothing to poll yet."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while True:
        _device(tab, device_id)
        if tab.locator("#device-state").inner_text().strip() == "answering":
            return
        assert time.monotonic() < deadline, f"{device_id} never reported as answering"
        tab.wait_for_timeout(250)  # between page loads; the condition above is what is awaited


def _run(tab: Page, button: str, device_id: str) -> None:
    """Press a job button on the device page; wait on the job's page until it is done."""
    tab.evaluate("window.notReloaded = true")
    tab.get_by_role("button", name=button).click()
    status = tab.locator("#job-status")
    expect(status).to_be_visible()
    tab.evaluate("window.notReloaded = true")
    # The agent takes the job at its next long poll; the page follows without a reload.
    expect(status).to_have_attribute("data-status", "done", timeout=WAIT_MS)
    assert tab.evaluate("window.notReloaded") is True
    expect(tab.locator("#job-result")).to_have_text("passed")
    tab.locator("h1").get_by_role("link", name=device_id).click()


def test_poll_a_device_and_see_its_result(page: Page, stack: Stack) -> None:
    login(page, "erin", "/devices")
    _answering(page, "tx1")
    check_accessibility(page, "device page")
    screenshot(page, "device-en")
    _run(page, "Poll now", "tx1")
    values = page.locator("#last-values")
    expect(values).to_be_visible()
    expect(values).to_contain_text("forward_power")
    for path, name in (("/devices", "devices"), ("/alarms", "alarms")):
        page.goto(path)
        check_accessibility(page, name)
        screenshot(page, f"{name}-en")
    _device(page, "tx1")
    page.get_by_label("Language").select_option("zh_CN")
    page.get_by_role("button", name="Switch").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("#values")).to_have_text("最新读数")
    screenshot(page, "device-zh")
    for path, name in (("/devices", "devices"), ("/alarms", "alarms")):
        page.goto(path)
        screenshot(page, f"{name}-zh")
    page.get_by_label("语言").select_option("en")
    page.get_by_role("button", name="切换").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")


def test_back_up_a_configuration_twice_and_open_the_diff(page: Page, stack: Stack) -> None:
    login(page, "erin", "/devices")
    _device(page, "pbx1")
    _run(page, "Back up the configuration", "pbx1")
    stack.sim("pbx1", "config_changed")
    try:
        _run(page, "Back up the configuration", "pbx1")
    finally:
        stack.sim("pbx1", None)
    page.get_by_role("link", name=re.compile(r"^Changes from version")).first.click()
    diff = page.locator("#config-diff")
    expect(diff).to_be_visible()
    expect(diff.locator("tr.d-added, tr.d-changed").first).to_be_visible()
    check_accessibility(page, "config diff")
    screenshot(page, "config-diff-en")


def _admin(stack: Stack) -> None:
    """An admin user (the shared stack has an engineer and a viewer), added as the CLI does."""
    exe = Path(sys.executable).with_name("stationwatch")
    sw = [str(exe)] if exe.exists() else [sys.executable, "-m", "stationwatch"]
    subprocess.run(
        [*sw, "hq", "user", "add", "ada", "--role", "admin", "--data-dir", str(stack.data_dir)],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )


def test_an_admin_plans_maintenance_and_manages_users(page: Page, stack: Stack) -> None:
    _admin(stack)
    login(page, "ada", "/maintenance")
    page.get_by_label("Site (empty: every site)").fill(SITE)
    page.get_by_label("Starts (in the site's time zone)").fill("2026-12-24T22:00")
    page.get_by_label("Ends (in the site's time zone)").fill("2026-12-24T21:00")
    page.get_by_label("Reason").fill("Replace the UPS batteries")
    page.get_by_role("button", name="Plan the window").click()
    expect(page.locator("#e-ends_at")).to_be_visible()  # next to its field, nothing saved
    expect(page.get_by_label("Reason")).to_have_value("Replace the UPS batteries")
    check_accessibility(page, "maintenance")
    screenshot(page, "maintenance-en")
    page.get_by_label("Ends (in the site's time zone)").fill("2026-12-25T02:00")
    page.get_by_role("button", name="Plan the window").click()
    expect(page.locator("main table")).to_contain_text("Asia/Shanghai")
    page.goto("/admin/users")
    check_accessibility(page, "users")
    screenshot(page, "users-en")
    page.goto("/admin/audit")
    expect(page.locator("#audit")).to_contain_text("plan maintenance window")
    page.get_by_label("Language").select_option("zh_CN")
    page.get_by_role("button", name="Switch").click()
    expect(page.locator("h1")).to_have_text("审计日志")
    screenshot(page, "audit-zh")
    page.goto("/maintenance")
    screenshot(page, "maintenance-zh")
    page.get_by_label("语言").select_option("en")
    page.get_by_role("button", name="切换").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
