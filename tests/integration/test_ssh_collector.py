"""SshCollector against real servers: OpenSSH sshd, hostile TCP peers and the simulated PBX."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import psutil
import pytest

from collectors.base import ReadingSet
from collectors.errors import AuthFailed, DeviceUnreachable, DeviceUnreadable, HostKeyMismatch
from collectors.profiles import SshSource, builtin_profiles
from collectors.ssh import SshCollector, host_key_name
from collectors.targets import SshTarget
from tests.peers import StartedPeer, free_port, ssh_keygen, start_sshd, wait_until

pytestmark = pytest.mark.integration

TRUNKS = "printf 'TRUNK-1   E1   UP     30/30\\nTRUNK-2   E1   DOWN    0/30\\n'"
EXEC_SOURCE = SshSource.model_validate(
    {
        "mode": "exec",
        "config_command": "printf 'hostname PBX-01\\nsecret s3cr3t\\n'",
        "commands": [
            {
                "command": TRUNKS,
                "rows": {
                    "metric": "trunk_state",
                    "pattern": r"^(?P<component>TRUNK-\d+)\s+\S+\s+(?P<value>UP|DOWN)\b",
                    "states": {"UP": "up", "DOWN": "down"},
                },
            },
            {
                "command": "uname -s; echo 'load 0.25'",
                "values": [
                    {"metric": "os", "pattern": r"^(Linux)$", "text": True},
                    {"metric": "load", "pattern": r"^load (\S+)$"},
                    {"metric": "absent", "pattern": r"^nothing (\d+)$"},
                ],
            },
            {
                "command": "true",
                "rows": {
                    "metric": "alarm_severity",
                    "pattern": r"^(?P<value>MAJOR)\s+(?P<component>\S+)",
                },
            },
        ],
    }
)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartedPeer]:
    """OpenSSH sshd on loopback accepting one generated client key for root."""
    peer = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield peer
    peer.stop()


def key_target(sshd: StartedPeer, **kw: Any) -> SshTarget:
    """Key-auth target for the test sshd."""
    return SshTarget(
        host="127.0.0.1",
        port=sshd.port,
        username="root",
        key_file=sshd.extra["client_key"],
        timeout_s=kw.pop("timeout_s", 5),
        **kw,
    )


def logins(sshd: StartedPeer) -> int:
    """How many logins sshd has accepted so far."""
    return sshd.log.read_text(errors="replace").count("Accepted publickey")


# --- exec mode and host keys vs OpenSSH ------------------------------------------------------


async def test_exec_mode_rows_values_and_zero_rows(sshd: StartedPeer, tmp_path: Path) -> None:
    collector = SshCollector("srv1", key_target(sshd), EXEC_SOURCE, tmp_path / "known_hosts")
    readings = await collector.collect()
    rs = ReadingSet(readings)
    assert rs.components("trunk_state") == ["TRUNK-1", "TRUNK-2"]
    assert rs.get("trunk_state", "TRUNK-1") == "up"
    assert rs.get("trunk_state", "TRUNK-2") == "down"
    assert rs.get("trunk_state") == 2
    assert rs.get("os") == "Linux"
    assert rs.get("load") == 0.25
    assert not rs.has("absent")
    assert rs.has("alarm_severity") and rs.get("alarm_severity") == 0  # zero rows, but read
    assert rs.components("alarm_severity") == []
    kinds = {(r.metric, r.component): r.kind for r in readings}
    assert kinds[("trunk_state", "TRUNK-1")] == "state"
    assert kinds[("load", "")] == "metric"
    await collector.close()


async def test_first_contact_pins_the_host_key_and_later_contacts_pass(
    sshd: StartedPeer, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "agent" / "known_hosts"
    collector = SshCollector("srv1", key_target(sshd), EXEC_SOURCE, known_hosts)
    await collector.collect()
    pinned = paramiko.HostKeys(str(known_hosts)).lookup(f"[127.0.0.1]:{sshd.port}")
    assert pinned is not None
    served = paramiko.PKey.from_path(sshd.extra["host_key"])
    assert pinned["ssh-ed25519"] == served
    content = known_hosts.read_text()
    assert content.startswith(f"[127.0.0.1]:{sshd.port} ssh-ed25519 ")
    assert known_hosts.stat().st_mode & 0o077 == 0
    await collector.collect()
    assert known_hosts.read_text() == content


async def test_changed_host_key_is_refused_before_login(sshd: StartedPeer, tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    other = paramiko.PKey.from_path(ssh_keygen(tmp_path / "other_host_key"))
    keys = paramiko.HostKeys()
    keys.add(host_key_name("127.0.0.1", sshd.port), other.get_name(), other)
    keys.save(str(known_hosts))
    before = logins(sshd)
    with pytest.raises(HostKeyMismatch, match="changed") as exc:
        await SshCollector("srv1", key_target(sshd), EXEC_SOURCE, known_hosts).collect()
    assert "SHA256:" in str(exc.value)
    # A good login afterwards shows up in the log; had the refused one logged in, it would too.
    good = tmp_path / "good_known_hosts"
    await SshCollector("srv1", key_target(sshd), EXEC_SOURCE, good).collect()
    wait_until(lambda: logins(sshd) >= before + 1, 5, "sshd login log line")
    assert logins(sshd) == before + 1


async def test_strict_target_refuses_an_unknown_host_key(sshd: StartedPeer, tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    target = key_target(sshd, strict_host_key=True)
    with pytest.raises(HostKeyMismatch, match=r"not in .*strict"):
        await SshCollector("srv1", target, EXEC_SOURCE, known_hosts).collect()
    assert known_hosts.read_text() == ""


async def test_unknown_client_key_is_auth_failed(sshd: StartedPeer, tmp_path: Path) -> None:
    stranger = ssh_keygen(tmp_path / "stranger")
    target = SshTarget(
        host="127.0.0.1", port=sshd.port, username="root", key_file=stranger, timeout_s=5
    )
    with pytest.raises(AuthFailed, match="root"):
        await SshCollector("srv1", target, EXEC_SOURCE, tmp_path / "kh").collect()


async def test_unreadable_key_file_is_auth_failed(sshd: StartedPeer, tmp_path: Path) -> None:
    bad = tmp_path / "bad_key"
    bad.write_text("not a key\n")
    target = SshTarget(host="127.0.0.1", port=sshd.port, username="root", key_file=bad)
    with pytest.raises(AuthFailed, match="cannot load SSH key file"):
        await SshCollector("srv1", target, EXEC_SOURCE, tmp_path / "kh").collect()


async def test_wrong_password_is_auth_failed_and_not_shown(
    sshd: StartedPeer, tmp_path: Path
) -> None:
    target = SshTarget(
        host="127.0.0.1", port=sshd.port, username="root", password="hunter2-secret", timeout_s=5
    )
    with pytest.raises(AuthFailed) as exc:
        await SshCollector("srv1", target, EXEC_SOURCE, tmp_path / "kh").collect()
    assert "hunter2" not in str(exc.value)


async def test_nonzero_exit_status_is_unreadable(sshd: StartedPeer, tmp_path: Path) -> None:
    source = SshSource.model_validate({"mode": "exec", "commands": [{"command": "exit 3"}]})
    with pytest.raises(DeviceUnreadable, match="status 3"):
        await SshCollector("srv1", key_target(sshd), source, tmp_path / "kh").collect()


async def test_output_past_the_cap_is_unreadable(sshd: StartedPeer, tmp_path: Path) -> None:
    source = SshSource.model_validate(
        {"mode": "exec", "commands": [{"command": "head -c 100000 /dev/zero | tr '\\0' x"}]}
    )
    target = key_target(sshd, max_output_bytes=4096)
    with pytest.raises(DeviceUnreadable, match="exceeds 4096 bytes"):
        await SshCollector("srv1", target, source, tmp_path / "kh").collect()


async def test_exec_fetch_config_returns_the_raw_text(sshd: StartedPeer, tmp_path: Path) -> None:
    collector = SshCollector("srv1", key_target(sshd), EXEC_SOURCE, tmp_path / "kh")
    assert await collector.fetch_config() == "hostname PBX-01\nsecret s3cr3t\n"


async def test_shell_mode_against_a_real_shell(sshd: StartedPeer, tmp_path: Path) -> None:
    # bash as root: prompt "...# " after bracketed-paste escapes, which the collector strips.
    source = SshSource.model_validate(
        {
            "mode": "shell",
            "prompt": r"[#$] ?$",
            "pager_off": "PS1='lab-sw1# '",
            "commands": [
                {"command": TRUNKS, "rows": EXEC_SOURCE.commands[0].rows.model_dump()},  # type: ignore[union-attr]
                {
                    "command": "echo version 12.2",
                    "values": [{"metric": "version", "pattern": r"^version (\S+)$", "text": True}],
                },
            ],
        }
    )
    rs = ReadingSet(await SshCollector("srv1", key_target(sshd), source, tmp_path / "kh").collect())
    assert rs.get("trunk_state", "TRUNK-2") == "down"
    assert rs.get("trunk_state") == 2
    assert rs.get("version") == "12.2"


async def test_shell_output_past_the_cap_is_unreadable(sshd: StartedPeer, tmp_path: Path) -> None:
    source = SshSource.model_validate(
        {
            "mode": "shell",
            "prompt": r"[#$] ?$",
            "commands": [{"command": "head -c 100000 /dev/zero | tr '\\0' x; echo"}],
        }
    )
    target = key_target(sshd, max_output_bytes=4096)
    with pytest.raises(DeviceUnreadable, match="exceeds 4096 bytes"):
        await SshCollector("srv1", target, source, tmp_path / "kh").collect()


# --- hostile peers ----------------------------------------------------------------------------


class FakeServer:
    """A TCP server on loopback that greets each client with `greeting` and then stays silent."""

    def __init__(self, greeting: bytes) -> None:
        self.greeting = greeting
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            if self.greeting:
                conn.sendall(self.greeting)

    def close(self) -> None:
        """Stop accepting and drop every connection."""
        self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.sock.close()
        for conn in self.conns:
            conn.close()
        self.thread.join(timeout=5)


@pytest.fixture
def silent_server() -> Iterator[FakeServer]:
    """Accepts TCP connections and never says anything (a hung device)."""
    server = FakeServer(b"")
    yield server
    server.close()


def pw_target(port: int, timeout_s: float = 0.5) -> SshTarget:
    """Password target on loopback."""
    return SshTarget(
        host="127.0.0.1", port=port, username="maint", password="pw", timeout_s=timeout_s
    )


async def test_silent_server_is_unreachable_within_the_timeout(
    silent_server: FakeServer, tmp_path: Path
) -> None:
    started = time.monotonic()
    with pytest.raises(DeviceUnreachable):
        await SshCollector(
            "d", pw_target(silent_server.port), EXEC_SOURCE, tmp_path / "kh"
        ).collect()
    assert time.monotonic() - started < 2.0


async def test_non_ssh_server_is_unreadable(tmp_path: Path) -> None:
    server = FakeServer(b"".join(b"garbage %d \x07\xff\r\n" % i for i in range(120)))
    try:
        with pytest.raises(DeviceUnreadable, match="not an SSH server"):
            await SshCollector("d", pw_target(server.port), EXEC_SOURCE, tmp_path / "kh").collect()
    finally:
        server.close()


async def test_refused_port_is_unreachable(tmp_path: Path) -> None:
    with pytest.raises(DeviceUnreachable, match="refused"):
        await SshCollector("d", pw_target(free_port()), EXEC_SOURCE, tmp_path / "kh").collect()


async def test_a_hung_device_does_not_block_the_event_loop(
    silent_server: FakeServer, tmp_path: Path
) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1

    task = asyncio.create_task(ticker())
    collector = SshCollector("d", pw_target(silent_server.port, 1.0), EXEC_SOURCE, tmp_path / "kh")
    with pytest.raises(DeviceUnreachable):
        await collector.collect()
    task.cancel()
    assert ticks >= 20  # ~50 expected in 1 s; a blocked loop would give ~0


# --- the simulated PBX (shell mode) -----------------------------------------------------------


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The simulated station (simulators package), started once for this module."""
    sim = pytest.importorskip("simulators.station", reason="simulators.station not available yet")
    st = sim.SimulatedStation(
        sim.load_station_config(), tmp_path_factory.mktemp("station"), ephemeral_ports=True
    )
    st.start()
    yield st
    st.stop()


