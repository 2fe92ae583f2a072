"""Users and their logins: log in, change one's password, create and change users."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from hq_server.api.schemas.common import In, Out
from hq_server.core.domain import Role
from hq_server.core.passwords import MAX_LENGTH

Username = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
# The length rules are the password policy's (hq_server.core.passwords), checked with the others.
_POLICY_DOC = (
    "At least `password_min_length` characters (default 10), not containing the user name, "
    "not one of the most common passwords"
)
Password = Field(min_length=1, max_length=MAX_LENGTH, description=_POLICY_DOC)


class LoginIn(In):
    """Username and password, traded for an API token."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class LoginOut(Out):
    """A new bearer token for the user (shown once; HQ keeps only its hash)."""

    token: str
    username: str
    role: Role
    expires_at: datetime


class UserIn(In):
    """A new user."""

    username: str = Username
    role: Role
    password: str = Password


class UserPatch(In):
    """Changes to a user; absent fields stay as they are."""

    role: Role | None = None
    disabled: bool | None = None
    password: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_LENGTH,
        description=f"{_POLICY_DOC}; revokes all the user's API tokens",
    )


class PasswordChangeIn(In):
    """A user's own password change."""

    current_password: str = Field(min_length=1, max_length=MAX_LENGTH)
    new_password: str = Field(min_length=1, max_length=MAX_LENGTH, description=_POLICY_DOC)


class UserOut(Out):
    """A user (never the password hash)."""

    id: int
    username: str
    role: Role
    disabled: bool
    created_at: datetime
