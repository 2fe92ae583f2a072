"""Console login sessions, kept server side (table web_sessions): made at a password login,
found by the cookie's hash, ended by logout, by the idle timeout or at their absolute end.

The cookie holds a random token; the table holds only its sha256, so a copy of the database
logs nobody in. Each session carries the CSRF token its forms must send back. Using a session
moves its idle clock, written at most once per TOUCH_EVERY so that reading pages costs no write
(on SQLite every write queues behind the one writer).
"""

from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, update
from sqlalchemy.orm import Session

from hq_server.access.users import login_user
from hq_server.core.domain import Role
from hq_server.core.security import hash_token
from hq_server.store.models import User, WebSession

logger = logging.getLogger(__name__)

# How stale last_seen_at may get before a request writes it again.
TOUCH_EVERY = timedelta(seconds=60)
SESSION_BYTES = 32


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    """Who a console session belongs to, as pages see it."""

    session_id: str
    user_id: int
    username: str
    role: Role
    csrf_token: str
    language: str | None
    touch_due: bool = False  # its idle clock is older than TOUCH_EVERY: see touch

    def allows(self, role: Role) -> bool:
        """True if the user has at least `role` (the API's rule)."""
        return self.role.allows(role)


def start(
    session: Session,
    username: str,
    password: str,
    now: datetime,
    *,
    lifetime: timedelta,
    client: str,
) -> tuple[str, ConsoleUser]:
    """Check the password (AuthError if wrong or disabled) and open a session: the cookie
    value and the session's user. The caller commits."""
    user = login_user(session, username, password)
    token = secrets.token_urlsafe(SESSION_BYTES)
    row = WebSession(
        id=hash_token(token),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(SESSION_BYTES),
        created_at=now,
        last_seen_at=now,
        expires_at=now + lifetime,
        client=client[:100],
    )
    session.add(row)
    session.flush()
    logger.info("console session opened for %s from %s", user.username, client)
    return token, _console_user(row, user)


def find(session: Session, cookie: str, now: datetime, idle: timedelta) -> ConsoleUser | None:
    """The live session of this cookie, or None (unknown, idle too long, past its end, or its
    user disabled). Does not write: see touch."""
    row = session.get(WebSession, hash_token(cookie))
    if row is None or row.expires_at <= now or row.last_seen_at + idle <= now:
        return None
    user = session.get(User, row.user_id)
    if user is None or user.disabled:
        return None
    return _console_user(row, user, touch_due=row.last_seen_at + TOUCH_EVERY <= now)


def touch(session: Session, session_id: str, now: datetime) -> None:
    """Move the idle clock of a session to `now`."""
    session.execute(
        update(WebSession)
        .where(WebSession.id == session_id)
        .values(last_seen_at=now)
        .execution_options(synchronize_session=False)
    )


def end(session: Session, session_id: str) -> None:
    """End one session (logout)."""
    session.execute(delete(WebSession).where(WebSession.id == session_id))


def purge(session: Session, now: datetime, idle: timedelta) -> int:
    """Delete sessions past their end or idle too long; how many."""
    result = session.execute(
        delete(WebSession).where(
            or_(WebSession.expires_at <= now, WebSession.last_seen_at <= now - idle)
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


def set_language(session: Session, user_id: int, language: str | None) -> None:
    """Remember the console language a user chose (None: follow the browser)."""
    user = session.get(User, user_id)
    if user is not None:
        user.language = language


def csrf_matches(expected: str, given: str | None) -> bool:
    """Whether a form's CSRF token is the session's (compared in constant time)."""
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


def _console_user(row: WebSession, user: User, *, touch_due: bool = False) -> ConsoleUser:
    return ConsoleUser(
        session_id=row.id,
        user_id=user.id,
        username=user.username,
        role=Role(user.role),
        csrf_token=row.csrf_token,
        language=user.language,
        touch_due=touch_due,
    )
