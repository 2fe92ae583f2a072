"""Config backups: versions of each device's configuration, stored when the text changes.

The agent scrubs secrets before upload and puts the marker `<removed>` where a secret was
(`enable secret <removed>`, `snmp-server community <removed> RO`). HQ never needs credentials;
as a second line of defence it refuses (422), and stores nothing of, a backup in which its own
check (hq_server.jobs.secret_check) still finds a secret in clear, even on a line that also
carries a marker. The refusal names line numbers only, never the suspected secret.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hq_server.core.errors import HQError, NotFound
from hq_server.jobs.secret_check import SCRUB_MARKER, unscrubbed_lines
from hq_server.store.models import ConfigBackupRecord
from protocol.wire import BackupAck, ConfigBackup

logger = logging.getLogger(__name__)


class BackupRefused(HQError):
    """The backup cannot be stored (answered 422): not scrubbed, or unusable text."""


class BackupHashMismatch(HQError):
    """The sha256 sent does not match the text (answered 400)."""


def sha256_of(text: str) -> str:
    """The hex sha256 of the UTF-8 text (what the agent sends)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_backup(backup: ConfigBackup) -> None:
    """Raise BackupHashMismatch / BackupRefused unless the backup may be stored."""
    try:
        actual = sha256_of(backup.text)
    except UnicodeEncodeError:
        raise BackupRefused("text is not valid Unicode (lone surrogates)") from None
    if actual != backup.sha256:
        raise BackupHashMismatch(
            f"sha256 {backup.sha256} does not match the text (its sha256 is {actual})"
        )
    if "\x00" in backup.text:
        raise BackupRefused("text contains NUL characters")
    lines = unscrubbed_lines(backup.text)
    if lines:
        shown = ", ".join(str(n) for n in lines[:20]) + (" ..." if len(lines) > 20 else "")
        raise BackupRefused(
            f"refused: line(s) {shown} look like unscrubbed secrets; the agent must replace "
            f"secrets with {SCRUB_MARKER}"
        )


def _latest(session: Session, site_id: int, device_id: str) -> ConfigBackupRecord | None:
    return session.scalars(
        select(ConfigBackupRecord)
        .where(ConfigBackupRecord.site_id == site_id, ConfigBackupRecord.device_id == device_id)
        .order_by(ConfigBackupRecord.version.desc())
        .limit(1)
    ).one_or_none()


def store_backup(
    session: Session, *, site_id: int, agent_id: int, backup: ConfigBackup, now: datetime
) -> BackupAck:
    """Store a new version if the text differs from the latest one; idempotent otherwise.

    Call in a writer transaction. A concurrent upload of the same device may win the race for
    the next version number: then this one finds it on retry (IntegrityError -> compare again).
    """
    check_backup(backup)
    for _attempt in range(3):
        latest = _latest(session, site_id, backup.device_id)
        if latest is not None and latest.sha256 == backup.sha256:
            latest.confirmed_at = max(latest.confirmed_at, now)
            session.flush()
            return BackupAck(version=latest.version, changed=False)
        version = 1 if latest is None else latest.version + 1
        row = ConfigBackupRecord(
            site_id=site_id,
            device_id=backup.device_id,
            version=version,
            agent_id=agent_id,
            taken_at=backup.taken_at,
            received_at=now,
            confirmed_at=now,
            sha256=backup.sha256,
            text=backup.text,
            size=len(backup.text.encode("utf-8")),
            changed=latest is not None,
            job_id=backup.job_id,
        )
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:
            continue
        logger.info(
            "site=%s device=%s: config version %d stored (%d bytes%s)",
            site_id,
            backup.device_id,
            version,
            row.size,
            ", changed" if row.changed else "",
        )
        return BackupAck(version=version, changed=row.changed)
    raise BackupRefused("could not store the backup: too many concurrent uploads; retry")


def list_versions(session: Session, site_id: int, device_id: str) -> list[ConfigBackupRecord]:
    """Every version of a device's config, newest first (load the text only if you need it)."""
    return list(
        session.scalars(
            select(ConfigBackupRecord)
            .where(ConfigBackupRecord.site_id == site_id, ConfigBackupRecord.device_id == device_id)
            .order_by(ConfigBackupRecord.version.desc())
        )
    )


