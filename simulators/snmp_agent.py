"""A fast SNMP v1/v2c command responder (GET, GETNEXT, GETBULK) on an asyncio loop,
and the notification originator (v2c traps, informs retried until acknowledged, storms).

Requests are decoded with pysnmp.proto.api / pyasn1; responses are framed around the
pre-encoded varbinds of the device's current `MibView`. A wrong community gets no answer,
as on a real agent. All agents of a station share one event loop in a background thread.
Notifications leave from the device's own UDP socket, so a receiver sees each simulated
device as its own source (127.0.0.1:<device port>); inform acknowledgements come back there.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, cast

from pyasn1.codec.ber import decoder
from pyasn1.error import PyAsn1Error
from pysnmp.proto import api
from pysnmp.proto.error import ProtocolError

from simulators import ber
from simulators.errors import SimulatorError
from simulators.snmp_data import MibView, SnmpDevice
from simulators.snmprec import TAG_OID, TAG_TIMETICKS, Oid, Record, parse_oid

logger = logging.getLogger(__name__)

_V1 = api.PROTOCOL_MODULES[api.SNMP_VERSION_1]
_V2C = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
_GET, _NEXT, _BULK, _SET = "get", "next", "bulk", "set"
_PDU_KINDS: dict[Any, str] = {
    _V2C.GetRequestPDU.tagSet: _GET,
    _V2C.GetNextRequestPDU.tagSet: _NEXT,
    _V2C.GetBulkRequestPDU.tagSet: _BULK,
    _V2C.SetRequestPDU.tagSet: _SET,
}
_NO_SUCH_NAME = 2  # SNMPv1 error-status
_TOO_BIG = 1
_NOT_WRITABLE = 17

SYS_UPTIME = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SNMP_TRAP_OID = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)
MAX_STORM_TRAPS = 1_000_000
MAX_STORM_RATE = 100_000.0  # traps per second
MAX_RESPONSE_BYTES = 16_384  # a GETBULK reply is cut (at a row boundary) before this size
MAX_REPETITIONS = 512  # bounds the work one request can put on the event loop


def _message_version(data: bytes) -> int:
    """The SNMP version field; read directly in the usual short form (saves ~30 us)."""
    if len(data) > 8 and data[0] == ber.SEQUENCE:
        start = 2 if data[1] < 0x80 else 2 + (data[1] & 0x7F)
        if data[start : start + 2] == b"\x02\x01":
            return data[start + 2]
    return int(api.decodeMessageVersion(data))


class SnmpResponder:
    """Answers one device's SNMP requests from its current view (pure, no I/O)."""

    def __init__(self, device: SnmpDevice) -> None:
        self.device = device
        self.community = device.spec.community.encode()
        self._specs = {api.SNMP_VERSION_1: _V1.Message(), api.SNMP_VERSION_2C: _V2C.Message()}

    def respond(self, data: bytes) -> bytes | None:
        """The response datagram for a request datagram, or None to stay silent."""
        version = _message_version(data)
        spec = self._specs.get(version)
        if spec is None:
            return None  # SNMPv3 and unknown versions are not served
        mod = api.PROTOCOL_MODULES[version]
        msg, _ = decoder.decode(data, asn1Spec=spec)
        if mod.apiMessage.get_community(msg).asOctets() != self.community:
            return None
        pdu = mod.apiMessage.get_pdu(msg)
        kind = _PDU_KINDS.get(pdu.tagSet)
        if kind is None:
            return None  # responses, traps, reports: nothing to answer
        request_id = int(mod.apiPDU.get_request_id(pdu))
        oids: list[Oid] = [name.asTuple() for name, _ in mod.apiPDU.get_varbinds(pdu)]
        view = self.device.view  # one snapshot for the whole request
        v1 = version == api.SNMP_VERSION_1
        if kind == _SET:
            status = _NO_SUCH_NAME if v1 else _NOT_WRITABLE
            return self._error(version, request_id, status, 1 if oids else 0, oids)
        if kind == _BULK:
            non_repeaters = int(_V2C.apiBulkPDU.get_non_repeaters(pdu))
            max_repetitions = int(_V2C.apiBulkPDU.get_max_repetitions(pdu))
            varbinds = self._bulk(view, oids, non_repeaters, max_repetitions)
        else:
            found = self._get(view, oids, v1) if kind == _GET else self._next(view, oids, v1)
            if isinstance(found, int):
                return self._error(version, request_id, _NO_SUCH_NAME, found, oids)
            varbinds = found
        reply = ber.response(version, self.community, request_id, 0, 0, varbinds)
        if len(reply) > MAX_RESPONSE_BYTES and kind != _BULK:
            return self._error(version, request_id, _TOO_BIG, 0, oids)
        return reply

    def _error(
        self, version: int, request_id: int, status: int, index: int, oids: list[Oid]
    ) -> bytes:
        varbinds = [ber.varbind(oid, ber.NULL) for oid in oids]
        return ber.response(version, self.community, request_id, status, index, varbinds)

    @staticmethod
    def _get(view: MibView, oids: list[Oid], v1: bool) -> list[bytes] | int:
        """Varbinds for a GET, or (SNMPv1) the 1-based index of the first missing OID."""
        out: list[bytes] = []
        for n, oid in enumerate(oids, start=1):
            index = view.exact(oid)
            if index is not None and not (v1 and index in view.counter64):
                out.append(view.varbinds[index])
            elif v1:
                return n
            else:
                missing = ber.NO_SUCH_INSTANCE if view.has_under(oid[:-1]) else ber.NO_SUCH_OBJECT
                out.append(ber.varbind(oid, missing))
        return out

    @staticmethod
    def _successor(view: MibView, index: int, v1: bool) -> int | None:
        end = len(view.oids)
        while v1 and index < end and index in view.counter64:
            index += 1  # SNMPv1 cannot carry Counter64: such OIDs do not exist for it
        return index if index < end else None

    def _next(self, view: MibView, oids: list[Oid], v1: bool) -> list[bytes] | int:
        """Varbinds for a GETNEXT, or (SNMPv1) the 1-based index at the end of the MIB."""
        out: list[bytes] = []
        for n, oid in enumerate(oids, start=1):
            index = self._successor(view, view.after(oid), v1)
            if index is not None:
                out.append(view.varbinds[index])
            elif v1:
                return n
            else:
                out.append(ber.varbind(oid, ber.END_OF_MIB_VIEW))
        return out

    def _bulk(
        self, view: MibView, oids: list[Oid], non_repeaters: int, max_repetitions: int
    ) -> list[bytes]:
        """Varbinds for a GETBULK (RFC 3416 4.2.3), cut at a row boundary when too big."""
        non_repeaters = min(max(non_repeaters, 0), len(oids))
        max_repetitions = min(max(max_repetitions, 0), MAX_REPETITIONS)
        found = self._next(view, oids[:non_repeaters], False)
        assert isinstance(found, list)
        out = found
        size = sum(map(len, out))
        names = list(oids[non_repeaters:])
        positions = [view.after(oid) for oid in names]
        end = len(view.oids)
        for _ in range(max_repetitions if names else 0):
            row: list[bytes] = []
            more = False
            for j, position in enumerate(positions):
                if position < end:
                    row.append(view.varbinds[position])
                    names[j] = view.oids[position]
                    positions[j] = position + 1
                    more = True
                else:
                    row.append(ber.varbind(names[j], ber.END_OF_MIB_VIEW))
            row_size = sum(map(len, row))
            if size + row_size > MAX_RESPONSE_BYTES and out:
                break
            out.extend(row)
            size += row_size
            if not more:
                break
        return out


