"""Directories and files that only their owner may read, whatever the process umask.

Used for the agent's state, which names the station and its faults: the state dir and the
outbox (HQ has its own, in hq_server.db and hq_server.cli). SQLite gives a database's -wal and
-shm files the mode of the database file itself, so a database created here keeps all three
private.
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> None:
    """Create `path` (and missing parents) if it does not exist; a directory created here is
    mode 0700. An existing directory keeps its mode: the operator chose it."""
    if path.is_dir():
        return
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    os.chmod(path, DIR_MODE)  # mkdir's mode passes through the umask


def private_file(path: Path) -> bool:
    """Create `path` empty with mode 0600 if it does not exist; True if it was created here.
    An existing file keeps its mode."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, FILE_MODE)  # exactly 0600, whatever the umask took away
    finally:
        os.close(fd)
    return True
