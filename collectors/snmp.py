"""SNMP v1/v2c/v3 access with pysnmp 7 (asyncio), and the SNMP collector built on it.

Layers, bottom up:
- `SnmpEngineHolder`: the one pysnmp SnmpEngine of the agent process, created on first use and
  warmed up at agent start.
- `SnmpClient`: GET of many OIDs and multi-column table walks for one target. Every pysnmp
  outcome is mapped here into collectors.errors; no pysnmp exception or type escapes.
- `SnmpCollector`: the Collector for a profile's `snmp:` section.

Values come back as plain Python: Integer/Counter/Gauge/TimeTicks/Unsigned -> int,
OctetString/Opaque/Bits -> bytes (raw: may be binary, e.g. a MAC address; collectors.values decodes
text), IpAddress -> dotted-quad str, OBJECT IDENTIFIER -> dotted str. noSuchObject,
noSuchInstance, endOfMibView and NULL mean "absent": the OID is left out of the result.

SNMPv3 privacy names follow net-snmp: "AES192"/"AES256" are the draft-blumenthal key extension
(net-snmp's AES-192/AES-256); "AES192C"/"AES256C" the Reeder extension used by Cisco.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pyasn1.error import PyAsn1Error
from pyasn1.type import univ
from pysnmp.error import PySnmpError
from pysnmp.hlapi.v3arch import asyncio as hlapi
from pysnmp.proto import errind, rfc1902, rfc1905

from collectors import values
from collectors.base import Reading
from collectors.errors import AuthFailed, CollectorError, DeviceUnreachable, DeviceUnreadable
from collectors.profiles import SnmpSource, SnmpTable, ValueMap
from collectors.targets import SnmpTarget

logger = logging.getLogger(__name__)
MAX_IN_FLIGHT = 32  # SNMP requests outstanding per agent

MAX_OIDS_PER_GET = 40  # many agents refuse or truncate larger PDUs
MAX_ROWS_PER_COLUMN = 20_000  # a walk past this is a runaway agent, not a device table

_AUTH_PROTOCOLS: dict[str, Any] = {
    "MD5": hlapi.USM_AUTH_HMAC96_MD5,
    "SHA": hlapi.USM_AUTH_HMAC96_SHA,
    "SHA224": hlapi.USM_AUTH_HMAC128_SHA224,
    "SHA256": hlapi.USM_AUTH_HMAC192_SHA256,
    "SHA384": hlapi.USM_AUTH_HMAC256_SHA384,
    "SHA512": hlapi.USM_AUTH_HMAC384_SHA512,
}
_PRIV_PROTOCOLS: dict[str, Any] = {
    "DES": hlapi.USM_PRIV_CBC56_DES,
    "AES": hlapi.USM_PRIV_CFB128_AES,
    "AES192": hlapi.USM_PRIV_CFB192_AES_BLUMENTHAL,
    "AES256": hlapi.USM_PRIV_CFB256_AES_BLUMENTHAL,
    "AES192C": hlapi.USM_PRIV_CFB192_AES,
    "AES256C": hlapi.USM_PRIV_CFB256_AES,
}

# errorIndications that mean "the agent (or we) refused the credentials".
_AUTH_INDICATIONS: tuple[type[Exception], ...] = (
    errind.WrongDigest,
    errind.UnknownUserName,
    errind.AuthenticationError,
    errind.AuthenticationFailure,
    errind.DecryptionError,
    errind.UnknownSecurityName,
    errind.UnknownCommunityName,
    errind.UnsupportedSecurityLevel,
    errind.UnsupportedAuthProtocol,
    errind.UnsupportedPrivProtocol,
    errind.NoAuthentication,
    errind.NoEncryption,
    errind.EncryptionError,
)
_ERR_TOO_BIG = 1
_ERR_NO_SUCH_NAME = 2  # SNMPv1's answer to a missing OID / end of MIB


def _drop_undecodable_messages(engine: Any) -> None:
    """Make the engine drop a datagram it cannot decode, quietly.

    pysnmp decodes incoming datagrams in an event-loop callback; a garbage datagram (a broken or
    hostile device) raises there, e.g. TypeError deep in pyasn1, and asyncio logs a traceback
    per packet. The request it was meant to answer simply times out.
    """
    dispatcher = engine.message_dispatcher
    receive = dispatcher.receive_message

    def guarded(snmp_engine: Any, domain: Any, address: Any, whole_msg: bytes) -> None:
        try:
            receive(snmp_engine, domain, address, whole_msg)
        except Exception as exc:  # anything from decoding junk; never let it reach the loop
            logger.debug(
                "dropped an undecodable SNMP datagram from %s (%d bytes): %s",
                address,
                len(whole_msg),
                type(exc).__name__,
            )

    dispatcher.receive_message = guarded


class SnmpEngineHolder:
    """The agent's one SnmpEngine, created lazily inside the running event loop.

    A pysnmp engine is bound to the event loop it first ran in; if asked from another loop
    (a restarted agent loop, a new test), the old engine is closed and a fresh one made.
    """

    def __init__(self) -> None:
        self._engine: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._v3_credentials: dict[str, set[str]] = {}  # user name -> digests of its key sets
        self._v3_locks: dict[str, asyncio.Lock] = {}
        self.in_flight: asyncio.Semaphore = asyncio.Semaphore(MAX_IN_FLIGHT)

    def engine(self) -> Any:
        """The engine for the running event loop (created on first call)."""
        loop = asyncio.get_running_loop()
        if self._engine is None or self._loop is not loop:
            self.close()
            self._engine = hlapi.SnmpEngine()
            _drop_undecodable_messages(self._engine)
            self._loop = loop
            self.in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
        return self._engine

    def register_v3_user(self, username: str, digest: str) -> None:
        """Note a v3 user's key set (a digest, never the keys) used by some target."""
        self._v3_credentials.setdefault(username, set()).add(digest)

    def v3_lock(self, username: str) -> asyncio.Lock | None:
        """A lock serialising requests of a user name that targets use with different keys.

        pysnmp keeps one USM entry per user name: two targets with the same name and other keys
        overwrite each other's entry, and a response checked against the other keys is dropped.
        One request at a time per such name keeps them apart.
        """
        if len(self._v3_credentials.get(username, ())) < 2:
            return None
        return self._v3_locks.setdefault(username, asyncio.Lock())

    async def warm_up(self) -> float:
        """Create the engine and load the MIB modules a first request needs; returns seconds."""
        started = time.perf_counter()
        engine = self.engine()
        try:
            engine.get_mib_builder().load_modules(
                "SNMPv2-TM", "PYSNMP-MIB", "PYSNMP-SOURCE-MIB", "PYSNMP-USM-MIB"
            )
        except PySnmpError as exc:  # a renamed module only costs the first request some time
            logger.debug("snmp engine warm-up: %s", exc)
        return time.perf_counter() - started

    def close(self) -> None:
        """Close the engine's sockets and timers; a later call to engine() makes a new one."""
        engine, self._engine, self._loop = self._engine, None, None
        self._v3_locks.clear()  # asyncio locks belong to the old loop
        if engine is None:
            return
        try:
            engine.close_dispatcher()
        except Exception as exc:  # closing after the loop died must not break shutdown
            logger.debug("snmp engine close: %s", exc)


