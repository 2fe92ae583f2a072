"""The console in a real browser: Playwright driving Debian's chromium (headless) against real
HQ, simulator and agent processes, one set for this module. A fault injected in the simulator
appears on the overview without a reload; an engineer acknowledges, comments on and resolves
its ticket; the pages switch to Chinese and back with dates in the site's zone; a viewer sees
no action and a forged one is refused; a form without its CSRF token is refused; an expired
session keeps what was typed; a fault reported by phone opens its ticket through the report
form. axe-core (vendored) finds no serious or critical violation on the overview, the ticket
list, a ticket's page and the report form; screenshots of each page in both languages go to
test-output/console/ for review."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from stationwatch.demo import write_agent_config
from tests.peers import free_port, missing_peer
from tests.procs import Procs

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "test-output" / "console"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
PASSWORD = "Correct-Horse-42-battery"
SITE = "Shanghai FM station"
# Generous bounds for processes on a loaded 2-core machine; waits end as soon as the page shows it.
WAIT_MS = 45_000

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - the dev extras install it
    sync_playwright = None  # type: ignore[assignment]


@dataclass
class Stack:
    """HQ (SQLite), the simulated station and an agent, running as processes."""

    procs: Procs
    url: str
    data_dir: Path
    control: httpx.Client

    def sim(self, device: str, condition: str | None) -> None:
        """Inject a fault in the simulator (None: back to normal)."""
        if condition is None:
            response = self.control.post(f"/devices/{device}/reset")
        else:
            response = self.control.post(
                f"/devices/{device}/conditions", json={"condition": condition}
            )
        assert response.status_code == 200, response.text

    def sql(self, statement: str, *args: Any) -> list[tuple[Any, ...]]:
        """Run SQL on HQ's database (to end sessions as the idle timeout would)."""
        db = sqlite3.connect(self.data_dir / "hq.sqlite3", timeout=10)
        try:
            with db:
                return db.execute(statement, args).fetchall()
        finally:
            db.close()


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, stack_env: dict[str, str]) -> Iterator[Stack]:
    """The processes, started once for this module; HQ's `console_url` is its own URL."""
    if sync_playwright is None:
        missing_peer("the Python package playwright (pip install -e '.[dev]')")
    if not CHROMIUM.exists():
        missing_peer(f"{CHROMIUM} (apt-get install chromium)")
    tmp = tmp_path_factory.mktemp("console")
    exe = Path(sys.executable).with_name("stationwatch")
    sw = [str(exe)] if exe.exists() else [sys.executable, "-m", "stationwatch"]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = _env() | stack_env | {"STATIONWATCH_CONSOLE_URL": url}
    where = ["--data-dir", str(tmp / "hq")]

    def hq(*args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [*sw, "hq", *args, *where],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            check=True,
            timeout=60,
        )
        return done.stdout.strip()

    hq("db", "upgrade")
    enroll = hq("site", "add", SITE, "--timezone", "Asia/Shanghai")
    for name, role in (("erin", "engineer"), ("vera", "viewer")):
        hq("user", "add", name, "--role", role, stdin=PASSWORD + "\n")
    procs = Procs(tmp, env)
    try:
        procs.start("hq", [*sw, "hq", "serve", "--port", str(port), *where])

        def up() -> bool:
            try:
                return httpx.get(f"{url}/healthz", timeout=1, trust_env=False).status_code == 200
            except httpx.HTTPError:
                return False

        procs.wait_for("HQ /healthz", up, 60)
        manifest_path = tmp / "sim" / "manifest.json"
        procs.start(
            "sim",
            [
                *sw,
                "sim",
                "run",
                "--workdir",
                str(tmp / "sim"),
                "--manifest",
                str(manifest_path),
                "--ephemeral-ports",
            ],
        )
        procs.wait_for("simulator manifest", manifest_path.exists, 60)
        manifest = json.loads(manifest_path.read_text())
        site = write_agent_config(manifest, tmp / "agent", url, poll_s=1.0)
        procs.start(
            "agent",
            [*sw, "agent", "run", "--config", str(site)],
            env=env | {"STATIONWATCH_ENROLL_TOKEN": enroll},
        )
        control = httpx.Client(base_url=manifest["control_url"], timeout=5, trust_env=False)
        yield Stack(procs, url, tmp / "hq", control)
        control.close()
    finally:
        procs.stop_all()


@pytest.fixture(scope="module")
def browser(stack: Stack) -> Iterator[Browser]:
    """Headless chromium (Debian's; Playwright downloads nothing)."""
    assert sync_playwright is not None
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield launched
        launched.close()


