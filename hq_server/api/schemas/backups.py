"""Stored versions of device configurations, and diffs between two."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from hq_server.api.schemas.common import Out


class BackupVersionOut(Out):
    """One stored version of a device configuration (without its text)."""

    site_id: int
    device_id: str
    version: int
    agent_id: int
    taken_at: datetime
    received_at: datetime
    confirmed_at: datetime
    sha256: str
    size: int
    changed: bool = Field(description="Differs from the previous version (false for the first)")
    job_id: uuid.UUID | None


class BackupDetailOut(BackupVersionOut):
    """One version with its (scrubbed) text."""

    text: str


class BackupDiffOut(Out):
    """A unified diff between two versions of a device configuration."""

    device_id: str
    from_version: int
    to_version: int
    added: int
    removed: int
    diff: str
