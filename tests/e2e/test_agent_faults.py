"""Fault injection with real processes: nothing is lost, nothing is stored twice.

The agent, HQ and the simulator run as separate processes; faults are injected the rude way
(kill -9, HQ stopped, a proxy that makes HQ misbehave) and HQ's database is then read to check
that every event arrived exactly once.
"""

from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from stationwatch.demo import write_agent_config
from tests.e2e.conftest import Hq, outbox_depth, prefill, start_sim, write_site
from tests.procs import Procs

pytestmark = pytest.mark.e2e


def outbox_ids(state: Path) -> set[str]:
    db = sqlite3.connect(f"file:{state / 'outbox.sqlite'}?mode=ro", uri=True)
    try:
        return {r[0] for r in db.execute("SELECT event_id FROM events")}
    finally:
        db.close()


def hq_ids(hq: Hq) -> list[str]:
    return [str(r[0]).replace("-", "") for r in hq.query("SELECT event_id FROM events")]


def enroll(sw: list[str], site: Path, token: str, env: dict[str, str]) -> None:
    subprocess.run(
        [*sw, "agent", "enroll", "--config", str(site), "--token", token],
        check=True,
        capture_output=True,
        env=env,
        timeout=60,
    )


def test_kill_9_during_uploads_loses_and_duplicates_nothing(
    hq: Hq, procs: Procs, stationwatch_cmd: list[str], clean_env: dict[str, str], tmp_path: Path
) -> None:
    n = 6000
    hq.start()
    site = write_site(tmp_path / "agent", hq.url, outbox={"upload_batch": 100})
    state = tmp_path / "agent" / "state"
    enroll(stationwatch_cmd, site, hq.enroll_token(), clean_env)
    prefill(state, [i % 5 + 1 for i in range(n)])
    expected = {e.replace("-", "") for e in outbox_ids(state)}
    assert len(expected) == n

    def stored() -> int:
        return int(hq.query("SELECT count(*) FROM events")[0][0])

    agent = [*stationwatch_cmd, "agent", "run", "--config", str(site)]
    kills = 0
    while kills < 5 and stored() < n:
        before = stored()
        proc = procs.start("agent", agent)
        procs.wait_for("upload progress", lambda b=before: stored() > b, 60)  # type: ignore[misc]
        os.kill(proc.pid, signal.SIGKILL)
        procs.children.pop("agent").wait()
        kills += 1
    procs.start("agent", agent)
    procs.wait_for(
        "every event at HQ and an empty outbox",
        lambda: stored() >= n and outbox_depth(state) == 0,
        120,
    )
    got = hq_ids(hq)
    assert len(got) == n, "an event was stored twice"
    assert set(got) == expected, "an event was lost"
    assert kills >= 3


def test_hq_down_while_faults_are_raised_then_grade_1_arrives_first(
    hq: Hq, procs: Procs, stationwatch_cmd: list[str], clean_env: dict[str, str], tmp_path: Path
) -> None:
    manifest = start_sim(procs, stationwatch_cmd, tmp_path / "sim")
    hq.start()
    site = write_agent_config(manifest, tmp_path / "agent", hq.url, poll_s=1.0)
    state = tmp_path / "agent" / "state"
    enroll(stationwatch_cmd, site, hq.enroll_token(), clean_env)
    hq.stop()
    prefill(state, [3] * 1200)  # a backlog of minor faults from an earlier outage
    procs.start("agent", [*stationwatch_cmd, "agent", "run", "--config", str(site)])
    with httpx.Client(base_url=manifest["control_url"], trust_env=False, timeout=5) as sim:
        assert sim.post("/devices/tx1/conditions", json={"condition": "off_air"}).status_code == 200
    procs.wait_for("the off-air event in the outbox", lambda: outbox_depth(state) >= 1201, 30)

    hq.start()
    procs.wait_for("everything at HQ", lambda: outbox_depth(state) == 0, 60)
    rows = hq.query("SELECT code, grade FROM events ORDER BY id")
    assert len(rows) == 1201
    rank = next(i for i, (code, _) in enumerate(rows) if code == "off_air")
    assert rows[rank][1] == 1
    assert rank < 500, f"the grade-1 event came in position {rank}, after minor ones"
    procs.wait_for(
        "the grade-1 ticket",
        lambda: any(t["fault_key"] == "tx1:off_air" for t in hq.tickets(grade=1)),
        30,
    )


