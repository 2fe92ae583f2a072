"""SNMP trap and inform receiver (pysnmp 7): v1/v2c communities and v3 USM users, on its own
engine and UDP socket, reporting which fault each profile-mapped trap raises or clears (checks.traps
grades it: collectors never grade).

Storm protection, in the order a datagram meets it:
1. size cap, a per-source token bucket and one for all sources together, *before* any
   decoding: a flooding device costs a dict lookup per datagram, not a BER decode (pysnmp
   decodes a few hundred traps per second) or a decryption;
   datagrams from addresses no device is configured with are dropped there too;
2. after decoding, a dedup window per (device, fault code, component): the same raise (or
   clear) again within the window is a duplicate, a change of state always passes;
3. a bounded queue between the receiver and the agent: when full, traps are dropped and counted.
Every suppression is counted per source (`counters()`), so HQ can be told what was not seen.
A storm (a source's traps dropped by a rate limit or a full queue) is logged once at WARNING
when it starts (source, device, its rate) and once when it ends, `storm_quiet_s` after the last
such drop (how long, and how many traps were suppressed meanwhile): never a line per trap.
Informs that pass are acknowledged by pysnmp; informs dropped by the rate limit are not, and the
sender retries them.

Use: `receiver = TrapReceiver(settings, devices)`, `port = await receiver.start()`, then
`events = await receiver.next_batch()` in a loop; `receiver.close()` at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config as snmp_config
from pysnmp.entity import engine as snmp_engine
from pysnmp.entity.rfc3413 import ntfrcv
from pysnmp.proto import rfc1902

from collectors.base import Value
from collectors.errors import CollectorError
from collectors.profiles import TrapSpec
from collectors.snmp import plain_value
from collectors.values import as_text

logger = logging.getLogger(__name__)

SNMP_TRAP_OID = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)
MAX_DATAGRAM = 8192  # a trap bigger than this is not a device trap
MAX_VARBINDS_SHOWN = 8
OTHER_SOURCES = "other"  # counters of sources past max_sources are pooled here

_AUTH: dict[str, Any] = {
    "MD5": snmp_config.USM_AUTH_HMAC96_MD5,
    "SHA": snmp_config.USM_AUTH_HMAC96_SHA,
    "SHA224": snmp_config.USM_AUTH_HMAC128_SHA224,
    "SHA256": snmp_config.USM_AUTH_HMAC192_SHA256,
    "SHA384": snmp_config.USM_AUTH_HMAC256_SHA384,
    "SHA512": snmp_config.USM_AUTH_HMAC384_SHA512,
}
_PRIV: dict[str, Any] = {
    "DES": snmp_config.USM_PRIV_CBC56_DES,
    "AES": snmp_config.USM_PRIV_CFB128_AES,
    "AES192": snmp_config.USM_PRIV_CFB192_AES_BLUMENTHAL,
    "AES256": snmp_config.USM_PRIV_CFB256_AES_BLUMENTHAL,
}


class TrapV3User(BaseModel):
    """A USM user traps and informs may come from.

    `engine_id` (hex) is the sender's engine ID, needed for v3 *traps* (the sender is
    authoritative); v3 informs use the receiver's own engine ID and need none.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    username: str
    auth_protocol: Literal["MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"] | None = None
    auth_key: SecretStr | None = None
    priv_protocol: Literal["DES", "AES", "AES192", "AES256"] | None = None
    priv_key: SecretStr | None = None
    engine_id: str | None = Field(default=None, pattern=r"^(0x)?[0-9a-fA-F]{10,64}$")


