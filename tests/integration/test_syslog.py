"""Syslog over real UDP on loopback (util-linux logger(1) and a socket), mapped to devices and
graded by log patterns; MCU logs over real SSH (OpenSSH sshd) with only-new-lines cursors."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from checks.logpatterns import LogPatternChecker
from checks.profile_rules import builtin_profiles
from checks.tracker import FaultTracker
from collectors.base import Reading
from collectors.logs import LogCollector, LogCursors
from collectors.profiles import LogCommand, SshSource
from collectors.ssh import SshCollector
from collectors.syslog import SyslogListener, SyslogSettings
from collectors.targets import SshTarget
from protocol.wire import EventKind
from tests.peers import require_binary, start_sshd

pytestmark = pytest.mark.integration


@pytest.fixture
async def listener() -> AsyncIterator[SyslogListener]:
    """A listener on a free loopback port; 127.0.0.1 is the PBX."""
    rx = SyslogListener(
        SyslogSettings(host="127.0.0.1", port=0, rate_per_s=100, burst=20), {"127.0.0.1": "pbx1"}
    )
    await rx.start()
    yield rx
    rx.close()


async def _logger(port: int, *args: str) -> None:
    exe = require_binary("logger", "/usr/bin")
    proc = await asyncio.create_subprocess_exec(
        exe, "--server", "127.0.0.1", "--port", str(port), "--udp", *args
    )
    assert await asyncio.wait_for(proc.wait(), 10) == 0


async def _collect(rx: SyslogListener, count: int) -> list[Reading]:
    got: list[Reading] = []
    deadline = time.monotonic() + 10
    while len(got) < count and time.monotonic() < deadline:
        got += await rx.next_batch(wait_s=0.5)
    return got


async def test_logger_rfc5424_and_rfc3164_graded(listener: SyslogListener) -> None:
    """logger(1) messages in both formats reach the PBX's log patterns as graded faults."""
    await _logger(listener.port, "--rfc5424", "-t", "alarmd", "-p", "local7.err",
                  "TRUNK-2 E1 loss of signal")  # fmt: skip
    await _logger(listener.port, "--rfc3164", "-t", "envd", "PSU fan 1 failure")
    lines = await _collect(listener, 2)
    texts = [str(r.value) for r in lines]
    assert texts == ["err: alarmd: TRUNK-2 E1 loss of signal", "notice: envd: PSU fan 1 failure"]
    assert {r.device for r in lines} == {"pbx1"} and {r.kind for r in lines} == {"log"}

    checker = LogPatternChecker(builtin_profiles()["generic_pbx_ssh"].log_patterns)
    tracker = FaultTracker()
    changes = tracker.apply("pbx1", checker.evaluate(lines, tracker.view("pbx1")))
    assert sorted((c.code, c.component, int(c.grade)) for c in changes) == [
        ("e1_loss_of_signal", "TRUNK-2", 2),
        ("fan_failure", "", 3),
    ]
    await _logger(listener.port, "--rfc5424", "-t", "alarmd", "TRUNK-2 E1 signal restored")
    restored = await _collect(listener, 1)
    [clear] = tracker.apply("pbx1", checker.evaluate(restored, tracker.view("pbx1")))
    assert (clear.kind, clear.component) == (EventKind.CLEAR, "TRUNK-2")


async def _received(rx: SyslogListener, count: int) -> int:
    """Wait until the listener has seen `count` datagrams from 127.0.0.1 (or 10 s passed)."""
    deadline = time.monotonic() + 10
    while True:
        c = rx.counters().get("127.0.0.1")
        seen = c.received if c else 0
        if seen >= count or time.monotonic() > deadline:
            return seen
        await asyncio.sleep(0.01)  # polling interval of the condition, not synchronisation


async def test_flood_is_rate_limited_and_unknown_sources_counted() -> None:
    """A burst beyond the bucket is counted, not queued; other sources are not attributed."""
    settings = SyslogSettings(host="127.0.0.1", port=0, rate_per_s=1, burst=20)
    known = SyslogListener(settings, {"127.0.0.1": "sw1"})
    stranger = SyslogListener(settings, {})
    await known.start()
    await stranger.start()

    def flood() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(300):
                msg = f"<27>Nov 23 10:00:00 sw1 link: port {i} down".encode()
                s.sendto(msg, ("127.0.0.1", known.port))
                s.sendto(msg, ("127.0.0.1", stranger.port))

    try:
        await asyncio.to_thread(flood)
        assert await _received(known, 300) == 300
        assert await _received(stranger, 300) == 300
        got = await known.next_batch(max_items=1000, wait_s=1)
        c = known.counters()["127.0.0.1"]
        assert 20 <= c.accepted == len(got) <= 25
        assert c.rate_limited == 300 - c.accepted
        assert stranger.counters()["127.0.0.1"].unknown_source == 300
    finally:
        known.close()
        stranger.close()


async def test_mcu_logs_over_ssh_only_new_lines(tmp_path: Path) -> None:
    """Error/call logs read over SSH: history skipped, new lines only, even after a restart."""
    peer = await asyncio.to_thread(start_sshd, tmp_path / "sshd")
    try:
        logs = tmp_path / "logs"
        logs.mkdir()
        errors, calls = logs / "errors.log", logs / "calls.log"
        errors.write_text(
            "2026-11-23 08:00 E1-1 loss of signal\n2026-11-23 08:05 E1-1 signal restored\n"
        )
        calls.write_text("08:10 call 100 -> 200 connected\n")
        target = SshTarget(
            host="127.0.0.1",
            port=peer.port,
            username=os.environ.get("USER", "root"),
            key_file=peer.extra["client_key"],
            timeout_s=5,
        )
        ssh = SshCollector("mcu1", target, SshSource(mode="exec"), tmp_path / "known_hosts")
        log_cmds = [
            LogCommand(name="error_log", command=f"cat {errors}"),
            LogCommand(name="call_log", command=f"cat {calls}"),
        ]
        cursors = LogCursors(tmp_path / "state" / "log_cursors.json")
        collector = LogCollector("mcu1", ssh, log_cmds, cursors)
        assert await collector.collect() == []  # first read: cursor only

        with errors.open("a") as f:
            f.write("2026-11-23 09:00 E1-2 loss of signal\n2026-11-23 09:01 fan 2 failed\n")
        with calls.open("a") as f:
            f.write("09:02 call 101 -> 300 failed: no answer\n")
        new = await collector.collect()
        assert [(r.metric, r.value) for r in new] == [
            ("error_log", "2026-11-23 09:00 E1-2 loss of signal"),
            ("error_log", "2026-11-23 09:01 fan 2 failed"),
            ("call_log", "09:02 call 101 -> 300 failed: no answer"),
        ]
        checker = LogPatternChecker(builtin_profiles()["generic_mcu_ssh"].log_patterns)
        tracker = FaultTracker()
        changes = tracker.apply("mcu1", checker.evaluate(new, tracker.view("mcu1")))
        assert sorted((c.code, c.component, int(c.grade)) for c in changes) == [
            ("call_failures", "", 3),
            ("e1_loss_of_signal", "E1-2", 2),
            ("fan_failure", "", 3),
        ]
        restarted = LogCollector("mcu1", ssh, log_cmds, LogCursors(cursors.path))
        assert await restarted.collect() == []
    finally:
        peer.stop()
