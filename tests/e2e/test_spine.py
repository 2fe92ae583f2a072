"""The whole spine with real processes: simulator -> agent -> HQ -> ticket.

HQ (temporary SQLite), the simulated station and an enrolled agent run as separate processes,
exactly as the README's demo runs them. The test drives the station through its control API
and watches HQ's public API only.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from stationwatch.demo import write_agent_config
from tests.peers import free_port
from tests.procs import Procs

pytestmark = pytest.mark.e2e


class Stack:
    """Handles on the running HQ, simulator and agent."""

    def __init__(self, procs: Procs, hq_url: str, admin: str, control_url: str) -> None:
        self.procs = procs
        self.hq = httpx.Client(
            base_url=hq_url,
            headers={"Authorization": f"Bearer {admin}"},
            timeout=5,
            trust_env=False,
        )
        self.control = httpx.Client(base_url=control_url, timeout=5, trust_env=False)

    def close(self) -> None:
        self.hq.close()
        self.control.close()

    def tickets(self) -> list[dict[str, Any]]:
        resp = self.hq.get("/api/v1/tickets")
        resp.raise_for_status()
        return list(resp.json())

    def alarm(self, fault_key: str) -> dict[str, Any] | None:
        resp = self.hq.get("/api/v1/alarms")
        resp.raise_for_status()
        return next((a for a in resp.json() if a["fault_key"] == fault_key), None)

    def sim(self, device: str, condition: str | None) -> None:
        if condition is None:
            resp = self.control.post(f"/devices/{device}/reset")
        else:
            resp = self.control.post(f"/devices/{device}/conditions", json={"condition": condition})
        assert resp.status_code == 200, resp.text


@pytest.fixture
def stack(
    tmp_path: Path, stationwatch_cmd: list[str], clean_env: dict[str, str]
) -> Iterator[Stack]:
    sw = stationwatch_cmd
    hq_dir = ["--data-dir", str(tmp_path / "hq")]

    def capture(*args: str) -> str:
        out = subprocess.run(
            [*sw, *args], capture_output=True, text=True, env=clean_env, check=True, timeout=60
        )
        return out.stdout.strip()

    capture("hq", "db", "upgrade", *hq_dir)
    admin = capture("hq", "token", "create", "--role", "admin", "--name", "e2e", *hq_dir)
    enroll = capture("hq", "site", "add", "E2E station", *hq_dir)
    port = free_port()
    hq_url = f"http://127.0.0.1:{port}"
    procs = Procs(tmp_path, clean_env)
    try:
        procs.start("hq", [*sw, "hq", "serve", "--port", str(port), *hq_dir])

        def hq_up() -> bool:
            try:
                return httpx.get(f"{hq_url}/healthz", timeout=1, trust_env=False).status_code == 200
            except httpx.HTTPError:
                return False

        procs.wait_for("HQ /healthz", hq_up, 60)
        manifest_path = tmp_path / "sim" / "manifest.json"
        procs.start(
            "sim",
            [
                *sw,
                "sim",
                "run",
                "--workdir",
                str(tmp_path / "sim"),
                "--manifest",
                str(manifest_path),
                "--ephemeral-ports",
            ],
        )
        procs.wait_for("simulator manifest", manifest_path.exists, 60)
        manifest = json.loads(manifest_path.read_text())
        site = write_agent_config(manifest, tmp_path / "agent", hq_url, poll_s=1.0)
        procs.start(
            "agent",
            [*sw, "agent", "run", "--config", str(site)],
            env=clean_env | {"STATIONWATCH_ENROLL_TOKEN": enroll},
        )
        stack = Stack(procs, hq_url, admin, manifest["control_url"])
        yield stack
        stack.close()
    finally:
        procs.stop_all()


def test_off_air_opens_one_grade_1_ticket_and_clears(stack: Stack) -> None:
    wait = stack.procs.wait_for

    stack.sim("tx1", "off_air")
    ticket = wait(
        "a grade-1 ticket for tx1 off air",
        lambda: next((t for t in stack.tickets() if t["fault_key"] == "tx1:off_air"), None),
        30,
    )
    assert ticket["grade"] == 1
    assert ticket["status"] == "new"
    assert ticket["device_id"] == "tx1" and ticket["site"] == "E2E station"
    assert ticket["number"].startswith("SW-")
    opened = datetime.fromisoformat(ticket["opened_at"])
    ack_due = datetime.fromisoformat(ticket["ack_due_at"])
    assert (ack_due - opened).total_seconds() == 600  # grade 1: acknowledge within 10 minutes

    # Back on air: the alarm clears; the ticket stays for an engineer to resolve.
    stack.sim("tx1", None)
    wait(
        "the off-air alarm to clear",
        lambda: (a := stack.alarm("tx1:off_air")) is not None and not a["active"],
        30,
    )

    # Off air again while the first ticket is open: the alarm re-raises, no second ticket.
    stack.sim("tx1", "off_air")
    wait(
        "the off-air alarm to be raised again",
        lambda: (a := stack.alarm("tx1:off_air")) is not None and a["active"],
        30,
    )
    tickets = stack.tickets()
    assert [t["number"] for t in tickets if t["fault_key"] == "tx1:off_air"] == [ticket["number"]]
    # The healthy rest of the station raised nothing: no false alarms anywhere.
    assert [t["fault_key"] for t in tickets] == ["tx1:off_air"], tickets
