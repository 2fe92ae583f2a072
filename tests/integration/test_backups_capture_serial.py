"""Config and log dumps over a serial maintenance port (a pty played by a small device thread):
the configuration is scrubbed and versioned, the event log yields only new lines."""

from __future__ import annotations

import os
import threading
import tty
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from collectors.backups import ConfigStore, backup_device
from collectors.errors import DeviceUnreachable
from collectors.logs import LogCollector, LogCursors
from collectors.profiles import LogCommand, Profile, builtin_profiles
from collectors.serial import SerialCollector
from collectors.targets import SerialTarget

pytestmark = pytest.mark.integration

CONFIG = """\
# TX-2 exciter configuration
# Saved: 2026-11-23 08:00:00
frequency 98.300
power-setpoint 1000
snmp community TxC0mmunity
admin password Adm1nPass
"""


@dataclass
class FakeDevice:
    """A transmitter's maintenance port: STATUS?, SHOW CONFIG (ends with END), SHOW LOG."""

    master: int
    config: str = CONFIG
    log: list[str] = field(default_factory=lambda: ["08:00 boot", "08:01 on air"])
    silent: bool = False
    stop: threading.Event = field(default_factory=threading.Event)

    def serve(self) -> None:
        """Answer requests until stopped (runs in a thread)."""
        buf = b""
        while not self.stop.is_set():
            try:
                chunk = os.read(self.master, 1024)
            except OSError:
                return
            buf += chunk
            while b"\r\n" in buf:
                line, buf = buf.split(b"\r\n", 1)
                self.answer(line.decode())

    def answer(self, request: str) -> None:
        if self.silent:
            return
        out = request + "\r\n"  # echo, as a terminal-style port does
        if request == "SHOW CONFIG":
            out += self.config.replace("\n", "\r\n") + "END\r\n"
        elif request == "SHOW LOG":
            out += "".join(f"{line}\r\n" for line in self.log)  # no end marker: idle ends it
        os.write(self.master, out.encode())


@pytest.fixture
def device() -> Iterator[tuple[FakeDevice, str]]:
    """A pty pair: the device thread on the master, the slave's path for the collector."""
    master, slave = os.openpty()
    tty.setraw(slave)
    dev = FakeDevice(master)
    thread = threading.Thread(target=dev.serve, daemon=True)
    thread.start()
    yield dev, os.ttyname(slave)
    dev.stop.set()
    os.close(slave)
    os.close(master)
    thread.join(timeout=5)


def _profile() -> Profile:
    base = builtin_profiles()["generic_serial_tx"]
    assert base.serial is not None
    serial = base.serial.model_copy(
        update={
            "config_command": "SHOW CONFIG",
            "log_commands": [LogCommand(name="event_log", command="SHOW LOG")],
            "dump_idle_s": 0.3,
        }
    )
    data = base.model_dump(by_alias=True) | {
        "serial": serial.model_dump(),
        "backup": {"via": "serial", "secrets": [r"\bcommunity[ \t]+(?P<secret>\S+)"]},
    }
    return Profile.model_validate(data)


async def test_serial_config_backup_scrubbed_and_versioned(
    device: tuple[FakeDevice, str], tmp_path: Path
) -> None:
    """The dump ends at END, the echo is dropped, secrets are gone, a real change counts."""
    dev, port = device
    profile = _profile()
    assert profile.serial is not None
    collector = SerialCollector("tx2", SerialTarget(port=port, timeout_s=2), profile.serial)
    store = ConfigStore(tmp_path)
    try:
        first = await backup_device("tx2", collector, profile, store)
        assert first.status == "first"
        assert "frequency 98.300" in first.text and "SHOW CONFIG" not in first.text
        assert "TxC0mmunity" not in first.text and "Adm1nPass" not in first.text
        dev.config = CONFIG.replace("08:00:00", "09:30:00")
        assert (await backup_device("tx2", collector, profile, store)).status == "noise"
        dev.config = CONFIG.replace("98.300", "98.500")
        changed = await backup_device("tx2", collector, profile, store)
        assert changed.status == "changed" and "+frequency 98.500" in changed.diff
    finally:
        await collector.close()


async def test_serial_log_dump_only_new_lines(
    device: tuple[FakeDevice, str], tmp_path: Path
) -> None:
    """A log dump without end marker ends when the line goes quiet; only new lines count."""
    dev, port = device
    profile = _profile()
    assert profile.serial is not None
    collector = SerialCollector("tx2", SerialTarget(port=port, timeout_s=2), profile.serial)
    logs = LogCollector(
        "tx2", collector, profile.serial.log_commands, LogCursors(tmp_path / "cursors.json")
    )
    try:
        assert await logs.collect() == []
        dev.log += ["09:00 PA fan failure", "09:01 reflected power high"]
        assert [r.value for r in await logs.collect()] == [
            "09:00 PA fan failure",
            "09:01 reflected power high",
        ]
        dev.silent = True
        with pytest.raises(DeviceUnreachable, match="no answer"):
            await collector.run_commands(["SHOW LOG"])
    finally:
        await collector.close()
