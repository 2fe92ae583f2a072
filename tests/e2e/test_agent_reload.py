"""SIGHUP reloads the site config without losing the outbox or the fault state."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from stationwatch.demo import write_agent_config
from tests.e2e.conftest import start_sim
from tests.procs import Procs

pytestmark = pytest.mark.e2e


def events(state: Path) -> list[tuple[str, str]]:
    """(kind, fault key) of every event waiting in the outbox, in order."""
    if not (state / "outbox.sqlite").exists():
        return []  # the agent has not started yet
    db = sqlite3.connect(f"file:{state / 'outbox.sqlite'}?mode=ro", uri=True)
    try:
        bodies = [json.loads(b) for (b,) in db.execute("SELECT body FROM events ORDER BY seq")]
    finally:
        db.close()
    out = []
    for b in bodies:
        key = f"{b['device_id']}:{b['code']}" + (f":{b['component']}" if b["component"] else "")
        out.append((b["kind"], key))
    return out


def test_sighup_reload_keeps_outbox_and_faults(
    procs: Procs, stationwatch_cmd: list[str], tmp_path: Path
) -> None:
    manifest = start_sim(procs, stationwatch_cmd, tmp_path / "sim")
    # HQ is deliberately absent: every event stays in the outbox where the test can see it.
    site = write_agent_config(manifest, tmp_path / "agent", "http://127.0.0.1:9", poll_s=1.0)
    state = tmp_path / "agent" / "state"
    agent = procs.start("agent", [*stationwatch_cmd, "agent", "run", "--config", str(site)])
    sim = httpx.Client(base_url=manifest["control_url"], trust_env=False, timeout=5)
    try:
        assert sim.post("/devices/tx1/conditions", json={"condition": "off_air"}).is_success
        procs.wait_for("off air raised", lambda: ("raise", "tx1:off_air") in events(state), 30)

        config = yaml.safe_load(site.read_text())
        config["devices"] = [d for d in config["devices"] if d["id"] != "tx1"]
        config["devices"].append(
            {"id": "ups1", "profile": "no_such_profile", "snmp": {"host": "127.0.0.1"}}
        )
        site.write_text(yaml.safe_dump(config))
        agent.send_signal(signal.SIGHUP)
        procs.wait_for(
            "tx1's fault cleared and the bad device reported",
            lambda: (
                {("clear", "tx1:off_air"), ("raise", "ups1:config_invalid")} <= set(events(state))
            ),
            30,
        )
        assert events(state)[0] == ("raise", "tx1:off_air")  # nothing lost from before

        # A broken top level is refused; the agent keeps running its last good config.
        good = site.read_text()
        site.write_text("site: broken\n")
        agent.send_signal(signal.SIGHUP)
        assert sim.post("/devices/sw1/conditions", json={"condition": "port_down"}).is_success
        procs.wait_for(
            "polling goes on after a refused reload",
            lambda: ("raise", "sw1:port_down:Fa0/2") in events(state),
            30,
        )
        assert agent.poll() is None
        site.write_text(good)
        log = (tmp_path / "agent.log").read_text()
        assert "reload refused, keeping the running config" in log
        assert "hq: Field required" in log
        status = subprocess.run(
            [*stationwatch_cmd, "agent", "status", "--config", str(site)],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert "enrolled: no" in status.stdout and "event(s) waiting" in status.stdout
        assert re.search(r"^sw1\s+ok\s+cisco_ios_switch$", status.stdout, re.M), status.stdout
    finally:
        sim.close()
