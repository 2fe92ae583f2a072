"""A first-come, first-served lock for SQLite writers in one process.

SQLite lets one writer in at a time; the others wait in its busy handler, which sleeps and
retries (1, 2, 5 ... 100 ms). Whoever retries at the right moment wins, so under load a small
request (one alarm) can wait behind many large batches, and a busy agent can starve the others.
HQ's writers queue here first, in arrival order, and the lock is handed straight to the next in
line; SQLite's own lock is then free whenever a writer begins.
"""

from __future__ import annotations

import threading
from collections import deque


class FairLock:
    """A mutex that hands itself to waiting threads in the order they asked."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._waiters: deque[threading.Event] = deque()
        self._locked = False

    def acquire(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the lock; False if it did not come."""
        with self._mutex:
            if not self._locked:
                self._locked = True
                return True
            turn = threading.Event()
            self._waiters.append(turn)
        if turn.wait(timeout):
            return True
        with self._mutex:
            if turn.is_set():  # handed over just as the wait timed out
                return True
            self._waiters.remove(turn)
            return False

    def release(self) -> None:
        """Give the lock to the longest waiter, or free it."""
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().set()  # stays locked: it now belongs to that waiter
            else:
                self._locked = False

    @property
    def queued(self) -> int:
        """How many threads wait (for logs and tests)."""
        return len(self._waiters)
