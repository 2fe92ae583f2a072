"""Traps (net-snmp's snmptrap) and syslog (UDP) reach the agent's tracker as graded faults."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from agent.config import load_config
from agent.runner import AgentRuntime
from tests.peers import require_binary

pytestmark = pytest.mark.integration


def site_config(tmp_path: Path) -> Path:
    creds = {
        "_traps": {"communities": ["trapcomm"]},
        "sw1": {"community": "public"},
        "pbx1": {"username": "maint", "password": "x"},
    }
    (tmp_path / "credentials.yaml").write_text(yaml.safe_dump(creds))
    (tmp_path / "credentials.yaml").chmod(0o600)
    config = {
        "site": "listeners",
        "hq": {"url": "http://127.0.0.1:9"},
        "state_dir": "state",
        "credentials_file": "credentials.yaml",
        "traps": {"enabled": True, "host": "127.0.0.1", "port": 0},
        "syslog": {"enabled": True, "host": "127.0.0.1", "port": 0},
        # Two devices, two loopback addresses: traps and syslog are matched by source address.
        "devices": [
            {"id": "sw1", "profile": "huawei_vrp", "snmp": {"host": "127.0.0.1"}},
            {"id": "pbx1", "profile": "generic_pbx_ssh", "ssh": {"host": "127.0.0.2"}},
        ],
    }
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def wait_active(rt: AgentRuntime, key: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while key not in rt.tracker.active:
        assert time.monotonic() < deadline, f"{key} never raised: {sorted(rt.tracker.active)}"
        await asyncio.sleep(0.05)


async def test_trap_and_syslog_become_faults(tmp_path: Path) -> None:
    snmptrap = require_binary("snmptrap")
    rt = AgentRuntime(load_config(site_config(tmp_path)), token=None)
    tasks = await rt.listeners.start()
    try:
        assert rt.listeners.trap_port and rt.listeners.syslog_port
        (tmp_path / "snmp.conf").write_text("mibs :\n")
        await asyncio.to_thread(
            subprocess.run,
            [
                snmptrap,
                "-v2c",
                "-c",
                "trapcomm",
                f"127.0.0.1:{rt.listeners.trap_port}",
                "",
                "1.3.6.1.6.3.1.1.5.3",
                "1.3.6.1.2.1.2.2.1.2.7",
                "s",
                "GigabitEthernet0/0/7",
            ],
            check=True,
            env={"SNMPCONFPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
            timeout=10,
        )
        await wait_active(rt, "sw1:link_down:GigabitEthernet0/0/7")

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.2", 0))
            msg = b"<131>Nov 23 14:40:00 PBX-01 alarmd: TRUNK-2 E1 loss of signal"
            s.sendto(msg, ("127.0.0.1", rt.listeners.syslog_port))
        await wait_active(rt, "pbx1:e1_loss_of_signal:TRUNK-2")
        fault = rt.tracker.active["pbx1:e1_loss_of_signal:TRUNK-2"]
        assert int(fault.grade) == 2
        events = {(e.kind.value, e.fault_key) for e in rt.outbox.pending()}
        assert ("raise", "pbx1:e1_loss_of_signal:TRUNK-2") in events
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await rt.close()
