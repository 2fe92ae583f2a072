"""Login throttling: after too many failed passwords for one user name or from one client
address within a window, further logins are refused for a lock-out period, before the password
is checked.

The state is kept in memory, per HQ process: a login failure must not cost a database write
(on SQLite every write queues behind the one writer, so failed logins would be a cheap way to
slow ingest down), and losing the counters on a restart is harmless. The price: a deployment
with several processes or replicas has a limit per process (N failures per process, not per
deployment), and a restart forgets the counters.

A login in progress counts against the limit until its outcome is known, so parallel requests
cannot get more than N passwords checked between two lock-outs.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hq_server.core.errors import AuthError, LoginThrottled

logger = logging.getLogger(__name__)

# Keys tracked at most (user names and addresses together); beyond, expired ones and then the
# oldest ones are forgotten, so that a flood of made-up user names cannot exhaust memory.
MAX_KEYS = 100_000
# Retry-After when the limit is only reached by logins still in progress.
IN_PROGRESS_RETRY_S = 1


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """How many failures within which window lock a key out, and for how long."""

    max_failures: int
    window: timedelta
    lockout: timedelta


@dataclass(slots=True)
class _KeyState:
    failures: deque[datetime] = field(default_factory=deque)
    in_progress: int = 0
    locked_until: datetime | None = None

    def forget_old(self, now: datetime, policy: ThrottlePolicy) -> None:
        while self.failures and self.failures[0] <= now - policy.window:
            self.failures.popleft()
        if self.locked_until is not None and self.locked_until <= now:
            self.locked_until = None

    @property
    def idle(self) -> bool:
        return not self.failures and not self.in_progress and self.locked_until is None


_KINDS = {"user": "for this user name", "client": "from this address"}


def _keys(username: str, client: str | None) -> list[str]:
    # Prefixed so that a user called like an address never shares a counter with it.
    return [f"user:{username}"] + ([f"client:{client}"] if client else [])


class LoginThrottle:
    """Failed-login counters per user name and per client address; thread-safe."""

    def __init__(self, policy: ThrottlePolicy, max_keys: int = MAX_KEYS) -> None:
        self.policy = policy
        self._max_keys = max_keys
        self._states: dict[str, _KeyState] = {}
        self._lock = threading.Lock()

    @contextmanager
    def attempt(self, username: str, client: str | None, now: datetime) -> Iterator[None]:
        """Admit one login (LoginThrottled if locked out), then record how it ended.

        An AuthError leaving the block is a failed login; leaving normally is a success, which
        resets the user's counter (not the address's: others may share it). Other errors
        (e.g. the database being down) say nothing about the password and count for nothing.
        """
        keys = _keys(username, client)
        self._admit(keys, now)
        try:
            yield
        except AuthError:
            self._finish(keys, now, failed=True)
            raise
        except BaseException:
            self._finish(keys, now, failed=False)
            raise
        self._finish(keys, now, failed=False, reset=keys[0])

    def _admit(self, keys: list[str], now: datetime) -> None:
        with self._lock:
            waits = {key: wait for key in keys if (wait := self._wait(key, now)) is not None}
            if waits:
                seconds = max(1, math.ceil(max(waits.values()).total_seconds()))
                which = " and ".join(_KINDS[key.partition(":")[0]] for key in waits)
                raise LoginThrottled(
                    f"too many failed logins {which}; try again in {seconds} s", seconds
                )
            for key in keys:
                self._states.setdefault(key, _KeyState()).in_progress += 1
            self._bound(now)

    def _wait(self, key: str, now: datetime) -> timedelta | None:
        """How long `key` must wait before a login is admitted; None: admitted now."""
        state = self._states.get(key)
        if state is None:
            return None
        state.forget_old(now, self.policy)
        if state.locked_until is not None:
            return state.locked_until - now
        if len(state.failures) + state.in_progress >= self.policy.max_failures:
            return timedelta(seconds=IN_PROGRESS_RETRY_S)
        return None

    def _finish(
        self, keys: list[str], now: datetime, *, failed: bool, reset: str | None = None
    ) -> None:
        with self._lock:
            for key in keys:
                state = self._states[key]
                state.in_progress -= 1
                if key == reset:
                    state.failures.clear()
                elif failed:
                    self._fail(key, state, now)
                if state.idle:
                    del self._states[key]

    def _fail(self, key: str, state: _KeyState, now: datetime) -> None:
        state.forget_old(now, self.policy)
        state.failures.append(now)
        if len(state.failures) >= self.policy.max_failures:
            # A fresh count after the lock-out: the failures that caused it are spent.
            state.failures.clear()
            state.locked_until = now + self.policy.lockout
            logger.warning(
                "logins for %s locked until %s after %d failed attempts",
                key,
                state.locked_until.isoformat(),
                self.policy.max_failures,
            )

    def _bound(self, now: datetime) -> None:
        """Forget expired keys, then the oldest ones not mid-login, while there are too many."""
        if len(self._states) <= self._max_keys:
            return
        for key, state in list(self._states.items()):
            state.forget_old(now, self.policy)
            if state.idle:
                del self._states[key]
        for key in list(self._states):
            if len(self._states) <= self._max_keys:
                break
            if not self._states[key].in_progress:
                del self._states[key]

    @classmethod
    def of(cls, max_failures: int, window: timedelta, lockout: timedelta) -> LoginThrottle:
        """A throttle with this policy."""
        return cls(ThrottlePolicy(max_failures=max_failures, window=window, lockout=lockout))

    def tracked(self) -> int:
        """How many user names and addresses have state (tests, diagnostics)."""
        with self._lock:
            return len(self._states)
