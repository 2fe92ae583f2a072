"""What the demo's console shows while a healthy station is polled: nothing at ERROR, no line
per SSH login or HTTP request (library loggers stay at WARNING unless asked for debug)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from stationwatch.demo import write_agent_config
from tests.e2e.conftest import Hq, start_sim
from tests.procs import Procs

pytestmark = pytest.mark.e2e

# paramiko's client and server lines for every SSH session, and uvicorn's access log.
CHATTER = ("Connected (version", "Auth granted", "Authentication (password) successful", '"GET /')


def test_a_healthy_station_logs_no_error_and_no_library_chatter(
    hq: Hq, procs: Procs, stationwatch_cmd: list[str], clean_env: dict[str, str], tmp_path: Path
) -> None:
    sw = stationwatch_cmd
    manifest = start_sim(procs, sw, tmp_path / "sim")
    hq.start()
    site = write_agent_config(manifest, tmp_path / "agent", hq.url, poll_s=1.0)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*sw, *args], capture_output=True, text=True, env=clean_env, check=True, timeout=60
        )

    run("agent", "enroll", "--config", str(site), "--token", hq.enroll_token())
    procs.start("agent", [*sw, "agent", "run", "--config", str(site)])
    control = ["--control-url", manifest["control_url"]]

    def pbx_alarms() -> list[object]:
        alarms = hq.api.get("/api/v1/alarms", params={"active": "true"}).json()
        return [a for a in alarms if a["device_id"] == "pbx1"]

    # A fault and its end, each seen through an SSH poll of the PBX: the agent polled it.
    run("sim", "set", "pbx1", "trunk_down", *control)
    procs.wait_for("the PBX's alarm at HQ", pbx_alarms, 60)
    run("sim", "reset", "pbx1", *control)
    procs.wait_for("the PBX's alarm to clear", lambda: not pbx_alarms(), 60)
    polls = [run("agent", "poll", "--config", str(site), "pbx1") for _ in range(3)]
    assert all("TRUNK-4" in p.stdout for p in polls)
    # Asked for, the libraries speak again.
    debug = run("agent", "poll", "--config", str(site), "pbx1", "--log-level", "debug")
    assert "paramiko.transport" in debug.stderr
    assert "Authentication (password) successful" in debug.stderr
    for name in ("agent", "sim", "hq"):
        procs.stop(name)

    logs = {p.name: p.read_text(errors="replace") for p in tmp_path.glob("*.log")}
    logs["agent poll"] = "".join(p.stderr for p in polls)
    assert set(logs) >= {"agent.log", "sim.log", "hq.log"}
    for name, text in logs.items():
        errors = [line for line in text.splitlines() if " ERROR " in f" {line} "]
        assert errors == [], (name, errors)
        chatter = [line for line in text.splitlines() if any(c in line for c in CHATTER)]
        assert chatter == [], (name, chatter[:5])
