"""How `hq serve` runs uvicorn: limits on what idle and slow clients may hold, and logs that a
flood of them cannot blow up.

- Open files: the soft RLIMIT_NOFILE is raised to the hard one at start (systemd's default soft
  limit is 1,024, which ~1,000 idle connections exhaust). Out of file descriptors, asyncio's
  accept loop logs a traceback per pending connection, a thousand a second, and stops answering.
- Connections: at most `max_connections` are open (fewer if the open files limit cannot hold them,
  a full listen backlog and a reserve for the database and logs); one past it is closed as soon
  as it is accepted, and while HQ is at the limit a request is answered 503 (uvicorn's
  `limit_concurrency`).
- Headers: a client must send a request's headers within `header_timeout` of connecting (or of
  its first byte on a kept-alive connection), and the rest of a body HQ has already answered
  (e.g. a 401 before the body was read) within that time too; otherwise the connection is closed.
  Idle kept-alive connections close after `keep_alive_timeout`. Headers are limited to
  `max_header_bytes`. A body the app reads must be all in within `body_timeout` (answered 408,
  hq_server.api.body).
- Logs: the lines one such client can make HQ write per connection or request are let through
  once per interval, with a count of those held back.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from hq_server.core.changes import feed
from hq_server.core.settings import Settings

logger = logging.getLogger(__name__)

# File descriptors kept for everything but client connections (database, logs, key file...).
RESERVED_FDS = 256
# Used when the hard limit is unlimited (the kernel refuses a soft limit above fs.nr_open).
UNLIMITED_TARGET = 1 << 20
# How often a flooding log line is let through.
FLOOD_INTERVAL_S = 10.0
# uvicorn's exit status when the server could not start (uvicorn.main.STARTUP_FAILURE).
STARTUP_FAILURE = 3
# Lines of uvicorn and asyncio written once per connection or request, or per pending connection
# when out of file descriptors; a flood of clients would otherwise flood the log.
FLOODING_LINES = {
    "asyncio": ("socket.accept() out of system resource",),
    "uvicorn.error": ("Exceeded concurrency limit.", "Invalid HTTP request received."),
    __name__: ("refused a connection",),
}


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (logged); the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED_TARGET if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError) as exc:  # e.g. a seccomp filter refusing setrlimit
            logger.warning(
                "could not raise the open files limit from %d to %d: %s", soft, target, exc
            )
        else:
            logger.info("raised the open files limit from %d to %d", soft, target)
            soft = target
    return soft


def connection_limits(max_connections: int, backlog: int, open_files: int) -> tuple[int, int]:
    """The connection cap and listen backlog that `open_files` descriptors can hold (lowered
    with a warning when they cannot hold the settings).

    asyncio accepts up to `backlog` connections in one go before the protocol of any of them
    can refuse one, so a full backlog must fit in the descriptors left above the cap.
    """
    budget = max(64, open_files - RESERVED_FDS)
    fitted_backlog = min(backlog, max(16, budget // 4))
    cap = min(max_connections, budget - fitted_backlog)
    if (cap, fitted_backlog) != (max_connections, backlog):
        logger.warning(
            "max_connections %d and listen_backlog %d lowered to %d and %d: the open files "
            "limit is %d (raise LimitNOFILE / ulimit -n to allow more)",
            max_connections,
            backlog,
            cap,
            fitted_backlog,
            open_files,
        )
    return cap, fitted_backlog


class RateLimitFilter(logging.Filter):
    """Let each listed message (matched by its start) through once per interval; the next one
    let through tells how many were held back meanwhile."""

    def __init__(
        self,
        prefixes: Iterable[str],
        interval_s: float = FLOOD_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.prefixes = tuple(prefixes)
        self.interval_s = interval_s
        self.clock = clock
        self._next: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a listed message seen less than an interval ago."""
        text = str(record.msg)
        prefix = next((p for p in self.prefixes if text.startswith(p)), None)
        if prefix is None:
            return True
        now = self.clock()
        if now < self._next.get(prefix, float("-inf")):
            self._held[prefix] = self._held.get(prefix, 0) + 1
            return False
        self._next[prefix] = now + self.interval_s
        held = self._held.pop(prefix, 0)
        if held:
            record.msg = f"{text} [{held} more like this in the last {self.interval_s:g} s]"
        return True


