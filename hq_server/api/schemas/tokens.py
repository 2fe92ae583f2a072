"""API tokens as admins see them (never the token or its hash)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from hq_server.api.schemas.common import Out
from hq_server.core.domain import Role


class ApiTokenOut(Out):
    """An API token (never the token or its hash)."""

    id: int
    name: str
    role: Role = Field(description="The role it acts with: a user's token has the user's role")
    user_id: int | None = Field(description="The user it was issued to (null: standalone)")
    username: str | None
    created_at: datetime
    revoked_at: datetime | None
    expires_at: datetime = Field(description="Refused from then on (agent tokens never expire)")
