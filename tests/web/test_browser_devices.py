"""The device pages in a real browser (Playwright driving Debian's chromium, headless) against
real HQ, simulator and agent processes, one set for this module (tests/web/test_browser.py's
fixtures): an engineer asks for a poll of the transmitter and sees the job run and its readings
without reloading; backs up the PBX's configuration before and after a change and opens the
side-by-side diff. axe-core finds no serious or critical violation on the device page and the
diff; screenshots in both languages go to test-output/console/."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.web import test_browser as shared
from tests.web.test_browser import WAIT_MS, Stack, check_accessibility, login, screenshot

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
    _device(page, "tx1")
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
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("#values")).to_have_text("最新读数")
    screenshot(page, "device-zh")
    for path, name in (("/devices", "devices"), ("/alarms", "alarms")):
        page.goto(path)
        screenshot(page, f"{name}-zh")
    page.get_by_label("语言").select_option("en")
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
