"""Live updates: one server-sent-events stream (GET /live) every console page subscribes to.

Each event names a topic (alarms, tickets, jobs, sites) and, when known, the ids that changed;
the page then fetches again the parts of it that show that topic (static/console.js). Changes
come from this process's services (hq_server.core.changes). On PostgreSQL, where other HQ
replicas change the same database, one watcher per process (ReplicaWatch, running while a
stream is open) looks at the database every `console_live_poll` seconds and publishes a topic
whose newest change moved, whatever the number of open streams. When HQ stops, the
streams end (hq_server.serving closes the feed) rather than hold the shutdown. A comment line is
sent when nothing happened for KEEPALIVE_S, so that proxies keep the stream open and a broken
connection is noticed; the browser reconnects by itself (retry:), and the page shows
"connection lost, retrying" meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from hq_server.access import sessions
from hq_server.core.changes import Change, Topic, feed
from hq_server.store.db import Database
from hq_server.store.models import Agent, Alarm, JobRecord, Ticket
from hq_server.web.auth import LIVE_PATH, SESSION_COOKIE, Viewer, app_state

logger = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

KEEPALIVE_S = 15.0
# How often a stream checks that its session still lives (at a change or a keepalive).
SESSION_CHECK = timedelta(seconds=30)
RETRY_MS = 3000
# The newest change per topic, as the database knows it (for changes made elsewhere).
_WATERMARKS: dict[Topic, Any] = {
    Topic.TICKETS: func.max(Ticket.updated_at),
    Topic.ALARMS: func.max(Alarm.last_change_at),
    Topic.JOBS: func.max(JobRecord.finished_at),
    Topic.SITES: func.max(Agent.health_at),
}


def watermarks(db: Database) -> dict[Topic, datetime | None]:
    """The newest change of each topic in the database."""
    with db.session() as session:
        return {topic: session.scalar(select(column)) for topic, column in _WATERMARKS.items()}


def session_lives(request: Request) -> bool:
    """Whether the session the stream was opened with is still live (does not touch it)."""
    db, clock, settings = app_state(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return False
    with db.session() as session:
        found = sessions.find(session, cookie, clock.now(), settings.console_idle_timeout)
    return found is not None


def frame(change: Change) -> str:
    """One server-sent event."""
    data = json.dumps({"topic": change.topic.value, "ids": list(change.ids)})
    return f"event: change\ndata: {data}\n\n"


class ReplicaWatch:
    """Looks at the database for changes other HQ replicas made, while someone watches: one
    query per topic every `interval` seconds for the whole process, whatever the number of
    open streams; a topic whose newest change moved is published to the feed."""

    def __init__(self, db: Database, interval: float) -> None:
        self.db, self.interval = db, interval
        self._watchers = 0
        self._task: asyncio.Task[None] | None = None
        self.looked = asyncio.Event()  # set once it knows where the database stood

    def join(self) -> None:
        """One more stream watches (the first starts the looking)."""
        self._watchers += 1
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    def leave(self) -> None:
        """One stream fewer (the last stops the looking)."""
        self._watchers -= 1
        if self._watchers <= 0 and self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        seen = await run_in_threadpool(watermarks, self.db)
        self.looked.set()
        while True:
            await asyncio.sleep(self.interval)  # the polling period, not a synchronisation
            try:
                now = await run_in_threadpool(watermarks, self.db)
            except SQLAlchemyError as exc:  # the streams go on; the next look may work
                logger.warning("live updates: cannot look at the database: %s", exc)
                continue
            moved = [topic for topic in now if now[topic] != seen.get(topic)]
            seen = now
            if moved:
                feed.publish(*(Change(topic) for topic in moved))


def replica_watch(request: Request) -> ReplicaWatch | None:
    """The app's ReplicaWatch on PostgreSQL (made on first use); None on SQLite (one process)."""
    db, _clock, settings = app_state(request)
    if db.dialect != "postgresql":
        return None
    state = request.app.state
    watch: ReplicaWatch | None = getattr(state, "replica_watch", None)
    if watch is None:  # requests run on the app's one event loop: no race here
        watch = ReplicaWatch(db, settings.console_live_poll)
        state.replica_watch = watch
    return watch


async def _events(request: Request) -> AsyncIterator[str]:
    _db, clock, _settings = app_state(request)
    checked = clock.now()
    watch = replica_watch(request)
    sub = feed.subscribe()
    if watch is not None:
        watch.join()
    try:
        yield f"retry: {RETRY_MS}\n: connected\n\n"
        while not await request.is_disconnected():
            change: Change | None = None
            try:
                change = await asyncio.wait_for(sub.queue.get(), timeout=KEEPALIVE_S)
            except TimeoutError:
                pass
            else:
                if change is None:  # HQ is stopping; the browser reconnects to whoever serves
                    return
            at = clock.now()
            if at - checked >= SESSION_CHECK:
                # Logged out, idle too long, user disabled: the stream ends with its session.
                if not await run_in_threadpool(session_lives, request):
                    return
                checked = at
            if change is not None:
                yield frame(change)
                continue
            yield ": keepalive\n\n"
    finally:
        if watch is not None:
            watch.leave()
        feed.unsubscribe(sub)


@router.get(LIVE_PATH)
async def live(request: Request, visit: Viewer) -> Response:
    """The stream of changes (text/event-stream)."""
    return StreamingResponse(
        _events(request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
