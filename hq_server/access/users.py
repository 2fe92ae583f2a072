"""Users: create, change, log in (username + password -> API token bound to the user).

User names are unique regardless of case ("Alice" and "alice" are one user) and looked up that
way. Passwords follow one policy for every role (hq_server.core.passwords.policy_problem).
Changing a user's password or disabling the user revokes all the user's API tokens.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hq_server.access.auth import create_api_token, revoke_user_tokens
from hq_server.core.domain import Role
from hq_server.core.errors import AuthError, Conflict, InvalidInput, NotFound
from hq_server.core.passwords import (
    DEFAULT_MIN_LENGTH,
    hash_password,
    policy_problem,
    verify_password,
)
from hq_server.store.models import User, WebSession

logger = logging.getLogger(__name__)

USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
# Verified against when the user does not exist, so a wrong name costs as much as a wrong password.
_DUMMY_HASH = hash_password("not a password of anybody")


def username_key(username: str) -> str:
    """The form user names are compared in (and unique in): lower case."""
    return username.lower()


def check_password(
    password: str, username: str, min_length: int = DEFAULT_MIN_LENGTH, field: str = "password"
) -> str:
    """Return the password if the policy accepts it for `username`, else raise InvalidInput
    naming `field`."""
    problem = policy_problem(password, username, min_length)
    if problem is not None:
        raise InvalidInput(f"{field}: {problem}", field=field)
    return password


def find_user(session: Session, username: str) -> User | None:
    """The user called `username` in any case, if any."""
    return session.scalars(
        select(User).where(User.username_key == username_key(username))
    ).one_or_none()


def get_user(session: Session, user_id: int, *, for_update: bool = False) -> User:
    """The user with this id; NotFound otherwise."""
    user = session.get(User, user_id, with_for_update=for_update)
    if user is None:
        raise NotFound(f"no user {user_id}")
    return user


def create_user(
    session: Session,
    username: str,
    role: Role,
    password: str,
    now: datetime,
    *,
    min_length: int = DEFAULT_MIN_LENGTH,
) -> User:
    """A new enabled user; Conflict if the name is taken in any case."""
    if not USERNAME_RE.fullmatch(username):
        raise InvalidInput(
            "username: letters, digits and . _ @ - only, at most 64 characters", field="username"
        )
    check_password(password, username, min_length)
    existing = find_user(session, username)
    if existing is not None:
        raise Conflict(f"user {existing.username!r} already exists (names ignore case)")
    user = User(
        username=username,
        username_key=username_key(username),
        role=role.value,
        password_hash=hash_password(password),
        disabled=False,
        created_at=now,
    )
    session.add(user)
    session.flush()
    logger.info("created user %s (id %s, role %s)", username, user.id, role.value)
    return user


def set_password(
    session: Session,
    user: User,
    password: str,
    now: datetime,
    *,
    min_length: int = DEFAULT_MIN_LENGTH,
    field: str = "password",
) -> int:
    """Give the user a new password (policy checked) and revoke all the user's API tokens;
    how many were revoked."""
    check_password(password, user.username, min_length, field)
    user.password_hash = hash_password(password)
    revoked = revoke_user_tokens(session, user.id, now)
    # Console sessions end too (hq_server.access.sessions).
    session.execute(delete(WebSession).where(WebSession.user_id == user.id))
    logger.info("user %s: password changed, %d tokens revoked", user.username, revoked)
    return revoked


def set_role(user: User, role: Role) -> None:
    """Give the user another role (its API tokens keep the role they were made with)."""
    user.role = role.value
    logger.info("user %s: role %s", user.username, role.value)


def list_users(session: Session) -> list[User]:
    """Every user, by name."""
    return list(session.scalars(select(User).order_by(User.username)))


def set_disabled(session: Session, user: User, disabled: bool, now: datetime) -> int:
    """Disable or enable a user; disabling revokes all the user's API tokens (how many)."""
    user.disabled = disabled
    if not disabled:
        return 0
    revoked = revoke_user_tokens(session, user.id, now)
    logger.info("user %s disabled, %d tokens revoked", user.username, revoked)
    return revoked


def login_user(session: Session, username: str, password: str) -> User:
    """The enabled user with this name and password; AuthError otherwise (a console login)."""
    return _check_login(session, username, password)


def _check_login(session: Session, username: str, password: str) -> User:
    # No user name holds a NUL (PostgreSQL refuses one in a query): a failed login like any
    # unknown name, counted by the throttle, rather than a database error.
    user = None if "\x00" in username else find_user(session, username)
    if user is None:
        verify_password(password, _DUMMY_HASH)
        raise AuthError("unknown user or wrong password")
    if not verify_password(password, user.password_hash):
        raise AuthError("unknown user or wrong password")
    if user.disabled:
        raise AuthError(f"user {user.username!r} is disabled")
    return user


def _hold_unchanged(session: Session, user: User, checked_hash: str | None) -> None:
    """Hold the user's row until the transaction ends (FOR SHARE on PostgreSQL; a SQLite writer
    holds the database) and make sure it is still as checked: enabled, and with the password
    `checked_hash` (if given) verified against.

    A password change or a disabling committed since the check refuses the token about to be
    issued; one that comes later waits for this transaction and then revokes that token with
    the others. Without it, a login that checked the old password could store its token just
    after the change revoked every token there was.
    """
    current = session.execute(
        select(User.password_hash, User.disabled)
        .where(User.id == user.id)
        .with_for_update(read=True)
    ).one_or_none()
    if current is None or (checked_hash is not None and current.password_hash != checked_hash):
        raise AuthError("unknown user or wrong password")
    if current.disabled:
        raise AuthError(f"user {user.username!r} is disabled")


def login(
    session: Session, username: str, password: str, now: datetime, lifetime: timedelta
) -> tuple[User, str]:
    """Check the password of an enabled user and return a new API token bound to them, valid
    for `lifetime` (never one that a concurrent password change or disabling leaves valid)."""
    user = _check_login(session, username, password)
    _hold_unchanged(session, user, user.password_hash)
    token = create_api_token(
        session, user.username, Role(user.role), now, user_id=user.id, lifetime=lifetime
    )
    return user, token


def change_own_password(
    session: Session,
    user_id: int,
    current: str,
    new: str,
    now: datetime,
    *,
    lifetime: timedelta,
    min_length: int = DEFAULT_MIN_LENGTH,
) -> tuple[User, str]:
    """A user's own password change: check the current password, set the new one, revoke all
    the user's tokens (the calling one too) and return a fresh token for the caller."""
    user = get_user(session, user_id, for_update=True)
    if not verify_password(current, user.password_hash):
        raise AuthError("current_password is wrong")
    if new == current:
        raise InvalidInput("new_password: must differ from the current one", field="new_password")
    set_password(session, user, new, now, min_length=min_length, field="new_password")
    token = create_api_token(
        session, user.username, Role(user.role), now, user_id=user.id, lifetime=lifetime
    )
    return user, token


def token_for_user(session: Session, username: str, now: datetime, lifetime: timedelta) -> str:
    """A new API token for an existing user (CLI: `hq token create --user NAME`)."""
    user = find_user(session, username)
    if user is None:
        raise NotFound(f"no user {username!r}: create it with `stationwatch hq user add`")
    if user.disabled:
        raise Conflict(f"user {username!r} is disabled")
    _hold_unchanged(session, user, None)
    return create_api_token(
        session, user.username, Role(user.role), now, user_id=user.id, lifetime=lifetime
    )