@pytest.fixture
def pbx(station: Any) -> Iterator[Any]:
    """The station, reset before and after the test."""
    station.reset()
    yield station
    station.reset()


def pbx_collector(station: Any, known_hosts: Path, **kw: Any) -> SshCollector:
    """An SshCollector for pbx1 with the profile the manifest names."""
    d = station.manifest["devices"]["pbx1"]
    profile = builtin_profiles()[d["profile"]]
    assert profile.ssh is not None
    target = SshTarget(
        host=d["host"],
        port=d["port"],
        username=d["username"],
        password=d["password"],
        timeout_s=kw.pop("timeout_s", 5),
        **kw,
    )
    return SshCollector("pbx1", target, profile.ssh, known_hosts)


async def test_simulated_pbx_normal(pbx: Any, tmp_path: Path) -> None:
    rs = ReadingSet(await pbx_collector(pbx, tmp_path / "kh").collect())
    assert rs.components("trunk_state") == ["TRUNK-1", "TRUNK-2", "TRUNK-3", "TRUNK-4"]
    assert {rs.get("trunk_state", t) for t in rs.components("trunk_state")} == {"up"}
    assert rs.get("trunk_state") == 4
    assert rs.has("alarm_severity") and rs.get("alarm_severity") == 0
    assert rs.components("alarm_severity") == []


