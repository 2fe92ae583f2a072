"""A small SNMPv2c agent serving a LibreNMS `.snmprec` capture on loopback (real UDP, real BER).

GET, GETNEXT and GETBULK over a sorted OID list, in a thread with a plain socket. Values can be
overridden or added per test (`set`), and a subtree can be re-rooted (`remap`) so a capture of a
MIB mirrored under an enterprise OID serves the standard one.
"""

from __future__ import annotations

import bisect
import socket
import threading
from pathlib import Path
from typing import Any

from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto import api
from pysnmp.proto.api import v2c

Oid = tuple[int, ...]
_TYPES: dict[str, Any] = {
    "2": v2c.Integer32,
    "4": v2c.OctetString,
    "6": v2c.ObjectIdentifier,
    "64": v2c.IpAddress,
    "65": v2c.Counter32,
    "66": v2c.Gauge32,
    "67": v2c.TimeTicks,
    "68": v2c.Opaque,
    "70": v2c.Counter64,
}


def _oid(text: str) -> Oid:
    return tuple(int(x) for x in text.strip().strip(".").split("."))


def parse_value(tag: str, text: str) -> Any:
    """One snmprec TYPE|VALUE as a pyasn1 value (`4x` = hex-encoded octets)."""
    hexed = tag.endswith("x")
    base = tag.rstrip("x")
    if base == "5":
        return v2c.Null("")
    kind = _TYPES[base]
    if hexed:
        return kind(hexValue=text) if base == "4" else kind(bytes.fromhex(text))
    if base in ("4", "68"):
        return kind(text.encode("latin-1", errors="replace"))
    if base == "6":
        return kind(text.strip("."))
    if base == "64":
        return kind(text)
    return kind(int(text))


def load_snmprec(path: Path) -> dict[Oid, Any]:
    """OID -> pyasn1 value for every parseable line of a capture."""
    data: dict[Oid, Any] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split("|", 2)
        if len(parts) != 3 or not parts[0]:
            continue
        try:
            data[_oid(parts[0])] = parse_value(parts[1], parts[2])
        except (KeyError, ValueError):
            continue  # a type this small agent does not serve
    return data


class SnmprecAgent:
    """Serves a capture with community `public` on 127.0.0.1 until stop()."""

    def __init__(self, path: Path, community: str = "public") -> None:
        self.community = community.encode()
        self._data = load_snmprec(path)
        self._lock = threading.Lock()
        self._rebuild()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port: int = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="snmprec-agent")

    def _rebuild(self) -> None:
        self._oids = sorted(self._data)

    def start(self) -> SnmprecAgent:
        """Start answering."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering and close the socket."""
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()

    def set(self, oid: str, tag: str, value: str) -> None:
        """Override (or add) one value, snmprec style: set("1.3...0", "2", "5")."""
        with self._lock:
            self._data[_oid(oid)] = parse_value(tag, value)
            self._rebuild()

    def save(self) -> dict[Oid, Any]:
        """A copy of the served data, for restore()."""
        with self._lock:
            return dict(self._data)

    def restore(self, saved: dict[Oid, Any]) -> None:
        """Serve saved data again."""
        with self._lock:
            self._data = dict(saved)
            self._rebuild()

    def delete(self, oid: str) -> None:
        """Remove one OID."""
        with self._lock:
            self._data.pop(_oid(oid), None)
            self._rebuild()

    def remap(self, old_prefix: str, new_prefix: str) -> None:
        """Serve every OID under old_prefix (also) under new_prefix."""
        old, new = _oid(old_prefix), _oid(new_prefix)
        with self._lock:
            for oid, value in list(self._data.items()):
                if oid[: len(old)] == old:
                    self._data[new + oid[len(old) :]] = value
            self._rebuild()

    def _next(self, oid: Oid) -> tuple[Oid, Any] | None:
        i = bisect.bisect_right(self._oids, oid)
        if i >= len(self._oids):
            return None
        found = self._oids[i]
        return found, self._data[found]

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                msg, addr = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                answer = self._answer(msg)
            except Exception:  # noqa: S112 - a test peer ignores what it cannot decode
                continue
            if answer is not None:
                self._sock.sendto(answer, addr)

    def _answer(self, msg: bytes) -> bytes | None:
        p_mod = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
        req, _ = decoder.decode(msg, asn1Spec=p_mod.Message())
        if bytes(p_mod.apiMessage.get_community(req)) != self.community:
            return None
        pdu = p_mod.apiMessage.get_pdu(req)
        rsp = p_mod.apiMessage.get_response(req)
        rsp_pdu = p_mod.apiMessage.get_pdu(rsp)
        names = [tuple(o) for o, _ in p_mod.apiPDU.get_varbinds(pdu)]
        out: list[tuple[Oid, Any]] = []
        with self._lock:
            if pdu.isSameTypeWith(p_mod.GetRequestPDU()):
                for name in names:
                    out.append((name, self._data.get(name, v2c.NoSuchInstance(""))))
            elif pdu.isSameTypeWith(p_mod.GetNextRequestPDU()):
                for name in names:
                    nxt = self._next(name)
                    out.append(nxt if nxt else (name, v2c.EndOfMibView("")))
            elif pdu.isSameTypeWith(p_mod.GetBulkRequestPDU()):
                non_rep = int(p_mod.apiBulkPDU.get_non_repeaters(pdu))
                max_rep = max(1, int(p_mod.apiBulkPDU.get_max_repetitions(pdu)))
                for name in names[:non_rep]:
                    nxt = self._next(name)
                    out.append(nxt if nxt else (name, v2c.EndOfMibView("")))
                cursors = list(names[non_rep:])
                for _ in range(min(max_rep, 60)):
                    for j, cur in enumerate(cursors):
                        nxt = self._next(cur)
                        if nxt is None:
                            out.append((cur, v2c.EndOfMibView("")))
                        else:
                            out.append(nxt)
                            cursors[j] = nxt[0]
            else:
                return None
        p_mod.apiPDU.set_varbinds(rsp_pdu, [(v2c.ObjectIdentifier(o), v) for o, v in out])
        return bytes(encoder.encode(rsp))
