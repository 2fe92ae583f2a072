"""Request and response models of the admin API: login, users, API tokens, audit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hq_server.auth import TokenInfo
from hq_server.domain import Role
from hq_server.models_ops import AuditEntry, User

Username = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
Password = Field(min_length=8, max_length=1024)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class LoginIn(_In):
    """Username and password, traded for an API token."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class LoginOut(_Out):
    """A new bearer token for the user (shown once; HQ keeps only its hash)."""

    token: str
    username: str
    role: Role


class UserIn(_In):
    """A new user."""

    username: str = Username
    role: Role
    password: str = Password


class UserPatch(_In):
    """Changes to a user; absent fields stay as they are."""

    role: Role | None = None
    disabled: bool | None = None
    password: str | None = Field(default=None, min_length=8, max_length=1024)


class UserOut(_Out):
    """A user (never the password hash)."""

    id: int
    username: str
    role: Role
    disabled: bool
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        """From a stored user."""
        return cls(
            id=user.id,
            username=user.username,
            role=Role(user.role),
            disabled=user.disabled,
            created_at=user.created_at,
        )


class ApiTokenOut(_Out):
    """An API token (never the token or its hash)."""

    id: int
    name: str
    role: Role = Field(description="The role it acts with: a user's token has the user's role")
    user_id: int | None = Field(description="The user it was issued to (null: standalone)")
    username: str | None
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, info: TokenInfo) -> ApiTokenOut:
        """From a token as hq_server.auth describes it."""
        return cls(
            id=info.id,
            name=info.name,
            role=info.role,
            user_id=info.user_id,
            username=info.username,
            created_at=info.created_at,
            revoked_at=info.revoked_at,
        )


class AuditOut(_Out):
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

    @classmethod
    def of(cls, row: AuditEntry) -> AuditOut:
        """From a stored audit row."""
        return cls(
            id=row.id,
            at=row.at,
            actor=row.actor,
            role=row.role,
            method=row.method,
            path=row.path,
            summary=row.summary,
            target_ids=row.target_ids,
            client=row.client,
            status=row.status,
        )