class TrapSettings(BaseModel):
    """Where the receiver listens, whom it accepts and how hard it protects the agent."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "0.0.0.0"  # devices send from the station LAN
    port: int = Field(default=162, ge=0, le=65535)  # 0: any free port (tests)
    communities: list[SecretStr] = Field(default_factory=list)
    v3_users: list[TrapV3User] = Field(default_factory=list)
    rate_per_s: float = Field(default=20.0, gt=0)  # sustained traps per source
    burst: int = Field(default=50, ge=1)  # traps a source may send at once
    dedup_s: float = Field(default=30.0, ge=0)  # same trap again within this is a duplicate
    # All sources together (a mains failure makes every device trap at once): bounds the decode
    # work, which pysnmp does at a few hundred traps per second of one core.
    total_rate_per_s: float = Field(default=200.0, gt=0)
    total_burst: int = Field(default=500, ge=1)
    queue_max: int = Field(default=1000, ge=1)
    max_sources: int = Field(default=1024, ge=1)
    storm_quiet_s: float = Field(default=10.0, gt=0)  # a storm ends after this long without drops


@dataclass(frozen=True, slots=True)
class TrapDevice:
    """A device traps may come from: its id and its profile's trap mappings."""

    device_id: str
    traps: Sequence[TrapSpec]


@dataclass(frozen=True, slots=True)
class TrapEvent:
    """A mapped trap as received: the fault code it raises or clears, on which component."""

    device_id: str
    source: str
    trap_oid: str
    code: str
    component: str
    raised: bool  # the mapping's action: raise (True) or clear (False)
    values: dict[str, Value]  # a few of its varbinds, as plain values
    received_at: float


@dataclass(slots=True)
class SourceCounters:
    """What one source sent and what became of it."""

    received: int = 0  # datagrams seen
    accepted: int = 0  # mapped traps queued for the agent
    rate_limited: int = 0  # dropped before decoding (token bucket, oversize)
    duplicates: int = 0  # same trap within the dedup window
    unmapped: int = 0  # decoded, but the profile maps no such trap OID
    unknown_source: int = 0  # from an address no device is configured with; not decoded
    queue_full: int = 0  # dropped because the agent did not keep up

    @property
    def suppressed(self) -> int:
        """Traps from this source the agent will not act on."""
        return self.rate_limited + self.duplicates + self.queue_full


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class _RateMeter:
    """The arrival rate over a source's last few datagrams (a burst shows at the rate it
    arrives, not diluted by quiet minutes before it)."""

    __slots__ = ("arrivals",)
    SPAN = 16

    def __init__(self) -> None:
        self.arrivals: deque[float] = deque(maxlen=self.SPAN)

    def tick(self, now: float) -> None:
        """Count one datagram."""
        self.arrivals.append(now)

    def rate(self, now: float) -> float:
        """Datagrams per second over the last SPAN arrivals."""
        if len(self.arrivals) < 2:
            return 0.0
        return (len(self.arrivals) - 1) / max(now - self.arrivals[0], 1e-3)


@dataclass(slots=True)
class _Storm:
    """A source's traps being dropped by the limits: since when, and its counters then."""

    started: float  # monotonic
    last_drop: float
    at_start: SourceCounters


@dataclass
class _Source:
    counters: SourceCounters = field(default_factory=SourceCounters)
    bucket: _Bucket | None = None
    meter: _RateMeter = field(default_factory=_RateMeter)
    storm: _Storm | None = None


