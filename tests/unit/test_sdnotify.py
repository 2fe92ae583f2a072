"""sd_notify over a real AF_UNIX datagram socket, as systemd listens for it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from agent.sdnotify import Notifier


def test_notify_reaches_the_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        monkeypatch.setenv("WATCHDOG_USEC", "90000000")
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        n = Notifier()
        assert n.enabled and n.watchdog_interval_s == 45.0
        assert n.notify(ready="1", status="polling 4 device(s)")
        assert server.recv(4096) == b"READY=1\nSTATUS=polling 4 device(s)"


def test_abstract_socket_and_absent_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"sw-test-{id(monkeypatch)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert Notifier().notify(watchdog="1")
        assert server.recv(100) == b"WATCHDOG=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not Notifier().enabled and not Notifier().notify(ready="1")