def plain_value(value: Any) -> object | None:
    """A pysnmp/pyasn1 value as plain Python, or None for absent (noSuch*, endOfMibView, NULL)."""
    if isinstance(value, rfc1905.NoSuchObject | rfc1905.NoSuchInstance | rfc1905.EndOfMibView):
        return None
    if isinstance(value, univ.Null):
        return None
    if isinstance(value, rfc1902.IpAddress):
        raw = bytes(value.asOctets())
        return socket.inet_ntoa(raw) if len(raw) == 4 else raw
    if isinstance(value, univ.OctetString):
        return bytes(value.asOctets())
    if isinstance(value, univ.ObjectIdentifier):
        return ".".join(str(x) for x in value)
    if isinstance(value, univ.Integer):
        return int(value)
    raise DeviceUnreadable(f"unexpected SNMP value type {type(value).__name__}")


def _oid_tuple(oid: str) -> tuple[int, ...]:
    return tuple(int(x) for x in oid.strip(".").split("."))


def _oid_text(oid: Sequence[int]) -> str:
    return ".".join(str(x) for x in oid)


class SnmpClient:
    """GETs and table walks against one SNMP agent; raises only collectors.errors."""

    def __init__(
        self, target: SnmpTarget, engine: SnmpEngineHolder, *, device_id: str = ""
    ) -> None:
        self.target = target
        self.device_id = device_id or f"{target.host}:{target.port}"
        self._holder = engine
        self._transport: Any = None
        self._auth = self._auth_data(target)
        if target.version == "3" and target.username:
            engine.register_v3_user(target.username, self._credential_digest(target))

    @staticmethod
    def _credential_digest(t: SnmpTarget) -> str:
        """A digest telling key sets apart without keeping them in another place."""
        parts = [
            t.auth_protocol or "",
            t.auth_key.get_secret_value() if t.auth_key else "",
            t.priv_protocol or "",
            t.priv_key.get_secret_value() if t.priv_key else "",
        ]
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()

    @staticmethod
    def _auth_data(t: SnmpTarget) -> Any:
        """pysnmp auth data for the target (community or USM user); secrets stay in pysnmp."""
        if t.version in ("1", "2c"):
            assert t.community is not None  # enforced by SnmpTarget
            return hlapi.CommunityData(
                t.community.get_secret_value(), mpModel=0 if t.version == "1" else 1
            )
        assert t.username is not None
        return hlapi.UsmUserData(
            t.username,
            authKey=t.auth_key.get_secret_value() if t.auth_key else None,
            privKey=t.priv_key.get_secret_value() if t.priv_key else None,
            authProtocol=_AUTH_PROTOCOLS[t.auth_protocol] if t.auth_protocol else None,
            privProtocol=_PRIV_PROTOCOLS[t.priv_protocol] if t.priv_protocol else None,
        )

    @property
    def _budget_s(self) -> float:
        """How long pysnmp may take for one request, all retries included."""
        return self.target.timeout_s * (self.target.retries + 1)

    async def _transport_target(self) -> Any:
        if self._transport is None:
            try:
                self._transport = await hlapi.UdpTransportTarget.create(
                    (self.target.host, self.target.port),
                    timeout=self.target.timeout_s,
                    retries=self.target.retries,
                )
            except PySnmpError:
                raise DeviceUnreachable(f"cannot resolve SNMP host {self.target.host!r}") from None
        return self._transport

    async def _request(
        self, what: str, call: Callable[..., Awaitable[Any]], *args: Any
    ) -> tuple[int, int, list[tuple[tuple[int, ...], Any]]]:
        """Run one pysnmp command; return (errorStatus, errorIndex, varbinds) or raise ours."""
        transport = await self._transport_target()
        engine = self._holder.engine()
        lock = (
            self._holder.v3_lock(self.target.username or "") if self.target.version == "3" else None
        )
        try:
            async with contextlib.AsyncExitStack() as stack:
                if lock is not None:
                    await stack.enter_async_context(lock)
                # pysnmp is CPU-bound: hundreds of requests at once only make each one late
                # enough to time out (measured in benchmarks/snmp_poller.py).
                await stack.enter_async_context(self._holder.in_flight)
                # pysnmp enforces the timeout itself; this outer bound only guards against a
                # lost callback, so a request can never hang the poll.
                async with asyncio.timeout(self._budget_s + 1.0):
                    ei, es, ex, vbs = await call(
                        engine, self._auth, transport, hlapi.ContextData(), *args, lookupMib=False
                    )
        except TimeoutError:
            self._transport = None  # re-resolve the host next time
            raise DeviceUnreachable(f"SNMP timeout after {self._budget_s:g}s ({what})") from None
        except (PySnmpError, PyAsn1Error) as exc:
            raise DeviceUnreadable(f"SNMP {what} failed: {type(exc).__name__}") from None
        except Exception as exc:  # the boundary: nothing from pysnmp may escape
            logger.debug("%s: SNMP %s raised", self.device_id, what, exc_info=True)
            raise DeviceUnreadable(f"SNMP {what} failed: {type(exc).__name__}") from None
        if ei:
            raise self._map_indication(ei, what)
        try:
            status = int(es) if es else 0
            index = int(ex) if ex else 0
            pairs = [(tuple(int(x) for x in name), val) for name, val in vbs]
        except (TypeError, ValueError, PyAsn1Error):
            raise DeviceUnreadable(f"SNMP {what}: malformed response") from None
        return status, index, pairs

    def _map_indication(self, ei: object, what: str) -> CollectorError:
        if isinstance(ei, errind.RequestTimedOut):
            self._transport = None
            return DeviceUnreachable(
                f"SNMP timeout after {self._budget_s:g}s ({what}, {self.target.retries + 1} tries)"
            )
        if isinstance(ei, _AUTH_INDICATIONS):
            return AuthFailed(f"SNMP v{self.target.version} credentials refused: {ei}")
        return DeviceUnreadable(f"SNMP {what} failed: {ei}")

    @staticmethod
    def _status_error(what: str, status: int, index: int) -> DeviceUnreadable:
        try:
            name = rfc1905.errorStatus.getNamedValues().getName(status) or str(status)
        except Exception:  # unknown status codes have no name
            name = str(status)
        return DeviceUnreadable(f"SNMP {what}: agent answered {name} (index {index})")

    async def get(self, oids: list[str]) -> dict[str, object]:
        """GET many OIDs (chunked per PDU); absent OIDs are left out of the result."""
        wanted = [o.strip(".") for o in dict.fromkeys(oids)]
        found: dict[str, object] = {}
        for start in range(0, len(wanted), MAX_OIDS_PER_GET):
            await self._get_chunk(wanted[start : start + MAX_OIDS_PER_GET], found)
        return found

    async def _get_chunk(self, chunk: list[str], found: dict[str, object]) -> None:
        remaining = list(chunk)
        while remaining:
            vbs = [hlapi.ObjectType(hlapi.ObjectIdentity(o)) for o in remaining]
            status, index, pairs = await self._request("get", hlapi.get_cmd, *vbs)
            if status == _ERR_NO_SUCH_NAME and 1 <= index <= len(remaining):
                # SNMPv1 fails the whole PDU for one missing OID: drop it and ask again.
                del remaining[index - 1]
                continue
            if status == _ERR_TOO_BIG and len(remaining) > 1:
                half = len(remaining) // 2
                await self._get_chunk(remaining[:half], found)
                await self._get_chunk(remaining[half:], found)
                return
            if status:
                raise self._status_error("get", status, index)
            asked = set(remaining)
            for name, raw in pairs:
                oid = _oid_text(name)
                value = plain_value(raw)
                if oid in asked and value is not None:
                    found[oid] = value
            return

    async def columns_with_rows(self, columns: list[str]) -> set[str]:
        """Which of these table columns have at least one row: one GETNEXT for all of them."""
        pending = [c.strip(".") for c in dict.fromkeys(columns)]
        found: set[str] = set()
        while pending:
            request = [hlapi.ObjectType(hlapi.ObjectIdentity(c)) for c in pending]
            status, index, pairs = await self._request("getnext", hlapi.next_cmd, *request)
            if status == _ERR_NO_SUCH_NAME and 1 <= index <= len(pending):
                del pending[index - 1]  # SNMPv1: nothing at all after that column
                continue
            if status:
                raise self._status_error("getnext", status, index)
            for col, (name, raw) in zip(pending, pairs, strict=False):
                base = _oid_tuple(col)
                inside = len(name) > len(base) and name[: len(base)] == base
                if inside and plain_value(raw) is not None:
                    found.add(col)
            break
        return found

    async def walk_columns(self, columns: list[str]) -> dict[str, dict[str, object]]:
        """Walk table columns together (GETBULK, GETNEXT on v1): column -> {index suffix: value}."""
        cols = [c.strip(".") for c in dict.fromkeys(columns)]
        prefix = {c: _oid_tuple(c) for c in cols}
        result: dict[str, dict[str, object]] = {c: {} for c in cols}
        last = dict(prefix)  # where each column's walk goes on from
        pending = list(cols)
        repetitions = self.target.max_repetitions
        while pending:
            request = [hlapi.ObjectType(hlapi.ObjectIdentity(_oid_text(last[c]))) for c in pending]
            if self.target.version == "1":
                status, index, pairs = await self._request("walk", hlapi.next_cmd, *request)
                if status == _ERR_NO_SUCH_NAME and 1 <= index <= len(pending):
                    del pending[index - 1]  # v1 end of MIB for that column
                    continue
            else:
                status, index, pairs = await self._request(
                    "walk", hlapi.bulk_cmd, 0, repetitions, *request
                )
                if status == _ERR_TOO_BIG and repetitions > 1:
                    repetitions //= 2  # agents should truncate instead, but some answer tooBig
                    continue
            if status:
                raise self._status_error("walk", status, index)
            if not pairs:
                raise DeviceUnreadable("SNMP walk: empty response")
            finished: set[str] = set()
            advanced = False
            # GETBULK answers in wire order: repetition by repetition, one varbind per column.
            for i, (name, raw) in enumerate(pairs):
                col = pending[i % len(pending)]
                if col in finished:
                    continue
                base = prefix[col]
                if isinstance(raw, rfc1905.EndOfMibView) or name[: len(base)] != base:
                    finished.add(col)
                    continue
                if name <= last[col]:
                    raise DeviceUnreadable(f"SNMP walk of {col}: OID not increasing")
                last[col] = name
                advanced = True
                value = plain_value(raw)
                if value is not None:
                    result[col][_oid_text(name[len(base) :])] = value
                if len(result[col]) > MAX_ROWS_PER_COLUMN:
                    raise DeviceUnreadable(
                        f"SNMP walk of {col}: more than {MAX_ROWS_PER_COLUMN} rows"
                    )
            if not advanced and not finished:
                raise DeviceUnreadable("SNMP walk: the agent's answer made no progress")
            pending = [c for c in pending if c not in finished]
        return result