class TrapReceiver:
    """Receives traps/informs on one UDP socket and queues the mapped ones as TrapEvents."""

    def __init__(self, settings: TrapSettings, devices: dict[str, TrapDevice]) -> None:
        """`devices` maps a source IP address to the device that sends from it."""
        self.settings = settings
        self.devices = devices
        self._maps: dict[str, dict[str, TrapSpec]] = {
            ip: {t.oid: t for t in d.traps} for ip, d in devices.items()
        }
        self._sources: OrderedDict[str, _Source] = OrderedDict()
        self._seen: dict[tuple[str, str, str], tuple[str, float]] = {}
        self._total: _Bucket | None = None
        self._queue: asyncio.Queue[TrapEvent] | None = None
        self._engine: Any = None
        self._receiver: Any = None
        self._current_source = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._storm_timer: asyncio.TimerHandle | None = None
        self.port = 0

    async def start(self) -> int:
        """Bind the socket and start receiving; returns the UDP port."""
        self._queue = asyncio.Queue(self.settings.queue_max)
        self._loop = asyncio.get_running_loop()
        engine = snmp_engine.SnmpEngine()
        self._engine = engine
        self._guard(engine)
        for i, community in enumerate(self.settings.communities):
            snmp_config.add_v1_system(engine, f"trap-c{i}", community.get_secret_value())
        for user in self.settings.v3_users:
            self._add_user(engine, user)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 2**20)
            sock.bind((self.settings.host, self.settings.port))
        except OSError as exc:
            sock.close()
            raise CollectorError(
                f"cannot listen for traps on {self.settings.host}:{self.settings.port}: "
                f"{exc.strerror or exc}"
            ) from None
        self.port = int(sock.getsockname()[1])
        transport = udp.UdpAsyncioTransport().open_server_mode(sock=sock)
        snmp_config.add_transport(engine, udp.DOMAIN_NAME, transport)
        self._receiver = ntfrcv.NotificationReceiver(engine, self._on_notification)
        await asyncio.sleep(0)  # let the datagram endpoint come up
        logger.info("trap receiver listening on %s:%d", self.settings.host, self.port)
        return self.port

    @staticmethod
    def _add_user(engine: Any, user: TrapV3User) -> None:
        kwargs: dict[str, Any] = {}
        if user.auth_protocol and user.auth_key:
            kwargs["authProtocol"] = _AUTH[user.auth_protocol]
            kwargs["authKey"] = user.auth_key.get_secret_value()
        if user.priv_protocol and user.priv_key:
            kwargs["privProtocol"] = _PRIV[user.priv_protocol]
            kwargs["privKey"] = user.priv_key.get_secret_value()
        if user.engine_id:
            hexed = user.engine_id.removeprefix("0x")
            kwargs["securityEngineId"] = rfc1902.OctetString(hexValue=hexed)
        snmp_config.add_v3_user(engine, user.username, **kwargs)

    def _guard(self, engine: Any) -> None:
        """Check size and rate per source before pysnmp decodes a datagram."""
        dispatcher = engine.message_dispatcher
        receive = dispatcher.receive_message
        s = self.settings

        def guarded(snmp_eng: Any, domain: Any, address: Any, whole_msg: bytes) -> None:
            source = str(address[0]) if address else "?"
            entry = self._source(source)
            entry.counters.received += 1
            if source not in self.devices:
                entry.counters.unknown_source += 1  # no device to attribute it to: not decoded
                return
            entry.meter.tick(time.monotonic())
            if len(whole_msg) > MAX_DATAGRAM:
                entry.counters.rate_limited += 1
                return
            over = None
            if not self._take_token(entry):
                over = f"over its limit of {s.rate_per_s:g}/s (burst {s.burst})"
            elif not self._take_total_token():
                over = f"over the limit of all sources together ({s.total_rate_per_s:g}/s)"
            if over is not None:
                entry.counters.rate_limited += 1
                self._dropped(source, entry, over, "rate_limited")
                return
            self._current_source = source
            try:
                receive(snmp_eng, domain, address, whole_msg)
            except Exception as exc:  # junk from the network must never reach the loop
                logger.debug("dropped an undecodable trap from %s: %s", source, type(exc).__name__)
            finally:
                self._current_source = ""

        dispatcher.receive_message = guarded

    def _source(self, source: str) -> _Source:
        entry = self._sources.get(source)
        if entry is not None:
            return entry
        if len(self._sources) >= self.settings.max_sources:
            source = OTHER_SOURCES
            entry = self._sources.get(source)
            if entry is not None:
                return entry
        entry = _Source()
        self._sources[source] = entry
        return entry

    def _take_token(self, entry: _Source) -> bool:
        now = time.monotonic()
        s = self.settings
        if entry.bucket is None:
            entry.bucket = _Bucket(float(s.burst), now)
        b = entry.bucket
        b.tokens = min(float(s.burst), b.tokens + (now - b.stamp) * s.rate_per_s)
        b.stamp = now
        if b.tokens < 1.0:
            return False
        b.tokens -= 1.0
        return True

    def _take_total_token(self) -> bool:
        """The bucket shared by all sources."""
        now = time.monotonic()
        s = self.settings
        b = self._total
        if b is None:
            b = self._total = _Bucket(float(s.total_burst), now)
        b.tokens = min(float(s.total_burst), b.tokens + (now - b.stamp) * s.total_rate_per_s)
        b.stamp = now
        if b.tokens < 1.0:
            return False
        b.tokens -= 1.0
        return True

    def _on_notification(
        self,
        snmp_eng: Any,
        state_reference: Any,
        context_engine_id: Any,
        context_name: Any,
        var_binds: Any,
        cb_ctx: Any,
    ) -> None:
        """pysnmp callback: map, dedup and queue one decoded notification (bounded work)."""
        source = self._current_source
        entry = self._source(source)
        pairs = [(tuple(int(x) for x in name), value) for name, value in list(var_binds)[:64]]
        trap_oid = ""
        for name, value in pairs:
            if name == SNMP_TRAP_OID:
                trap_oid = as_text(plain_value(value))
        spec = self._maps.get(source, {}).get(trap_oid)
        if spec is None:
            entry.counters.unmapped += 1
            return
        device = self.devices[source]
        component = _component(spec, pairs)
        now = time.monotonic()
        key = (device.device_id, spec.code, component)
        last = self._seen.get(key)
        if last is not None and last[0] == spec.action and now - last[1] < self.settings.dedup_s:
            entry.counters.duplicates += 1  # the same news again; a change of state always passes
            return
        self._seen[key] = (spec.action, now)
        if len(self._seen) > 10_000:
            self._forget(now)
        event = TrapEvent(
            device.device_id,
            source,
            trap_oid,
            spec.code,
            component,
            spec.action == "raise",
            _shown_values(pairs),
            time.time(),
        )
        assert self._queue is not None
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            entry.counters.queue_full += 1
            self._dropped(
                source, entry, "faster than the agent takes them (queue full)", "queue_full"
            )
            return
        entry.counters.accepted += 1

    # ---- storms: logged once when they start and once when they end ---------------------

    def _dropped(
        self, source: str, entry: _Source, why: str, counter: Literal["rate_limited", "queue_full"]
    ) -> None:
        """A trap of `source` was dropped by a limit (`counter` already counts it): start its
        storm, or keep it going."""
        now = time.monotonic()
        if entry.storm is not None:
            entry.storm.last_drop = now
            return
        # The counters just before this datagram: the drop that starts the storm is part of it.
        before = dataclasses.replace(entry.counters)
        before.received -= 1
        setattr(before, counter, getattr(before, counter) - 1)
        entry.storm = _Storm(now, now, before)
        logger.warning(
            "trap storm from %s (%s): about %.0f traps/s, %s; suppressing its traps until "
            "%g s pass without a drop",
            source,
            self._device_of(source),
            entry.meter.rate(now),
            why,
            self.settings.storm_quiet_s,
        )
        if self._storm_timer is None and self._loop is not None:
            self._storm_timer = self._loop.call_later(self.settings.storm_quiet_s, self._calm)

    def _device_of(self, source: str) -> str:
        device = self.devices.get(source)
        return device.device_id if device is not None else "several devices"

    def _calm(self) -> None:
        """End the storms quiet for storm_quiet_s; look again when the next one may be."""
        self._storm_timer = None
        now = time.monotonic()
        quiet = self.settings.storm_quiet_s
        next_check: float | None = None
        for source, entry in self._sources.items():
            storm = entry.storm
            if storm is None:
                continue
            due = storm.last_drop + quiet
            if due <= now:
                self._end_storm(source, entry, now)
            else:
                next_check = due if next_check is None else min(next_check, due)
        if next_check is not None and self._loop is not None:
            self._storm_timer = self._loop.call_later(next_check - now, self._calm)

    def _end_storm(self, source: str, entry: _Source, now: float, note: str = "") -> None:
        storm = entry.storm
        assert storm is not None
        entry.storm = None
        c, was = entry.counters, storm.at_start
        rate_limited = c.rate_limited - was.rate_limited
        duplicates = c.duplicates - was.duplicates
        queue_full = c.queue_full - was.queue_full
        logger.warning(
            "trap storm from %s (%s) ended%s after %.0f s: %d trap(s) suppressed of %d received "
            "(rate-limited %d, duplicates %d, queue full %d)",
            source,
            self._device_of(source),
            note,
            now - storm.started,
            rate_limited + duplicates + queue_full,
            c.received - was.received,
            rate_limited,
            duplicates,
            queue_full,
        )

    def _forget(self, now: float) -> None:
        """Drop dedup entries older than the window."""
        window = self.settings.dedup_s
        self._seen = {k: v for k, v in self._seen.items() if now - v[1] < window}

    async def next_batch(
        self, max_items: int = 200, wait_s: float | None = None
    ) -> list[TrapEvent]:
        """Wait for at least one event (at most wait_s), then take up to max_items."""
        assert self._queue is not None, "start() first"
        events: list[TrapEvent] = []
        try:
            async with asyncio.timeout(wait_s):
                events.append(await self._queue.get())
        except TimeoutError:
            return events
        while len(events) < max_items and not self._queue.empty():
            events.append(self._queue.get_nowait())
        return events

    def counters(self) -> dict[str, SourceCounters]:
        """Counters per source address (a copy)."""
        return {ip: dataclasses.replace(s.counters) for ip, s in self._sources.items()}

    def suppressed_total(self) -> int:
        """Traps suppressed from every source so far."""
        return sum(s.counters.suppressed for s in self._sources.values())

    def close(self) -> None:
        """Stop receiving and release the socket."""
        engine, self._engine = self._engine, None
        if engine is None:
            return
        if self._storm_timer is not None:
            self._storm_timer.cancel()
            self._storm_timer = None
        now = time.monotonic()
        for source, entry in self._sources.items():
            if entry.storm is not None:  # its count must not be lost with the receiver
                self._end_storm(source, entry, now, " (receiver closed)")
        if self._receiver is not None:
            with contextlib.suppress(Exception):
                self._receiver.close(engine)
        try:
            engine.close_dispatcher()
        except Exception as exc:  # closing after the loop died must not break shutdown
            logger.debug("trap engine close: %s", exc)


def _component(spec: TrapSpec, pairs: list[tuple[tuple[int, ...], Any]]) -> str:
    """The component named by the spec's varbind (first whose OID starts with it), or ""."""
    if not spec.component_oid:
        return ""
    prefix = tuple(int(x) for x in spec.component_oid.split("."))
    for name, value in pairs:
        if name[: len(prefix)] == prefix:
            try:
                return as_text(plain_value(value))[:64]
            except CollectorError:
                return ""
    return ""


def _shown_values(pairs: list[tuple[tuple[int, ...], Any]]) -> dict[str, Value]:
    """A few varbinds (not sysUpTime / snmpTrapOID) for the fault event, as plain values."""
    shown: dict[str, Value] = {}
    for name, value in pairs[2 : 2 + MAX_VARBINDS_SHOWN]:
        try:
            plain = plain_value(value)
        except CollectorError:
            continue
        text = as_text(plain) if not isinstance(plain, int) else plain
        shown[".".join(map(str, name))] = text[:200] if isinstance(text, str) else text
    return shown