def get_version(session: Session, site_id: int, device_id: str, version: int) -> ConfigBackupRecord:
    """One version, or NotFound."""
    row = session.scalars(
        select(ConfigBackupRecord).where(
            ConfigBackupRecord.site_id == site_id,
            ConfigBackupRecord.device_id == device_id,
            ConfigBackupRecord.version == version,
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"no version {version} of the config of {device_id} at site {site_id}")
    return row


@dataclass(frozen=True, slots=True)
class ConfigDiff:
    """A unified diff between two versions."""

    from_version: int
    to_version: int
    diff: str
    added: int
    removed: int


def diff_versions(
    session: Session, site_id: int, device_id: str, old: int | None, new: int | None
) -> ConfigDiff:
    """The unified diff of two versions (default: the previous one against the latest)."""
    latest_version = session.scalar(
        select(func.max(ConfigBackupRecord.version)).where(
            ConfigBackupRecord.site_id == site_id, ConfigBackupRecord.device_id == device_id
        )
    )
    if latest_version is None:
        raise NotFound(f"no config backups of {device_id} at site {site_id}")
    to_version = latest_version if new is None else new
    from_version = max(1, to_version - 1) if old is None else old
    before = get_version(session, site_id, device_id, from_version)
    after = get_version(session, site_id, device_id, to_version)
    lines = list(
        difflib.unified_diff(
            before.text.splitlines(keepends=True),
            after.text.splitlines(keepends=True),
            fromfile=f"{device_id} v{from_version}",
            tofile=f"{device_id} v{to_version}",
        )
    )
    text = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    added = sum(1 for ln in lines if ln.startswith("+") and not ln.startswith("+++"))
    removed = sum(1 for ln in lines if ln.startswith("-") and not ln.startswith("---"))
    return ConfigDiff(from_version, to_version, text, added, removed)


@dataclass(frozen=True, slots=True)
class DiffRow:
    """One row of a side-by-side diff: a line of the old version beside one of the new.

    kind: "same", "changed", "removed" (old line only), "added" (new line only), or "gap"
    (unchanged lines left out; `old_no` and `new_no` are where they resume).
    """

    kind: str
    old_no: int | None
    old: str
    new_no: int | None
    new: str


@dataclass(frozen=True, slots=True)
class SideBySide:
    """Two versions of a device's config side by side, changed lines with their context."""

    from_version: int
    to_version: int
    rows: list[DiffRow]
    added: int
    removed: int


def side_by_side(
    session: Session,
    site_id: int,
    device_id: str,
    old: int | None,
    new: int | None,
    *,
    context: int = 3,
) -> SideBySide:
    """The versions' changed lines beside each other, with `context` unchanged lines around
    each change (default versions: the previous one against the latest, as diff_versions)."""
    unified = diff_versions(session, site_id, device_id, old, new)
    before = get_version(session, site_id, device_id, unified.from_version).text.splitlines()
    after = get_version(session, site_id, device_id, unified.to_version).text.splitlines()
    rows: list[DiffRow] = []
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    for group in matcher.get_grouped_opcodes(context):
        first = group[0]
        if first[1] or first[3]:  # unchanged lines left out before this hunk
            rows.append(DiffRow("gap", first[1] + 1, "", first[3] + 1, ""))
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                rows.extend(
                    DiffRow("same", i + 1, before[i], j + 1, after[j])
                    for i, j in zip(range(i1, i2), range(j1, j2), strict=True)
                )
                continue
            for k in range(max(i2 - i1, j2 - j1)):
                i, j = i1 + k, j1 + k
                left = i < i2
                right = j < j2
                kind = "changed" if left and right else ("removed" if left else "added")
                rows.append(
                    DiffRow(
                        kind,
                        i + 1 if left else None,
                        before[i] if left else "",
                        j + 1 if right else None,
                        after[j] if right else "",
                    )
                )
    return SideBySide(
        unified.from_version, unified.to_version, rows, unified.added, unified.removed
    )
