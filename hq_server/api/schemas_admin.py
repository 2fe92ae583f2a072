"""Request and response models of the admin API: login, users, API tokens, audit, sites and
enrollment tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hq_server.access.auth import TokenInfo
from hq_server.core.domain import Role
from hq_server.core.passwords import MAX_LENGTH
from hq_server.sites.enrollment import EnrollmentInfo, EnrollmentState
from hq_server.store.models import AuditEntry, User

Username = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
# The length rules are the password policy's (hq_server.passwords), checked with the others.
_POLICY_DOC = (
    "At least `password_min_length` characters (default 10), not containing the user name, "
    "not one of the most common passwords"
)
Password = Field(min_length=1, max_length=MAX_LENGTH, description=_POLICY_DOC)


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
    expires_at: datetime


class UserIn(_In):
    """A new user."""

    username: str = Username
    role: Role
    password: str = Password


class UserPatch(_In):
    """Changes to a user; absent fields stay as they are."""

    role: Role | None = None
    disabled: bool | None = None
    password: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_LENGTH,
        description=f"{_POLICY_DOC}; revokes all the user's API tokens",
    )


class PasswordChangeIn(_In):
    """A user's own password change."""

    current_password: str = Field(min_length=1, max_length=MAX_LENGTH)
    new_password: str = Field(min_length=1, max_length=MAX_LENGTH, description=_POLICY_DOC)


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
    expires_at: datetime = Field(description="Refused from then on (agent tokens never expire)")

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
            expires_at=info.expires_at,
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


class EnrollmentTokenOut(_Out):
    """A one-time enrollment token (never the token or its hash)."""

    id: int
    site_id: int
    site: str
    created_at: datetime
    expires_at: datetime
    state: EnrollmentState
    used_at: datetime | None
    agent_id: int | None = Field(description="The agent that enrolled with it")
    revoked_at: datetime | None
    revoked_by: str | None
    replaces_agent_id: int | None = Field(
        description="Re-enrollment: the agent retired when it is used"
    )

    @classmethod
    def of(cls, info: EnrollmentInfo) -> EnrollmentTokenOut:
        """From a token as hq_server.enrollment describes it."""
        return cls(
            id=info.id,
            site_id=info.site_id,
            site=info.site_name,
            created_at=info.created_at,
            expires_at=info.expires_at,
            state=info.state,
            used_at=info.used_at,
            agent_id=info.agent_id,
            revoked_at=info.revoked_at,
            revoked_by=info.revoked_by,
            replaces_agent_id=info.replaces_agent_id,
        )


class SiteIn(_In):
    """A new site."""

    name: str = Field(
        max_length=400,
        description="Unique; at most 100 characters once outer spaces are stripped, any script "
        "(e.g. Chinese), no control or invisible characters",
    )
    customer: str = Field(default="", max_length=200)
    contact: str = Field(default="", max_length=200)
    timezone: str = Field(default="UTC", min_length=1, max_length=64, examples=["Asia/Shanghai"])


class EnrollmentTokenIn(_In):
    """What a new enrollment token is for."""

    ttl_hours: float = Field(default=24.0, gt=0, le=24 * 30, description="Validity")
    replace_agent: bool = Field(
        default=False,
        description="Re-enrollment (the site's box was replaced): using the token retires the "
        "site's active agent (`agent_id` names it when the site has several)",
    )
    agent_id: int | None = Field(default=None, ge=1, le=2_147_483_647)
    additional: bool = Field(
        default=False,
        description="Enroll another agent at a site that already has an active one",
    )


class NewEnrollmentTokenOut(_Out):
    """A new one-time enrollment token, shown once (HQ keeps only its hash)."""

    token: str
    site_id: int
    expires_at: datetime
    replaces_agent_id: int | None
