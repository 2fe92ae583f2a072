"""The audit log: one append-only row per mutating API call (the database refuses changes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from hq_server.models_ops import AuditEntry

_SUMMARY_MAX = 500
_PATH_MAX = 500


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """What one call did, as the middleware saw it."""

    at: datetime
    actor: str
    role: str
    method: str
    path: str
    summary: str
    target_ids: dict[str, Any]
    client: str
    status: int


def record(session: Session, entry: AuditRecord) -> None:
    """Append one audit row (the caller commits)."""
    session.add(
        AuditEntry(
            at=entry.at,
            actor=entry.actor[:100],
            role=entry.role[:16],
            method=entry.method[:8],
            path=entry.path[:_PATH_MAX],
            summary=entry.summary[:_SUMMARY_MAX],
            target_ids=entry.target_ids,
            client=entry.client[:100],
            status=entry.status,
        )
    )


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Filters of GET /api/v1/audit; None means "any"."""

    actor: str | None = None
    method: str | None = None
    path_prefix: str | None = None
    status: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 200


def query(q: AuditQuery) -> Select[AuditEntry]:
    """The SELECT for these filters, newest first."""
    stmt = select(AuditEntry)
    if q.actor is not None:
        stmt = stmt.where(AuditEntry.actor == q.actor)
    if q.method is not None:
        stmt = stmt.where(AuditEntry.method == q.method.upper())
    if q.path_prefix is not None:
        escaped = q.path_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(AuditEntry.path.like(escaped + "%", escape="\\"))
    if q.status is not None:
        stmt = stmt.where(AuditEntry.status == q.status)
    if q.since is not None:
        stmt = stmt.where(AuditEntry.at >= q.since)
    if q.until is not None:
        stmt = stmt.where(AuditEntry.at < q.until)
    return stmt.order_by(AuditEntry.id.desc()).limit(q.limit)
