"""Users: create, change, log in (username + password -> API token bound to the user)."""

from __future__ import annotations

import logging
import re
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hq_server.auth import create_api_token
from hq_server.domain import Role
from hq_server.errors import AuthError, Conflict, InvalidInput, NotFound
from hq_server.models_ops import User
from hq_server.passwords import hash_password, verify_password

logger = logging.getLogger(__name__)

USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD = 8
# Verified against when the user does not exist, so a wrong name costs as much as a wrong password.
_DUMMY_HASH = hash_password("not a password of anybody")


def check_password_strength(password: str) -> str:
    """Return the password if it is long enough, else raise ValueError."""
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"password must have at least {MIN_PASSWORD} characters")
    return password


def find_user(session: Session, username: str) -> User | None:
    """The user called `username`, if any."""
    return session.scalars(select(User).where(User.username == username)).one_or_none()


def get_user(session: Session, user_id: int) -> User:
    """The user with this id; NotFound otherwise."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user {user_id}")
    return user


def create_user(session: Session, username: str, role: Role, password: str, now: datetime) -> User:
    """A new enabled user; Conflict if the name is taken."""
    if not USERNAME_RE.fullmatch(username):
        raise InvalidInput("username: letters, digits and . _ @ - only, at most 64 characters")
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"password must have at least {MIN_PASSWORD} characters")
    if find_user(session, username) is not None:
        raise Conflict(f"user {username!r} already exists")
    user = User(
        username=username,
        role=role.value,
        password_hash=hash_password(password),
        disabled=False,
        created_at=now,
    )
    session.add(user)
    session.flush()
    logger.info("created user %s (id %s, role %s)", username, user.id, role.value)
    return user


def login(session: Session, username: str, password: str, now: datetime) -> tuple[User, str]:
    """Check the password of an enabled user and return a new API token bound to them."""
    user = find_user(session, username)
    if user is None:
        verify_password(password, _DUMMY_HASH)
        raise AuthError("unknown user or wrong password")
    if not verify_password(password, user.password_hash):
        raise AuthError("unknown user or wrong password")
    if user.disabled:
        raise AuthError(f"user {username!r} is disabled")
    return user, create_api_token(session, user.username, Role(user.role), now, user_id=user.id)


def token_for_user(session: Session, username: str, now: datetime) -> str:
    """A new API token for an existing user (CLI: `hq token create --user NAME`)."""
    user = find_user(session, username)
    if user is None:
        raise NotFound(f"no user {username!r}: create it with `stationwatch hq user add`")
    if user.disabled:
        raise Conflict(f"user {username!r} is disabled")
    return create_api_token(session, user.username, Role(user.role), now, user_id=user.id)
