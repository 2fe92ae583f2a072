"""Configuration backups: capture, scrub, keep versions locally, and tell what changed.

Flow: the device module fetches the raw text (SSH `fetch_config` or a serial dump), `ConfigStore`
scrubs it at once (collectors.scrub), normalises it, hashes it (sha256) and compares it with the
last kept version of the device:

- "first":     no earlier version; kept as the baseline, nothing raised;
- "unchanged": byte-identical to the last version; nothing kept;
- "noise":     only noise lines differ (timestamps, "Last configuration change"); nothing kept;
- "changed":   a significant line differs; kept as a new version, with the scrubbed unified
  diff (checks.config_change grades it: the config_changed fault carrying the diff).

Versions live in `<state_dir>/backups/<device>/` (directory 0700, files 0600), oldest pruned past
`keep`. Only scrubbed text is ever written or returned.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol

from collectors.profiles import Profile
from collectors.scrub import Scrubber, normalise

logger = logging.getLogger(__name__)

__all__ = ["BackupResult", "ConfigSource", "ConfigStore", "backup_device"]
DIFF_CONTEXT = 2
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")

Status = Literal["first", "unchanged", "noise", "changed"]


class ConfigSource(Protocol):
    """Anything that can fetch a device's raw configuration (SshCollector does)."""

    async def fetch_config(self) -> str:
        """The device's configuration as it prints it (may hold secrets)."""
        ...


@dataclass(frozen=True, slots=True)
class BackupResult:
    """The outcome of one backup of one device; every text in it is scrubbed."""

    device_id: str
    status: Status
    sha256: str
    previous_sha256: str | None
    text: str
    diff: str
    taken_at: datetime
    path: Path | None  # the kept version file ("first"/"changed"), else None

    @property
    def significant(self) -> bool:
        """Whether this backup is a significant change of configuration."""
        return self.status == "changed"


class ConfigStore:
    """Scrubbed configuration versions of the agent's devices, kept under one directory."""

    def __init__(self, state_dir: Path, keep: int = 50) -> None:
        self.root = state_dir / "backups"
        self.keep = keep

    def device_dir(self, device_id: str) -> Path:
        """The directory of one device's versions (device ids are path-safe names)."""
        if not _SAFE_NAME.match(device_id):
            raise ValueError(f"device id {device_id!r} is not usable as a directory name")
        return self.root / device_id

    def _index(self, device_id: str) -> list[dict[str, str]]:
        path = self.device_dir(device_id) / "index.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            logger.warning("device=%s backup index unreadable, starting anew: %s", device_id, exc)
            return []
        return [e for e in data if isinstance(e, dict)] if isinstance(data, list) else []

    def versions(self, device_id: str) -> list[dict[str, str]]:
        """Kept versions, oldest first: {"taken_at", "sha256", "file"}."""
        return self._index(device_id)

    def latest_text(self, device_id: str) -> str | None:
        """The scrubbed text of the newest kept version, if any."""
        index = self._index(device_id)
        if not index:
            return None
        try:
            return (self.device_dir(device_id) / index[-1]["file"]).read_text(encoding="utf-8")
        except (OSError, KeyError):
            return None

    def record(
        self, device_id: str, raw: str, scrubber: Scrubber, now: datetime | None = None
    ) -> BackupResult:
        """Scrub and judge one capture; keep it when it is the first or a significant change."""
        now = now or datetime.now(UTC)
        text = normalise(scrubber.scrub(raw))
        del raw  # nothing below may see the unscrubbed text
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        index = self._index(device_id)
        previous = self.latest_text(device_id) if index else None
        prev_sha = index[-1].get("sha256") if index else None
        if previous is None:
            path = self._keep(device_id, text, digest, now, index)
            return BackupResult(device_id, "first", digest, None, text, "", now, path)
        if prev_sha == digest:
            return BackupResult(device_id, "unchanged", digest, prev_sha, text, "", now, None)
        diff = unified_diff(previous, text, prev_sha or "previous", digest)
        if scrubber.significant(previous) == scrubber.significant(text):
            return BackupResult(device_id, "noise", digest, prev_sha, text, diff, now, None)
        path = self._keep(device_id, text, digest, now, index)
        logger.info(
            "device=%s configuration changed: %s -> %s",
            device_id,
            (prev_sha or "")[:12],
            digest[:12],
        )
        return BackupResult(device_id, "changed", digest, prev_sha, text, diff, now, path)

    def _keep(
        self,
        device_id: str,
        text: str,
        digest: str,
        now: datetime,
        index: list[dict[str, str]],
    ) -> Path:
        """Write a version file and the index (atomically), pruning the oldest versions."""
        directory = self.device_dir(device_id)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = f"{now.strftime('%Y%m%dT%H%M%S.%fZ')}-{digest[:12]}.cfg"
        path = directory / name
        _write_private(path, text)
        index = [*index, {"taken_at": now.isoformat(), "sha256": digest, "file": name}]
        while len(index) > self.keep:
            old = index.pop(0)
            (directory / old["file"]).unlink(missing_ok=True)
        _write_private(directory / "index.json", json.dumps(index, indent=1))
        return path


def _write_private(path: Path, text: str) -> None:
    """Write a file readable by the agent only, replacing it atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def unified_diff(old: str, new: str, old_name: str, new_name: str) -> str:
    """A unified diff of two scrubbed texts."""
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=old_name[:12],
            tofile=new_name[:12],
            n=DIFF_CONTEXT,
        )
    )


async def backup_device(
    device_id: str, source: ConfigSource, profile: Profile, store: ConfigStore
) -> BackupResult:
    """Fetch a device's configuration, scrub it at once, and record it in the store.

    Raises the collector's errors (DeviceUnreachable, AuthFailed, HostKeyMismatch, ...).
    """
    raw = await source.fetch_config()
    return store.record(device_id, raw, Scrubber.for_backup(profile.backup))