class FaultyProxy:
    """HQ behind a proxy that misbehaves on /api/v1/events as scripted, then forwards."""

    def __init__(self, upstream: str, script: list[str]) -> None:
        self.script = list(script)
        self.log: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        client = httpx.Client(base_url=upstream, trust_env=False, timeout=30)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fault = "pass"
                if self.path.startswith("/api/v1/events"):
                    with proxy._lock:
                        fault = proxy.script.pop(0) if proxy.script else "pass"
                        proxy.log.append((time.monotonic(), fault))
                if fault == "500":
                    return self._reply(500, b'{"detail":"boom"}')
                if fault == "garbage":
                    return self._reply(200, b"\x00\xffnot json at all")
                if fault == "429":
                    return self._reply(429, b"{}", {"Retry-After": "3"})
                if fault == "slow":
                    time.sleep(4)  # the fault itself: an HQ slower than the agent's timeout
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "content-length", "connection")
                }
                resp = client.request(method, self.path, content=body, headers=headers)
                self._reply(
                    resp.status_code,
                    resp.content,
                    {"Content-Type": resp.headers.get("content-type", "")},
                )

            def _reply(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                try:
                    self.send_response(code)
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the agent gave up waiting: that is the point of "slow"

            def do_GET(self) -> None:
                self._forward("GET")

            def do_POST(self) -> None:
                self._forward("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._client = client
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._client.close()


@pytest.fixture
def faulty(hq: Hq) -> Iterator[FaultyProxy]:
    hq.start()
    proxy = FaultyProxy(hq.url, ["500", "garbage", "slow", "500", "429"])
    yield proxy
    proxy.close()


def test_misbehaving_hq_loses_nothing_and_is_backed_off(
    hq: Hq,
    faulty: FaultyProxy,
    procs: Procs,
    stationwatch_cmd: list[str],
    clean_env: dict[str, str],
    tmp_path: Path,
) -> None:
    site = write_site(tmp_path / "agent", faulty.url)
    state = tmp_path / "agent" / "state"
    enroll(stationwatch_cmd, site, hq.enroll_token(), clean_env)
    prefill(state, [i % 5 + 1 for i in range(300)])
    expected = {e.replace("-", "") for e in outbox_ids(state)}
    procs.start("agent", [*stationwatch_cmd, "agent", "run", "--config", str(site)])
    procs.wait_for("all events delivered", lambda: outbox_depth(state) == 0, 90)
    got = hq_ids(hq)
    assert sorted(got) == sorted(expected)  # every event once: the "slow" batch was resent
    faults = [f for _, f in faulty.log]
    assert faults[:5] == ["500", "garbage", "slow", "500", "429"]
    times = [t for t, _ in faulty.log]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # Exponential backoff with equal jitter: retry n waits at least 2**n / 2 seconds.
    assert gaps[1] >= 1.0 and gaps[3] >= 4.0, gaps
    assert gaps[4] >= 3.0, f"Retry-After: 3 not honoured: {gaps}"


def test_full_outbox_drops_lowest_grades_and_reports_it(
    hq: Hq, procs: Procs, stationwatch_cmd: list[str], clean_env: dict[str, str], tmp_path: Path
) -> None:
    manifest = start_sim(procs, stationwatch_cmd, tmp_path / "sim")
    hq.start()
    site = write_agent_config(manifest, tmp_path / "agent", hq.url, poll_s=1.0)
    text = site.read_text().replace("devices:", "outbox:\n  max_events: 100\ndevices:", 1)
    site.write_text(text)
    state = tmp_path / "agent" / "state"
    enroll(stationwatch_cmd, site, hq.enroll_token(), clean_env)
    hq.stop()
    prefill(state, [5] * 45 + [1] * 54)
    procs.start("agent", [*stationwatch_cmd, "agent", "run", "--config", str(site)])
    with httpx.Client(base_url=manifest["control_url"], trust_env=False, timeout=5) as sim:
        for dev, cond in [
            ("tx1", "off_air"),
            ("sw1", "port_down"),
            ("sw1", "fan_alarm"),
            ("tx2", "fan_alarm"),
            ("pbx1", "trunk_down"),
        ]:
            assert sim.post(f"/devices/{dev}/conditions", json={"condition": cond}).is_success

    def dropped() -> int:
        db = sqlite3.connect(f"file:{state / 'outbox.sqlite'}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT v FROM meta WHERE k = 'dropped'").fetchone()
        finally:
            db.close()
        return int(row[0]) if row else 0

    procs.wait_for("live faults recorded and grade-5 events dropped", lambda: dropped() >= 5, 30)
    assert outbox_depth(state) == 100
    hq.start()
    procs.wait_for("the outbox drained", lambda: outbox_depth(state) == 0, 60)
    n_dropped = dropped()
    grades = [g for (g,) in hq.query("SELECT grade FROM events")]
    assert grades.count(1) >= 54 + 1  # every grade-1 event arrived (54 old, off air live)
    assert grades.count(5) == 45 - n_dropped  # only grade 5 was dropped
    assert {"off_air", "port_down", "fan_fault", "trunk_down"} <= {
        c for (c,) in hq.query("SELECT DISTINCT code FROM events")
    }

    def reported() -> bool:
        sites = hq.api.get("/api/v1/sites").json()
        return any(a["dropped_events"] == n_dropped for s in sites for a in s["agents"])

    procs.wait_for("the drop count reported to HQ", reported, 30)
