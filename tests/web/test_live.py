"""Live updates: the change feed, the database watermarks other replicas' changes are seen by,
and the /live stream of a real HQ process (a change arrives; stopping HQ ends the stream
instead of waiting for it)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from hq_server.core.changes import Change, ChangeFeed, Topic
from hq_server.core.domain import Role
from hq_server.web.live import frame, watermarks
from tests.hq.conftest import HQ
from tests.peers import free_port
from tests.procs import Procs
from tests.web.console import PASSWORD


async def test_a_closed_feed_ends_every_subscriber_and_new_ones() -> None:
    feed = ChangeFeed()
    sub = feed.subscribe()
    feed.publish(Change(Topic.TICKETS, (3,)))
    assert await asyncio.wait_for(sub.queue.get(), 5) == Change(Topic.TICKETS, (3,))
    feed.close()
    assert await asyncio.wait_for(sub.queue.get(), 5) is None
    late = feed.subscribe()
    assert late.queue.get_nowait() is None


def test_frame_is_one_server_sent_event() -> None:
    assert frame(Change(Topic.TICKETS, (1, 2))) == (
        'event: change\ndata: {"topic": "tickets", "ids": [1, 2]}\n\n'
    )


def test_watermarks_move_when_another_process_changes_things(hq: HQ) -> None:
    before = watermarks(hq.db)
    agent = hq.enroll()
    assert hq.post_events(agent, [hq.event()]).status_code == 200
    after = watermarks(hq.db)
    assert after[Topic.TICKETS] is not None and after[Topic.TICKETS] != before[Topic.TICKETS]
    assert after[Topic.ALARMS] != before[Topic.ALARMS]
    hq.clock.advance(timedelta(seconds=1))
    ticket = hq.tickets(hq.user_token())[0]["id"]
    assert hq.post(hq.user_token(Role.ENGINEER), f"/api/v1/tickets/{ticket}/acknowledge")
    assert watermarks(hq.db)[Topic.TICKETS] != after[Topic.TICKETS]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Procs, str, str]]:
    """`hq serve` with a user and an admin token: (processes, URL, admin token)."""
    exe = Path(sys.executable).with_name("stationwatch")
    sw = [str(exe)] if exe.exists() else [sys.executable, "-m", "stationwatch"]
    where = ["--data-dir", str(tmp_path / "hq")]

    def hq(*args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [*sw, "hq", *args, *where], input=stdin, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    hq("db", "upgrade")
    hq("user", "add", "erin", "--role", "engineer", stdin=PASSWORD + "\n")
    admin = hq("token", "create", "--role", "admin", "--name", "t")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    procs = Procs(tmp_path, {"PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1"})
    try:
        procs.start("hq", [*sw, "hq", "serve", "--port", str(port), *where])

        def up() -> bool:
            try:
                return httpx.get(f"{url}/healthz", timeout=1, trust_env=False).status_code == 200
            except httpx.HTTPError:
                return False

        procs.wait_for("HQ /healthz", up, 60)
        yield procs, url, admin
    finally:
        procs.stop_all()


@pytest.mark.e2e
def test_live_stream_of_a_real_hq_and_its_prompt_shutdown(
    served: tuple[Procs, str, str],
) -> None:
    procs, url, admin = served
    browser = httpx.Client(base_url=url, trust_env=False, timeout=30)
    page = browser.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    form = {"csrf_token": token[1], "username": "erin", "password": PASSWORD, "next": "/"}
    assert browser.post("/login", data=form).status_code == 303
    lines: list[str] = []
    connected = threading.Event()
    changed = threading.Event()
    ended = threading.Event()

    def listen() -> None:
        with browser.stream("GET", "/live", timeout=None) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            for line in stream.iter_lines():
                lines.append(line)
                if line == ": connected":
                    connected.set()
                if line.startswith("data:") and '"sites"' in line:
                    changed.set()
        ended.set()

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert connected.wait(30), lines
    # A site is created and enrolled through the API: the stream says sites changed.
    api = httpx.Client(base_url=url, trust_env=False, headers={"Authorization": f"Bearer {admin}"})
    assert api.post("/api/v1/sites", json={"name": "live"}).status_code == 201
    enroll = api.post("/api/v1/sites/1/enrollment-tokens", json={}).json()
    agent = httpx.post(
        f"{url}/api/v1/enroll",
        json={"enrollment_token": enroll["token"], "hostname": "b", "agent_version": "0.1.0"},
        timeout=10,
    ).json()["agent_token"]
    beat = {
        "agent_version": "0.1.1",
        "sent_at": datetime.now(UTC).isoformat(),
        "outbox_depth": 3,
        "dropped_events": 0,
        "last_seq": 0,
    }
    response = httpx.post(
        f"{url}/api/v1/heartbeat",
        json=beat,
        headers={"Authorization": f"Bearer {agent}"},
        timeout=10,
    )
    assert response.status_code in (200, 204), response.text
    assert changed.wait(30), lines
    # Stopping HQ ends the open stream instead of waiting for it forever.
    # (uvicorn ends by raising the signal again: -15, not -9 from Procs.stop's kill.)
    assert procs.stop("hq", timeout=20) in (0, -15)
    assert ended.wait(10)
    api.close()
    browser.close()