async def test_simulated_pbx_trunk_down(pbx: Any, tmp_path: Path) -> None:
    pbx.set_condition("pbx1", "trunk_down")
    rs = ReadingSet(await pbx_collector(pbx, tmp_path / "kh").collect())
    assert rs.get("trunk_state", "TRUNK-2") == "down"
    assert rs.get("trunk_state", "TRUNK-1") == "up"
    assert "major" in {rs.get("alarm_severity", c) for c in rs.components("alarm_severity")}
    assert rs.get("alarm_severity") == len(rs.components("alarm_severity")) >= 1


async def test_simulated_pbx_hang_is_unreachable(pbx: Any, tmp_path: Path) -> None:
    pbx.set_condition("pbx1", "hang")
    started = time.monotonic()
    with pytest.raises(DeviceUnreachable):
        await pbx_collector(pbx, tmp_path / "kh", timeout_s=1).collect()
    assert time.monotonic() - started < 3.5


async def test_simulated_pbx_garbage_is_unreadable(pbx: Any, tmp_path: Path) -> None:
    pbx.set_condition("pbx1", "garbage")
    with pytest.raises(DeviceUnreadable):
        await pbx_collector(pbx, tmp_path / "kh", timeout_s=1).collect()


async def test_simulated_pbx_host_key_pinning(pbx: Any, tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    await pbx_collector(pbx, known_hosts).collect()
    d = pbx.manifest["devices"]["pbx1"]
    name = host_key_name(d["host"], d["port"])
    assert paramiko.HostKeys(str(known_hosts)).lookup(name)
    await pbx_collector(pbx, known_hosts).collect()  # second contact: same key, passes
    other = paramiko.PKey.from_path(ssh_keygen(tmp_path / "other"))
    changed = paramiko.HostKeys()
    changed.add(name, other.get_name(), other)
    changed.save(str(known_hosts))
    with pytest.raises(HostKeyMismatch):
        await pbx_collector(pbx, known_hosts).collect()
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(HostKeyMismatch):
        await pbx_collector(pbx, empty, strict_host_key=True).collect()


async def test_simulated_pbx_config(pbx: Any, tmp_path: Path) -> None:
    config = await pbx_collector(pbx, tmp_path / "kh").fetch_config()
    assert "PBX-01" in config
    assert "show running-config" not in config
    assert not config.rstrip().endswith(("#", ">"))


# --- a healthy poll logs nothing at ERROR, on either side -------------------------------------


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name} {r.threadName}: {r.getMessage()}" for r in caplog.records if r.levelno >= 40]


