"""What changed in this HQ process, for whoever watches live (the console's server-sent events).

Services say what they changed (hq_server.store.changes marks it on their database session and
publishes it here once the transaction commits); the console subscribes. A change is a hint to
look again ("tickets 12 and 13 changed"), never the data itself, so a lost or spurious change
costs one refresh. Changes made by another HQ replica never reach this process: the console
polls the database for those (hq_server.web.live).

Thread-safe: services publish from worker threads, subscribers read on their event loop.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from enum import StrEnum

# Changes a subscriber may fall behind by before older ones are dropped (it refreshes anyway).
QUEUE_LIMIT = 100


class Topic(StrEnum):
    """What kind of thing changed."""

    ALARMS = "alarms"
    TICKETS = "tickets"
    JOBS = "jobs"
    SITES = "sites"


@dataclass(frozen=True, slots=True)
class Change:
    """Things of one topic that changed (ids empty: some, unnamed)."""

    topic: Topic
    ids: tuple[int | str, ...] = ()


@dataclass(eq=False)
class Subscription:
    """One subscriber's queue of changes, on its event loop."""

    loop: asyncio.AbstractEventLoop
    # None: the process is stopping, the subscriber should end (see ChangeFeed.close).
    queue: asyncio.Queue[Change | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))

    def _put(self, change: Change | None) -> None:
        if self.queue.full():
            self.queue.get_nowait()  # the oldest hint goes: the page refreshes anyway
        self.queue.put_nowait(change)


class ChangeFeed:
    """Publish changes; subscribers get each one on their own event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: set[Subscription] = set()
        self._closed = False

    def subscribe(self) -> Subscription:
        """A new subscription on the running event loop (call unsubscribe when done)."""
        sub = Subscription(asyncio.get_running_loop())
        with self._lock:
            self._subscribers.add(sub)
            if self._closed:
                sub._put(None)
        return sub

    def close(self) -> None:
        """The process is stopping: every subscriber, and any new one, gets None and ends, so
        that long-lived streams do not hold the server's shutdown."""
        with self._lock:
            self._closed = True
            subscribers = list(self._subscribers)
        for sub in subscribers:
            try:
                sub.loop.call_soon_threadsafe(sub._put, None)
            except RuntimeError:
                self.unsubscribe(sub)

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop delivering to `sub`."""
        with self._lock:
            self._subscribers.discard(sub)

    def publish(self, *changes: Change) -> None:
        """Hand `changes` to every subscriber; from any thread, never blocks."""
        with self._lock:
            subscribers = list(self._subscribers)
        for sub in subscribers:
            for change in changes:
                try:
                    sub.loop.call_soon_threadsafe(sub._put, change)
                except RuntimeError:  # its loop has closed: it is going away
                    self.unsubscribe(sub)

    def subscribers(self) -> int:
        """How many subscribe now (tests, diagnostics)."""
        with self._lock:
            return len(self._subscribers)


# The process's feed: the services of every app in this process publish to it.
feed = ChangeFeed()
