"""A syslog (UDP) listener: RFC 5424 and RFC 3164 messages from devices, as log Readings.

Messages are mapped to devices by source address; others are counted and dropped. Each source
has a token bucket (like the trap receiver), so a chatty device cannot flood the agent, and the
queue to the agent is bounded. Parsing is lenient: a datagram that follows neither RFC still
becomes a message (facility user, severity notice) with its text.

Use: `listener = SyslogListener(settings, sources)`, `await listener.start()`, then
`readings = await listener.next_batch()`; `listener.close()` at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from collectors.base import Reading
from collectors.errors import CollectorError

logger = logging.getLogger(__name__)

SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
MAX_MESSAGE = 4096
LOG_METRIC = "syslog"

_PRI = re.compile(r"^<(\d{1,3})>")
_RFC5424 = re.compile(
    r"^1 (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) (?P<procid>\S+) (?P<msgid>\S+) "
    r"(?P<sd>-|(?:\[(?:[^\]\\]|\\.)*\])+)(?: (?P<msg>.*))?$",
    re.DOTALL,
)
_RFC3164 = re.compile(
    r"^(?P<ts>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (?:(?P<host>[^\s:\[]+) )?"
    r"(?:(?P<tag>[^\s:\[]{1,48})(?:\[(?P<pid>[^\]]*)\])?: ?)?(?P<msg>.*)$",
    re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class SyslogMessage:
    """One parsed syslog message."""

    facility: int
    severity: int
    timestamp: str
    hostname: str
    app: str
    text: str

    @property
    def severity_name(self) -> str:
        """emerg .. debug."""
        return SEVERITIES[self.severity]


def parse(datagram: bytes) -> SyslogMessage:
    """Parse one datagram as RFC 5424, else RFC 3164, else as bare text."""
    raw = datagram[:MAX_MESSAGE].decode("utf-8", errors="replace")
    raw = raw.removeprefix("\ufeff").rstrip("\r\n\x00")
    pri = 13  # user.notice, RFC 3164 section 4.3.3
    m = _PRI.match(raw)
    if m and int(m.group(1)) <= 191:
        pri = int(m.group(1))
        raw = raw[m.end() :]
    facility, severity = divmod(pri, 8)
    m5 = _RFC5424.match(raw)
    if m5:
        msg = (m5.group("msg") or "").removeprefix("\ufeff")
        return SyslogMessage(
            facility,
            severity,
            _nil(m5.group("ts")),
            _nil(m5.group("host")),
            _nil(m5.group("app")),
            msg,
        )
    m3 = _RFC3164.match(raw)
    if m3:
        return SyslogMessage(
            facility,
            severity,
            m3.group("ts"),
            m3.group("host") or "",
            m3.group("tag") or "",
            m3.group("msg"),
        )
    return SyslogMessage(facility, severity, "", "", "", raw)


def _nil(value: str) -> str:
    return "" if value == "-" else value


class SyslogSettings(BaseModel):
    """Where the listener binds and how much one source may send."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "0.0.0.0"  # devices send from the station LAN
    port: int = Field(default=514, ge=0, le=65535)  # 0: any free port (tests)
    rate_per_s: float = Field(default=50.0, gt=0)
    burst: int = Field(default=200, ge=1)
    queue_max: int = Field(default=5000, ge=1)


@dataclass(slots=True)
class SyslogCounters:
    """What one source sent and what became of it."""

    received: int = 0
    accepted: int = 0
    rate_limited: int = 0
    unknown_source: int = 0
    queue_full: int = 0


@dataclass
class _Source:
    counters: SyslogCounters = field(default_factory=SyslogCounters)
    tokens: float = -1.0
    stamp: float = 0.0


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: SyslogListener) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.owner.on_datagram(data, str(addr[0]))


class SyslogListener:
    """Receives syslog datagrams and queues them as log Readings of their devices."""

    def __init__(self, settings: SyslogSettings, sources: dict[str, str]) -> None:
        """`sources` maps a source IP address to the device id it belongs to."""
        self.settings = settings
        self.sources = sources
        self._counters: dict[str, _Source] = {}
        self._queue: asyncio.Queue[Reading] | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self.port = 0

    async def start(self) -> int:
        """Bind the UDP socket; returns the port."""
        self._queue = asyncio.Queue(self.settings.queue_max)
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2**20)
            sock.bind((self.settings.host, self.settings.port))
            transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), sock=sock)
        except OSError as exc:
            sock.close()
            raise CollectorError(
                f"cannot listen for syslog on {self.settings.host}:{self.settings.port}: "
                f"{exc.strerror or exc}"
            ) from None
        self._transport = transport
        self.port = int(transport.get_extra_info("sockname")[1])
        logger.info("syslog listener on %s:%d", self.settings.host, self.port)
        return self.port

    def on_datagram(self, data: bytes, source: str) -> None:
        """Rate-limit, parse and queue one datagram (bounded work)."""
        entry = self._counters.get(source)
        if entry is None:
            if len(self._counters) >= 1024:
                source = "other"
            entry = self._counters.setdefault(source, _Source())
        c = entry.counters
        c.received += 1
        device = self.sources.get(source)
        if device is None:
            c.unknown_source += 1
            return
        if not self._take(entry):
            c.rate_limited += 1
            return
        msg = parse(data)
        text = f"{msg.severity_name}: {msg.app + ': ' if msg.app else ''}{msg.text}"
        reading = Reading(device=device, metric=LOG_METRIC, value=text, component="", kind="log")
        assert self._queue is not None
        try:
            self._queue.put_nowait(reading)
        except asyncio.QueueFull:
            c.queue_full += 1
            return
        c.accepted += 1

    def _take(self, entry: _Source) -> bool:
        now = time.monotonic()
        s = self.settings
        if entry.tokens < 0:
            entry.tokens, entry.stamp = float(s.burst), now
        entry.tokens = min(float(s.burst), entry.tokens + (now - entry.stamp) * s.rate_per_s)
        entry.stamp = now
        if entry.tokens < 1.0:
            return False
        entry.tokens -= 1.0
        return True

    async def next_batch(self, max_items: int = 500, wait_s: float | None = None) -> list[Reading]:
        """Wait for at least one message (at most wait_s), then take up to max_items."""
        assert self._queue is not None, "start() first"
        out: list[Reading] = []
        try:
            async with asyncio.timeout(wait_s):
                out.append(await self._queue.get())
        except TimeoutError:
            return out
        while len(out) < max_items and not self._queue.empty():
            out.append(self._queue.get_nowait())
        return out

    def counters(self) -> dict[str, SyslogCounters]:
        """Counters per source address."""
        return {ip: dataclasses.replace(s.counters) for ip, s in self._counters.items()}

    def close(self) -> None:
        """Stop listening."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None
