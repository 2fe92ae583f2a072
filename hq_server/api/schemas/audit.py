"""The audit log as admins read it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hq_server.api.schemas.common import Out


class AuditOut(Out):
    """One audited call."""

    id: int
    at: datetime
    actor: str
    role: str
    method: str
    path: str
    summary: str
    target_ids: dict[str, Any]
    client: str
    status: int
