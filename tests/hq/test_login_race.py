"""A login racing a password change or a user's disabling, on PostgreSQL (where transactions
run side by side): the token the login issues never outlives the revocation.

The login runs in this thread; the moment it is about to store its token, the revocation starts
on its own connection in another thread and either finishes or waits for a lock the login holds.
Either way, once both are done, no usable token may carry the old password's login.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select, text

from hq_server.access.auth import authenticate
from hq_server.access.users import create_user, get_user, login, set_disabled, set_password
from hq_server.core.domain import Role
from hq_server.core.errors import AuthError
from hq_server.store.db import Database
from hq_server.store.models import ApiToken

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
OLD = "Old-password-42"
NEW = "New-password-42"


def _revoke(change: str) -> Callable[[Any, int], None]:
    def run(session: Any, user_id: int) -> None:
        user = get_user(session, user_id, for_update=True)  # as the users route does
        if change == "password":
            set_password(session, user, NEW, NOW)
        else:
            set_disabled(session, user, True, NOW)

    return run


def _waiting_on_a_lock(database: Database, pid: int) -> bool:
    with database.engine.connect() as conn:
        state = conn.execute(
            text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
        ).scalar_one_or_none()
    return state == "Lock"


# The login's statements the revocation starts before: storing the token (the revocation then
# waits for the login and revokes its token), or re-reading the user it checked (the login then
# sees the change and is refused).
MOMENTS = {"storing the token": "INSERT INTO api_", "re-reading the user": "FOR SHARE"}


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("moment", sorted(MOMENTS))
@pytest.mark.parametrize("change", ["password", "disable"])
def test_a_login_racing_a_revocation_leaves_no_usable_token(
    database: Database, change: str, moment: str
) -> None:
    with database.writer() as session, session.begin():
        user_id = create_user(session, "alice", Role.ENGINEER, OLD, NOW).id

    revoker_pid: list[int] = []
    failures: list[BaseException] = []

    def revoke() -> None:
        try:
            with database.writer() as session, session.begin():
                revoker_pid.append(session.execute(text("SELECT pg_backend_pid()")).scalar_one())
                _revoke(change)(session, user_id)
        except BaseException as exc:  # reported by the test thread
            failures.append(exc)

    revoker = threading.Thread(target=revoke)

    def before_execute(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        # Start the revocation once, at the login's `moment`, and go on when it is done or
        # blocked behind the login's lock (polled: a condition, not a fixed pause).
        if revoker.ident is not None or MOMENTS[moment] not in statement:
            return
        revoker.start()
        deadline = time.monotonic() + 30
        while revoker.is_alive() and time.monotonic() < deadline:
            revoker.join(timeout=0.05)
            if revoker_pid and _waiting_on_a_lock(database, revoker_pid[0]):
                return
        assert not revoker.is_alive(), "the revocation neither finished nor waited for a lock"

    event.listen(database.engine, "before_cursor_execute", before_execute)
    token: str | None = None
    try:
        with database.writer() as session, session.begin():
            _user, token = login(session, "alice", OLD, NOW, timedelta(days=1))
    except AuthError:
        pass  # refused: it saw the change in time
    finally:
        event.remove(database.engine, "before_cursor_execute", before_execute)
        revoker.join(timeout=30)
    assert revoker.ident is not None, f"the login never got to {moment}"
    assert not revoker.is_alive() and not failures, failures

    with database.session() as session:
        usable = session.scalars(
            select(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        ).all()
        assert usable == []
        if token is not None:
            with pytest.raises(AuthError):
                authenticate(session, token, NOW)
