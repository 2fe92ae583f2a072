"""The agent's state directory: which file holds what, and the agent token.

Everything the agent keeps between runs lives under `state_dir`: the outbox (events, the active
faults, device states for `agent status`), the agent token, pinned SSH host keys, device-log
cursors and config backups.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from agent.private_files import private_dir

TOKEN_FILE = "agent.token"  # noqa: S105 - a file name, not a secret
DEVICE_STATES_KEY = "device_states"  # outbox meta entry: each device's state, for `agent status`
LAST_UPLOAD_KEY = "last_upload_at"  # outbox meta entry: when a batch last reached HQ


@dataclass(frozen=True)
class StateDir:
    """The files of one agent's state directory."""

    root: Path

    @property
    def outbox(self) -> Path:
        """The outbox database."""
        return self.root / "outbox.sqlite"

    @property
    def token(self) -> Path:
        """The agent token saved at enrollment."""
        return self.root / TOKEN_FILE

    @property
    def known_hosts(self) -> Path:
        """Pinned SSH host keys of the devices."""
        return self.root / "known_hosts"

    @property
    def log_cursors(self) -> Path:
        """How far each device log has been read."""
        return self.root / "log_cursors.json"


def read_token(state_dir: Path) -> str | None:
    """The agent token saved at enrollment, if any."""
    try:
        return StateDir(state_dir).token.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def write_token(state_dir: Path, token: str) -> Path:
    """Save the agent token readable by the agent's user only."""
    private_dir(state_dir)
    path = StateDir(state_dir).token
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)
    return path
