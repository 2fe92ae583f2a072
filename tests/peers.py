"""Finding and starting real test peers (snmpd, sshd, socat, PostgreSQL) on loopback.

A missing peer skips the test with a loud reason on a developer machine; under CI (CI=true)
it fails instead, because CI must run every test.
"""

from __future__ import annotations

import os
import shutil
import socket

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
    path = shutil.which(name) or shutil.which(name, path=os.pathsep.join(extra_dirs or ("/usr/sbin",)))
    if path is None:
        missing_peer(f"program {name!r} not installed")
        raise AssertionError("unreachable")
    return path


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 that is free now (TCP by default, UDP with SOCK_DGRAM)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