class SnmpCollector:
    """Reads a profile's SNMP scalars (one GET) and tables (one multi-column walk each)."""

    def __init__(
        self,
        device_id: str,
        target: SnmpTarget,
        source: SnmpSource,
        engine_holder: SnmpEngineHolder,
    ) -> None:
        self.device_id = device_id
        self.source = source
        self.client = SnmpClient(target, engine_holder, device_id=device_id)

    async def collect(self) -> list[Reading]:
        """Poll the device once; DeviceUnreadable when it has none of the profile's data."""
        started = time.perf_counter()
        ts = time.time()
        readings: list[Reading] = []
        scalars_found = 0
        if self.source.scalars:
            got = await self.client.get([s.oid for s in self.source.scalars])
            for scalar in self.source.scalars:
                if scalar.oid in got:
                    scalars_found += 1
                    readings.append(self._reading(scalar, got[scalar.oid], "", ts))
        rows_found = 0
        for table in self.source.tables:
            table_readings, rows = await self._table(table, ts)
            readings.extend(table_readings)
            rows_found += rows
        if not scalars_found and not rows_found:
            raise DeviceUnreadable("SNMP agent answered but has none of the profile's OIDs")
        logger.debug(
            "%s: %d SNMP readings in %.3fs",
            self.device_id,
            len(readings),
            time.perf_counter() - started,
        )
        return readings

    async def _table(self, table: SnmpTable, ts: float) -> tuple[list[Reading], int]:
        """Readings of one table plus a row count per column metric; returns (readings, rows)."""
        name_col = [table.component_oid] if table.component_oid else []
        walked = await self.client.walk_columns(name_col + [c.oid for c in table.columns])
        names = (
            self._component_names(walked.get(table.component_oid, {}))
            if table.component_oid
            else {}
        )
        readings: list[Reading] = []
        rows = 0
        for col in table.columns:
            cells = walked.get(col.oid, {})
            rows = max(rows, len(cells))
            for index, raw in cells.items():
                readings.append(self._reading(col, raw, names.get(index, index), ts))
            readings.append(
                Reading(
                    device=self.device_id,
                    metric=col.metric,
                    value=len(cells),
                    component="",
                    unit="rows",
                    kind="metric",
                    ts=ts,
                )
            )
        return readings, rows

    @staticmethod
    def _component_names(cells: dict[str, object]) -> dict[str, str]:
        """Row index -> component name; empty names fall back to the index, duplicates get it."""
        names: dict[str, str] = {}
        used: set[str] = set()
        for index, raw in cells.items():
            name = values.as_text(raw)
            if not name:
                continue
            if name in used:
                name = f"{name}#{index}"
            used.add(name)
            names[index] = name
        return names

    def _reading(self, vm: ValueMap, raw: object, component: str, ts: float) -> Reading:
        value = values.convert(vm, raw)
        return Reading(
            device=self.device_id,
            metric=vm.metric,
            value=value,
            component=component,
            unit=vm.unit,
            kind="state" if vm.is_state else "metric",
            ts=ts,
        )

    async def close(self) -> None:
        """Nothing to release: the engine is shared and owned by the SnmpEngineHolder."""