def install_log_filters(interval_s: float = FLOOD_INTERVAL_S) -> list[RateLimitFilter]:
    """Rate-limit the flooding lines of asyncio and uvicorn (see FLOODING_LINES)."""
    filters = []
    for name, prefixes in FLOODING_LINES.items():
        named = logging.getLogger(name)
        for old in [f for f in named.filters if isinstance(f, RateLimitFilter)]:
            named.removeFilter(old)
        flood_filter = RateLimitFilter(prefixes, interval_s)
        named.addFilter(flood_filter)
        filters.append(flood_filter)
    return filters


def guarded_protocol(max_connections: int, header_timeout: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a cap on open connections and a deadline for headers."""

    class GuardedH11Protocol(H11Protocol):
        """H11Protocol closing connections past the cap and clients slow to send a request."""

        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            """Admit the connection, or close it at once when too many are open."""
            assert isinstance(transport, asyncio.Transport)
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                logger.warning(
                    "refused a connection from %s: %d connections open (max_connections)",
                    self.client[0] if self.client else "?",
                    len(self.connections) - 1,
                )
                transport.close()
                return
            self._watch()

        def data_received(self, data: bytes) -> None:
            """Handle the data, then start or stop the deadline for the client's request."""
            super().data_received(data)
            self._watch()

        def connection_lost(self, exc: Exception | None) -> None:
            """Forget the deadline along with the connection."""
            self._cancel()
            super().connection_lost(exc)

        def _owes_request(self) -> bool:
            # No request of this connection is with the app, and the client has not finished
            # sending one: the headers of the next one, or the body of one already answered.
            if self.cycle is not None and not self.cycle.response_complete:
                return False
            return self.conn.their_state in (h11.IDLE, h11.SEND_BODY)

        def _watch(self) -> None:
            if self.transport.is_closing() or not self._owes_request():
                self._cancel()
            elif self._deadline is None:  # from the first byte on: more bytes do not extend it
                self._deadline = self.loop.call_later(header_timeout, self._expired)

        def _cancel(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            if not self.transport.is_closing() and self._owes_request():
                logger.debug(
                    "closing the connection of %s: no request within %g s",
                    self.client[0] if self.client else "?",
                    header_timeout,
                )
                self.transport.close()

    return GuardedH11Protocol


def server_config(app: FastAPI, settings: Settings, log_level: str) -> uvicorn.Config:
    """uvicorn's configuration for HQ (raises the open files limit first; see the module)."""
    cap, backlog = connection_limits(
        settings.max_connections, settings.listen_backlog, raise_open_files_limit()
    )
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": log_level,
        "server_header": False,
        # A line per request (every agent polls every few seconds) only when debugging;
        # uvicorn sets its access logger's level itself, so quiet_libraries cannot.
        "access_log": log_level == "debug",
        "http": guarded_protocol(cap, settings.header_timeout),
        # X-Forwarded-For is HQ's business (hq_server.api.forwarded, `trusted_proxies`):
        # uvicorn's own handling would believe any local client.
        "proxy_headers": False,
        "limit_concurrency": cap,
        "timeout_keep_alive": settings.keep_alive_timeout,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "backlog": backlog,
    }
    config = uvicorn.Config(app, **options)  # configures uvicorn's loggers
    install_log_filters()
    return config


class _Server(uvicorn.Server):
    """uvicorn's server, ending the console's live streams (hq_server.core.changes) as soon as
    it is told to stop: it waits for open responses, and those would never end."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Close the change feed, then stop as uvicorn does."""
        feed.close()
        super().handle_exit(sig, frame)


def serve(config: uvicorn.Config) -> int:
    """Run the server until it is stopped; its exit status."""
    server = _Server(config)
    try:
        server.run()
    except SystemExit as exc:  # uvicorn exits this way when it cannot bind
        return exc.code if isinstance(exc.code, int) else 1
    return 0 if server.started else STARTUP_FAILURE
