"""The audit log: one append-only row per mutating API call (the database refuses changes)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from hq_server.store.models import AuditEntry

_SUMMARY_MAX = 500
_PATH_MAX = 500
_REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")


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
    """Append one audit row (the caller commits); text is cleaned so that it always stores."""
    session.add(
        AuditEntry(
            at=entry.at,
            actor=clean(entry.actor)[:100],
            role=clean(entry.role)[:16],
            method=clean(entry.method)[:8],
            path=clean(entry.path)[:_PATH_MAX],
            summary=clean(entry.summary)[:_SUMMARY_MAX],
            target_ids=_clean_json(entry.target_ids),
            client=clean(entry.client)[:100],
            status=entry.status,
        )
    )


def clean(text: str) -> str:
    """`text` storable everywhere: NUL (refused by PostgreSQL) and lone surrogates (not
    encodable) become U+FFFD. An attempt must leave its row, whatever it sent."""
    if "\x00" in text:
        text = text.replace("\x00", _REPLACEMENT)
    if _SURROGATE.search(text):
        text = _SURROGATE.sub(_REPLACEMENT, text)
    return text


def _clean_json(value: Any) -> Any:
    """A JSON value with every string (keys too) cleaned."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {clean(str(k)): _clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_json(v) for v in value]
    return value


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
