"""Finding of the console's review (issue 13): the /live stream checked the session only when it
opened, so a stream kept telling what changed after logout, after the idle timeout and after
the user was disabled. The stream of the real app (its generator, on the app's database and
change feed) is read the way the server reads it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from starlette.requests import Request
from starlette.types import Message

from hq_server.core.changes import Change, Topic, feed
from hq_server.core.domain import Role
from hq_server.store.models import User
from hq_server.web.live import _events
from tests.web.console import Console

# A guard against a hang, not a measurement: each step below is immediate when it works.
GUARD_S = 10


def _stream(console: Console) -> AsyncIterator[str]:
    """The /live stream of the console's browser, as the server makes it."""
    cookie = console.client.cookies["sw_session"]

    async def receive() -> Message:  # the browser never hangs up
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/live",
        "query_string": b"",
        "headers": [(b"cookie", f"sw_session={cookie}".encode())],
        "app": console.client.app,
    }
    return _events(Request(scope, receive))


async def _next(stream: AsyncIterator[str]) -> str | None:
    try:
        return await asyncio.wait_for(anext(stream), GUARD_S)
    except StopAsyncIteration:
        return None


async def test_the_stream_ends_with_the_session_at_logout(console: Console) -> None:
    console.as_user("alice", Role.VIEWER)
    stream = _stream(console)
    assert (await _next(stream) or "").startswith("retry:")
    feed.publish(Change(Topic.TICKETS, (1,)))
    assert (await _next(stream) or "").startswith("event: change")
    assert console.post_form("/", "/logout").status_code == 303
    console.hq.clock.advance(timedelta(minutes=1))
    feed.publish(Change(Topic.TICKETS, (2,)))
    assert await _next(stream) is None


async def test_the_stream_ends_when_the_session_idles_out(console: Console) -> None:
    console.as_user("alice", Role.VIEWER)
    stream = _stream(console)
    assert (await _next(stream) or "").startswith("retry:")
    console.hq.clock.advance(timedelta(hours=2))  # console_idle_timeout: nobody used a page
    feed.publish(Change(Topic.ALARMS))
    assert await _next(stream) is None


async def test_the_stream_ends_when_the_user_is_disabled(console: Console) -> None:
    console.as_user("alice", Role.VIEWER)
    stream = _stream(console)
    assert (await _next(stream) or "").startswith("retry:")
    with console.hq.db.writer() as session, session.begin():
        session.execute(update(User).values(disabled=True))
        assert session.scalar(select(User.disabled))
    console.hq.clock.advance(timedelta(minutes=1))
    feed.publish(Change(Topic.ALARMS))
    assert await _next(stream) is None