async def test_polls_of_the_simulated_pbx_log_no_error_on_either_side(
    pbx: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The simulator's server runs in this process: its paramiko records are captured too.
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="paramiko")
    collector = pbx_collector(pbx, tmp_path / "kh")
    for _ in range(10):
        await collector.collect()
    await collector.run_commands(["show trunks"])  # an action's session, closed the same way
    # The server's transports end when they read our EOF (before the client's close returns).
    wait_until(lambda: not pbx.ssh_sessions(), 5, "the simulator's SSH sessions to end")
    assert _errors(caplog) == []
    assert any("EOF in transport thread" in r.getMessage() for r in caplog.records)


async def test_polls_of_a_real_sshd_log_no_error_and_no_reset(
    sshd: StartedPeer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="paramiko")
    before = sshd.log.read_text(errors="replace")
    collector = SshCollector("srv1", key_target(sshd), EXEC_SOURCE, tmp_path / "kh")
    for _ in range(5):
        await collector.collect()
    # sshd forks a process per connection; it is gone once sshd has seen the session end.
    listener = psutil.Process(sshd.process.pid)
    wait_until(lambda: not listener.children(), 5, "sshd's session processes to end")
    assert _errors(caplog) == []
    new = sshd.log.read_text(errors="replace")[len(before) :]
    assert "reset" not in new.lower(), new