@dataclass(frozen=True)
class Notification:
    """One notification to send: where to, as what, with which varbinds."""

    target: tuple[str, int]
    community: str
    trap_oid: str
    varbinds: list[Record] = field(default_factory=list)
    inform: bool = False
    timeout_s: float = 1.0
    retries: int = 3


def _response_request_id(data: bytes) -> int | None:
    """The request-id of a v2c Response PDU (an inform acknowledgement), else None."""
    try:
        if _message_version(data) != api.SNMP_VERSION_2C:
            return None
        msg, _ = decoder.decode(data, asn1Spec=_V2C.Message())
        pdu = _V2C.apiMessage.get_pdu(msg)
        if pdu.tagSet != _V2C.ResponsePDU.tagSet:
            return None
        return int(_V2C.apiPDU.get_request_id(pdu))
    except (PyAsn1Error, ProtocolError, ValueError, TypeError):
        return None


class SnmpProtocol(asyncio.DatagramProtocol):
    """The UDP endpoint of one simulated agent."""

    def __init__(self, device: SnmpDevice) -> None:
        self.responder = SnmpResponder(device)
        self.device = device
        self.transport: asyncio.DatagramTransport | None = None
        self.started = time.monotonic()
        self.informs: dict[int, asyncio.Future[None]] = {}  # request-id -> acknowledged
        self._ids = itertools.count(random.randint(1, 2**20))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport to send replies on."""
        self.transport = cast(asyncio.DatagramTransport, transport)

    def encode(self, note: Notification, request_id: int | None = None) -> tuple[int, bytes]:
        """(request-id, datagram) of a notification; sysUpTime.0 and snmpTrapOID.0 first."""
        rid = next(self._ids) & 0x7FFFFFFF if request_id is None else request_id
        uptime = int((time.monotonic() - self.started) * 100) & 0xFFFFFFFF
        records = [
            Record(SYS_UPTIME, TAG_TIMETICKS, uptime),
            Record(SNMP_TRAP_OID, TAG_OID, parse_oid(note.trap_oid)),
            *note.varbinds,
        ]
        varbinds = [ber.varbind(r.oid, r.encoded_value()) for r in records]
        tag = ber.INFORM_REQUEST if note.inform else ber.SNMPV2_TRAP
        return rid, ber.message(api.SNMP_VERSION_2C, note.community.encode(), tag, rid, varbinds)

    async def notify(self, note: Notification) -> dict[str, Any]:
        """Send a trap (once) or an inform (until acknowledged or out of retries)."""
        if self.transport is None:
            raise SimulatorError(f"{self.device.id}: the SNMP endpoint is closed")
        rid, datagram = self.encode(note)
        if not note.inform:
            self.transport.sendto(datagram, note.target)
            return {"sent": 1, "inform": False, "request_id": rid}
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.informs[rid] = future
        attempts = 0
        try:
            for attempts in range(1, note.retries + 2):
                self.transport.sendto(datagram, note.target)
                try:
                    await asyncio.wait_for(asyncio.shield(future), note.timeout_s)
                except TimeoutError:
                    continue
                return {"sent": attempts, "inform": True, "acked": True, "request_id": rid}
            return {"sent": attempts, "inform": True, "acked": False, "request_id": rid}
        finally:
            self.informs.pop(rid, None)
            future.cancel()

    async def storm(self, note: Notification, count: int, rate: float) -> dict[str, Any]:
        """Send `count` traps at `rate` per second (paced, bounded); returns what was sent."""
        if self.transport is None:
            raise SimulatorError(f"{self.device.id}: the SNMP endpoint is closed")
        loop = asyncio.get_running_loop()
        _, template = self.encode(note, request_id=0x7FFFFFFF)  # varbinds encoded once
        marker = ber.integer(0x7FFFFFFF)
        head, _, tail = template.partition(marker)
        started = loop.time()
        for n in range(count):
            rid = 0x01000000 | (next(self._ids) & 0x00FFFFFF)  # always 4 minimal BER bytes
            self.transport.sendto(head + b"\x02\x04" + rid.to_bytes(4, "big") + tail, note.target)
            due = started + (n + 1) / rate
            delay = due - loop.time()
            if delay > 0.002 or n % 64 == 63:
                await asyncio.sleep(max(0.0, delay))  # pace, and let other endpoints run
        elapsed = loop.time() - started
        return {"sent": count, "seconds": round(elapsed, 3), "rate": round(count / elapsed, 1)}

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        """Answer one request (or not: hang, wrong community, undecodable)."""
        if self.informs and data[:1] == b"\x30":
            rid = _response_request_id(data)
            if rid is not None:
                future = self.informs.get(rid)
                if future is not None and not future.done():
                    future.set_result(None)
                return
        behaviour = self.device.behaviour
        if behaviour == "hang" or self.transport is None:
            return
        if behaviour == "garbage":
            self.transport.sendto(random.randbytes(random.randint(8, 200)), addr)
            return
        try:
            reply = self.responder.respond(data)
        except (PyAsn1Error, ProtocolError, ValueError, TypeError) as exc:
            logger.debug("%s: undecodable datagram from %s: %s", self.device.id, addr, exc)
            return
        if reply is not None:
            self.transport.sendto(reply, addr)


class SnmpServer:
    """Every SNMP agent of a station on one asyncio event loop in a background thread."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="sim-snmp-loop", daemon=True)
        self._transports: list[asyncio.DatagramTransport] = []
        self._protocols: dict[str, SnmpProtocol] = {}

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def start(self) -> None:
        """Start the event loop thread."""
        self._thread.start()

    def add(self, device: SnmpDevice, port: int) -> int:
        """Serve a device on 127.0.0.1:port (0: ephemeral); returns the bound port."""
        future = asyncio.run_coroutine_threadsafe(self._bind(device, port), self._loop)
        try:
            return future.result(timeout=10)
        except OSError as exc:
            raise SimulatorError(
                f"{device.id}: cannot listen on udp 127.0.0.1:{port}: {exc.strerror or exc}"
            ) from None

    async def _bind(self, device: SnmpDevice, port: int) -> int:
        transport, protocol = await self._loop.create_datagram_endpoint(
            lambda: SnmpProtocol(device), local_addr=("127.0.0.1", port)
        )
        self._transports.append(transport)
        self._protocols[device.id] = protocol
        return int(transport.get_extra_info("sockname")[1])

    def _protocol(self, device_id: str) -> SnmpProtocol:
        protocol = self._protocols.get(device_id)
        if protocol is None:
            raise SimulatorError(f"{device_id}: no SNMP endpoint is running")
        return protocol

    def notify(self, device_id: str, note: Notification, wait_s: float | None = None) -> Any:
        """Send a trap or inform from a device; blocks until sent (informs: acked or given up)."""
        protocol = self._protocol(device_id)
        future = asyncio.run_coroutine_threadsafe(protocol.notify(note), self._loop)
        limit = wait_s if wait_s is not None else note.timeout_s * (note.retries + 1) + 5
        try:
            return future.result(timeout=limit)
        except TimeoutError:
            future.cancel()
            raise SimulatorError(f"{device_id}: notification not sent within {limit:g} s") from None

    def notify_later(self, device_id: str, note: Notification) -> None:
        """Send a trap from a device without waiting (condition-triggered traps)."""
        protocol = self._protocol(device_id)

        def done(fut: Any) -> None:
            if not fut.cancelled() and fut.exception() is not None:
                logger.warning("%s: trap not sent: %s", device_id, fut.exception())

        asyncio.run_coroutine_threadsafe(protocol.notify(note), self._loop).add_done_callback(done)

    def storm(self, device_id: str, note: Notification, count: int, rate: float) -> Any:
        """Send `count` traps at `rate`/s from a device; blocks until all are sent."""
        if not 1 <= count <= MAX_STORM_TRAPS:
            raise ValueError(f"count must be 1..{MAX_STORM_TRAPS}")
        if not 0 < rate <= MAX_STORM_RATE:
            raise ValueError(f"rate must be > 0 and <= {MAX_STORM_RATE:g} per second")
        protocol = self._protocol(device_id)
        future = asyncio.run_coroutine_threadsafe(protocol.storm(note, count, rate), self._loop)
        try:
            return future.result(timeout=count / rate * 2 + 30)
        except TimeoutError:
            future.cancel()
            raise SimulatorError(f"{device_id}: trap storm did not finish in time") from None

    def stop(self) -> None:
        """Close every endpoint and stop the loop thread."""
        self._protocols.clear()
        if not self._thread.is_alive():
            if not self._loop.is_closed():
                self._loop.close()
            return

        def close_all() -> None:
            for transport in self._transports:
                transport.close()
            self._loop.call_soon(self._loop.stop)

        self._loop.call_soon_threadsafe(close_all)
        self._thread.join(timeout=10)
        self._loop.close()
