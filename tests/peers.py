"""Finding and starting real test peers (snmpd, sshd, socat, PostgreSQL) on loopback.

A missing peer skips the test with a loud reason on a developer machine; under CI (CI=true)
it fails instead, because CI must run every test.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing_peer(what: str) -> None:
    """Skip (developer machine) or fail (CI) because a required peer is missing."""
    msg = f"REAL PEER MISSING: {what} -- run .ci/run (it installs the peers) to exercise this test"
    if IN_CI:
        pytest.fail(msg)
    pytest.skip(msg)


def require_binary(name: str, *extra_dirs: str) -> str:
    """The path of a peer program, or skip/fail loudly when it is not installed."""
    path = shutil.which(name) or shutil.which(
        name, path=os.pathsep.join(extra_dirs or ("/usr/sbin",))
    )
    if path is None:
        missing_peer(f"program {name!r} not installed")
        raise AssertionError("unreachable")
    return path


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 that is free now (TCP by default, UDP with SOCK_DGRAM)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- started peers (added with the protocol collectors) ------------------------------------


def wait_until(ready: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll `ready` until it is true, or fail naming `what` once timeout_s has passed."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not ready within {timeout_s:g}s")
        time.sleep(0.02)  # polling interval of the readiness check, not synchronisation


@dataclass
class StartedPeer:
    """A peer program running on loopback until stop()."""

    process: subprocess.Popen[bytes]
    port: int
    workdir: Path
    log: Path
    extra: dict[str, Path] = field(default_factory=dict)

    def stop(self) -> None:
        """Terminate the peer (kill it if it lingers)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def _ber_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    return bytes([0x81, n]) if n < 0x100 else bytes([0x82, n >> 8, n & 0xFF])


def _ber(tag: int, payload: bytes) -> bytes:
    return bytes([tag]) + _ber_len(len(payload)) + payload


def snmp_probe(port: int, community: str, host: str = "127.0.0.1", timeout_s: float = 0.2) -> bool:
    """Whether an SNMPv2c agent answers a GET of sysUpTime.0 (hand-made packet, no pysnmp)."""
    oid = bytes([0x2B, 6, 1, 2, 1, 1, 3, 0])  # 1.3.6.1.2.1.1.3.0
    varbind = _ber(0x30, _ber(0x06, oid) + b"\x05\x00")
    pdu = _ber(0xA0, b"\x02\x01\x01" + b"\x02\x01\x00" * 2 + _ber(0x30, varbind))
    message = _ber(0x30, b"\x02\x01\x01" + _ber(0x04, community.encode()) + pdu)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout_s)
        try:
            s.sendto(message, (host, port))
            return s.recv(4096)[:1] == b"\x30"
        except OSError:
            return False


def start_snmpd(
    workdir: Path, config_lines: list[str], *, community: str = "public"
) -> StartedPeer:
    """Start net-snmp's snmpd on a free UDP port of 127.0.0.1 with only these config lines.

    `community` must be a v2c read community of the config: readiness is a real GET with it.
    """
    snmpd = require_binary("snmpd")
    port = free_port(socket.SOCK_DGRAM)
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "snmpd.conf"
    # "[snmp] mibs :" keeps snmpd from hunting for MIB files Debian does not ship.
    conf.write_text("\n".join(["[snmp] mibs :", *config_lines]) + "\n")
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["SNMP_PERSISTENT_DIR"] = str(workdir / "persist")
    log = workdir / "snmpd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [snmpd, "-f", "-Lo", "-C", "-c", str(conf), f"udp:127.0.0.1:{port}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    peer = StartedPeer(proc, port, workdir, log)
    try:
        wait_until(lambda: proc.poll() is None and snmp_probe(port, community), 10, "snmpd")
    except AssertionError:
        peer.stop()
        tail = log.read_text(errors="replace")[-2000:]
        raise AssertionError(f"snmpd did not start: {tail}") from None
    return peer


def ssh_keygen(path: Path, kind: str = "ed25519") -> Path:
    """Generate an unencrypted key pair at path (+ .pub) with ssh-keygen; returns path."""
    keygen = require_binary("ssh-keygen")
    subprocess.run(
        [keygen, "-q", "-t", kind, "-N", "", "-C", "stationwatch-test", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def ssh_banner_ready(port: int, host: str = "127.0.0.1") -> bool:
    """Whether an SSH server on the port sends its SSH- banner."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as s:
            return s.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def start_sshd(workdir: Path) -> StartedPeer:
    """Start a private OpenSSH sshd on 127.0.0.1 that accepts one generated key for this user.

    extra: "host_key" (its private host key), "client_key" (the accepted private key).
    """
    sshd = require_binary("sshd")
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    host_key = ssh_keygen(workdir / "host_ed25519")
    client_key = ssh_keygen(workdir / "client_ed25519")
    authorized = workdir / "authorized_keys"
    authorized.write_text((workdir / "client_ed25519.pub").read_text())
    conf = workdir / "sshd_config"
    conf.write_text(
        "\n".join(
            [
                "ListenAddress 127.0.0.1",
                f"HostKey {host_key}",
                f"PidFile {workdir / 'sshd.pid'}",
                f"AuthorizedKeysFile {authorized}",
                "UsePAM no",
                "StrictModes no",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "PermitRootLogin prohibit-password",
                "Subsystem sftp internal-sftp",
                "LogLevel INFO",  # "Accepted publickey" lines show who logged in
            ]
        )
        + "\n"
    )
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege separation directory
    log = workdir / "sshd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sshd, "-D", "-e", "-f", str(conf), "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    peer = StartedPeer(proc, port, workdir, log, {"host_key": host_key, "client_key": client_key})
    try:
        wait_until(lambda: proc.poll() is None and ssh_banner_ready(port), 10, "sshd")
    except AssertionError:
        peer.stop()
        tail = log.read_text(errors="replace")[-2000:]
        raise AssertionError(f"sshd did not start: {tail}") from None
    return peer