def _page(browser: Browser, stack: Stack, language: str = "en-GB") -> Iterator[Page]:
    context = browser.new_context(
        base_url=stack.url, locale=language, viewport={"width": 1366, "height": 768}
    )
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def page(browser: Browser, stack: Stack) -> Iterator[Page]:
    """A fresh browser context (no cookies) at 1366x768, English."""
    yield from _page(browser, stack)


def login(page: Page, user: str, path: str = "/") -> None:
    """Log in through the login form and land on `path`."""
    page.goto(path)
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).not_to_have_text("Log in to StationWatch")


def check_accessibility(page: Page, name: str) -> None:
    """No serious or critical axe-core violation on the page."""
    # Evaluated through the browser's debugging protocol: the page's Content-Security-Policy
    # (scripts from HQ only) would refuse it as a script tag.
    page.evaluate(AXE.read_text())
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    bad = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, f"{name}: {bad}"


def screenshot(page: Page, name: str) -> None:
    """Save the whole page for review."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def open_off_air_ticket(page: Page, stack: Stack) -> str:
    """The path of tx1's off-air ticket (tx1 put off air first if it has none). Any test may
    come first, on any worker: each worker has its own processes."""
    page.goto("/tickets?q=tx1")
    link = page.locator("#tickets-live tbody a").first
    if link.count() == 0:
        stack.sim("tx1", "off_air")
        page.goto("/tickets?q=tx1")
        page.wait_for_selector("#tickets-live tbody a")  # the list refreshes live
    href = page.locator("#tickets-live tbody a").first.get_attribute("href")
    assert href is not None
    return href


def test_a_fault_appears_live_and_an_engineer_works_its_ticket(page: Page, stack: Stack) -> None:
    refused: list[str] = []  # the page's own code never trips the Content-Security-Policy
    page.on("console", lambda m: refused.append(m.text) if "Content Security" in m.text else None)
    login(page, "erin")
    # Keyboard: the first Tab reaches the skip link, which moves the focus to the content.
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Skip to content")
    page.keyboard.press("Enter")
    expect(page.locator(":focus")).to_have_id("main")
    expect(page.locator("#overview-live")).to_contain_text(SITE)
    expect(page.locator("body")).to_have_attribute("data-live", "connected")
    page.evaluate("window.notReloaded = true")
    # tx2 is this test's own (the others use tx1): its fault is new whatever ran before.
    expect(page.locator("#overview-live")).not_to_contain_text("tx2: Transmitter off air")
    stack.sim("tx2", "off_air")
    # Without a reload: the grade-1 ticket shows in the deadline list, counting down.
    row = page.locator("#overview-live tr", has_text="tx2: Transmitter off air")
    expect(row).to_contain_text("1 Major")
    expect(row.locator(".countdown")).to_contain_text("left")
    assert page.evaluate("window.notReloaded") is True
    check_accessibility(page, "overview")
    screenshot(page, "overview-en")

    page.get_by_role("link", name="Tickets").click()
    expect(page.locator("#tickets-live")).to_contain_text("1 Major")
    check_accessibility(page, "ticket list")
    screenshot(page, "tickets-en")

    page.locator("#tickets-live tr", has_text="tx2: Transmitter off air").get_by_role(
        "link"
    ).click()
    ack_clock = page.locator("#ack-clock")
    expect(ack_clock.locator(".countdown")).to_be_visible()
    check_accessibility(page, "ticket page")
    screenshot(page, "ticket-en")

    page.get_by_role("button", name="Acknowledge").click()
    expect(page.locator("#ticket-status")).to_have_text("acknowledged")
    expect(ack_clock.locator(".countdown")).to_have_count(0)  # the countdown stopped
    expect(ack_clock).to_contain_text("acknowledged")

    page.get_by_label("What was seen").fill("Forward power 0 W, PA fault LED on")
    page.get_by_label("What was done").fill("Switched to the standby exciter")
    page.get_by_label("Minutes spent", exact=True).first.fill("20")
    page.get_by_role("button", name="Add comment").click()
    expect(page.locator(".timeline")).to_contain_text("Switched to the standby exciter")

    page.get_by_label("Cause").fill("PA module overheated")
    page.get_by_label("Fix", exact=True).fill("Replaced the PA module fan")
    page.get_by_label("Tested").check()
    page.get_by_label("Confirmed by the customer").check()
    page.get_by_role("button", name="Resolve").click()
    expect(page.locator("#ticket-status")).to_have_text("resolved")
    expect(page.locator("#restore-clock .countdown")).to_have_count(0)
    expect(page.get_by_text("Replaced the PA module fan").first).to_be_visible()
    stack.sim("tx2", None)
    assert not refused


def test_chinese_and_back_with_dates_in_the_sites_zone(page: Page, stack: Stack) -> None:
    login(page, "erin")
    ticket = open_off_air_ticket(page, stack)
    page.goto(ticket)
    page.get_by_label("Language").select_option("zh_CN")
    page.get_by_role("button", name="Switch").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("#facts")).to_have_text("工单")
    opened = page.locator("dl.facts dd").nth(4)
    expect(opened).to_contain_text("Asia/Shanghai")
    expect(opened).to_contain_text("年")
    screenshot(page, "ticket-zh")
    page.get_by_role("link", name="总览").click()
    expect(page.locator("h1")).to_have_text("总览")
    expect(page.locator("#overview-live")).to_contain_text("Asia/Shanghai")
    screenshot(page, "overview-zh")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    screenshot(page, "overview-phone-zh")
    page.set_viewport_size({"width": 1366, "height": 768})
    page.get_by_role("link", name="工单").click()
    screenshot(page, "tickets-zh")
    page.get_by_label("语言").select_option("en")
    page.get_by_role("button", name="切换").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("h1")).to_have_text("Tickets")


def test_a_viewer_cannot_acknowledge(page: Page, stack: Stack) -> None:
    login(page, "erin")
    ticket = open_off_air_ticket(page, stack)
    page.context.clear_cookies()
    login(page, "vera", ticket)
    expect(page.locator("#ticket-status")).to_be_visible()
    expect(page.get_by_role("button", name="Acknowledge")).to_have_count(0)
    expect(page.locator("form[action$='/resolve']")).to_have_count(0)
    token = page.locator("form[action='/logout'] input[name=csrf_token]").get_attribute("value")
    assert token
    forged = page.request.post(f"{ticket}/acknowledge", form={"csrf_token": token})
    assert forged.status == 403
    assert "engineer" in forged.text()


def test_a_form_without_its_csrf_token_is_refused(page: Page, stack: Stack) -> None:
    login(page, "erin")
    ticket = open_off_air_ticket(page, stack)
    page.goto(ticket)
    refused = page.request.post(f"{ticket}/comment", form={"seen": "no token", "done": ""})
    assert refused.status == 403
    assert "security token" in refused.text()
    page.reload()
    expect(page.locator(".timeline")).not_to_contain_text("no token")


def test_an_expired_session_returns_to_the_form_with_what_was_typed(
    page: Page, stack: Stack
) -> None:
    login(page, "erin")
    ticket = open_off_air_ticket(page, stack)
    page.goto(ticket)
    page.get_by_label("What was seen").fill("Typed before the session ended")
    stack.sql("DELETE FROM web_sessions")  # as the idle timeout would end it
    page.get_by_role("button", name="Add comment").click()
    expect(page.get_by_role("alert")).to_contain_text("Your session has ended")
    page.get_by_label("User name").fill("erin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("dl.kept")).to_contain_text("Typed before the session ended")
    page.get_by_role("button", name="Send").click()
    expect(page).to_have_url(f"{stack.url}{ticket}")
    expect(page.locator(".timeline")).to_contain_text("Typed before the session ended")


def test_a_fault_reported_by_phone_opens_its_ticket(page: Page, stack: Stack) -> None:
    login(page, "erin")
    page.get_by_role("link", name="Report a fault").click()
    page.get_by_label("Reported by").select_option("phone")
    page.get_by_label("Site").select_option(label=SITE)
    page.get_by_label("Grade given by the customer").fill("X")
    page.get_by_label("Symptom").fill("Listeners report hiss on 99.1 MHz")
    page.get_by_label("Reporter").fill("Mr Zhou")
    check_accessibility(page, "report form")
    page.get_by_role("button", name="Open the ticket").click()
    # Refused next to its field, with what was typed kept.
    expect(page.locator("#e-report-grade")).to_contain_text("use one of 1, 2, 3, 4, 5")
    expect(page.get_by_label("Symptom")).to_have_value("Listeners report hiss on 99.1 MHz")
    screenshot(page, "report-refused-en")
    page.get_by_label("Grade given by the customer").fill("2")
    page.get_by_role("button", name="Open the ticket").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("2 Severe")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Listeners report hiss")
    expect(page.locator("#ticket-source")).to_have_text("phone · Mr Zhou")
    # The same clocks as an alarm's ticket: grade 2 is acknowledged within 30 minutes.
    expect(page.locator("#ack-clock .countdown")).to_be_visible()
    page.get_by_label("Engineer").fill("Zhang Wei")
    page.get_by_role("button", name="Record").click()
    expect(page.locator("#dispatch")).to_contain_text("Zhang Wei · sent")
    check_accessibility(page, "reported ticket")
    screenshot(page, "reported-ticket-en")
