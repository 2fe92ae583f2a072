"""Reading `.snmprec` captures (`OID|TYPE|VALUE` per line) into typed SNMP records.

TYPE is the ASN.1 tag number (2 INTEGER, 4 OCTET STRING, 5 NULL, 6 OBJECT IDENTIFIER,
64 IpAddress, 65 Counter32, 66 Gauge32, 67 TimeTicks, 68 Opaque, 70 Counter64); an `x` suffix
means the value is hex-encoded. Values are encoded once, with pyasn1, into BER.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyasn1.codec.ber import encoder
from pysnmp.proto.api import v2c

from simulators.errors import StationConfigError

Oid = tuple[int, ...]
RawValue = int | bytes | Oid

TAG_INTEGER = 2
TAG_OCTET_STRING = 4
TAG_NULL = 5
TAG_OID = 6
TAG_IP_ADDRESS = 64
TAG_COUNTER32 = 65
TAG_GAUGE32 = 66
TAG_TIMETICKS = 67
TAG_OPAQUE = 68
TAG_COUNTER64 = 70

_INT_RANGES: dict[int, tuple[int, int]] = {
    TAG_INTEGER: (-(2**31), 2**31 - 1),
    TAG_COUNTER32: (0, 2**32 - 1),
    TAG_GAUGE32: (0, 2**32 - 1),
    TAG_TIMETICKS: (0, 2**32 - 1),
    TAG_COUNTER64: (0, 2**64 - 1),
}
_ASN1_TYPES: dict[int, Any] = {
    TAG_INTEGER: v2c.Integer32,
    TAG_OCTET_STRING: v2c.OctetString,
    TAG_OID: v2c.ObjectIdentifier,
    TAG_IP_ADDRESS: v2c.IpAddress,
    TAG_COUNTER32: v2c.Counter32,
    TAG_GAUGE32: v2c.Gauge32,
    TAG_TIMETICKS: v2c.TimeTicks,
    TAG_OPAQUE: v2c.Opaque,
    TAG_COUNTER64: v2c.Counter64,
}
SUPPORTED_TAGS = frozenset([*_ASN1_TYPES, TAG_NULL])


@dataclass(frozen=True, slots=True)
class Record:
    """One OID with its ASN.1 tag and decoded value."""

    oid: Oid
    tag: int
    value: RawValue

    def encoded_value(self) -> bytes:
        """The BER encoding of the value (tag, length, contents)."""
        if self.tag == TAG_NULL:
            return b"\x05\x00"
        return bytes(encoder.encode(_ASN1_TYPES[self.tag](self.value)))

    def text(self) -> str:
        """The value as text (strings decoded leniently, numbers in decimal)."""
        if isinstance(self.value, bytes):
            if self.tag == TAG_IP_ADDRESS:
                return str(ipaddress.IPv4Address(self.value))
            return self.value.decode("utf-8", errors="replace")
        if isinstance(self.value, tuple):
            return format_oid(self.value)
        return str(self.value)


def parse_oid(text: str) -> Oid:
    """'1.3.6.1' or '.1.3.6.1' -> (1, 3, 6, 1); ValueError on anything else."""
    parts = text.strip().lstrip(".").split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"not a numeric OID: {text!r}")
    oid = tuple(int(p) for p in parts)
    if oid[0] > 2 or any(arc >= 2**32 for arc in oid):
        raise ValueError(f"not a valid OID: {text!r}")
    return oid


def format_oid(oid: Oid) -> str:
    """(1, 3, 6, 1) -> '1.3.6.1'."""
    return ".".join(map(str, oid))


def convert_value(tag: int, value: object, *, hexed: bool = False) -> RawValue:
    """Turn a textual or numeric value into the raw value of a record with that tag."""
    if tag not in SUPPORTED_TAGS:
        raise ValueError(f"unsupported SNMP type tag {tag}")
    text = str(value)
    if tag == TAG_NULL:
        return b""
    if hexed or (
        tag in (TAG_OCTET_STRING, TAG_OPAQUE, TAG_IP_ADDRESS) and isinstance(value, bytes)
    ):
        if not isinstance(value, bytes) and len(text) % 2:
            text = text[:-1] + "0" + text[-1]  # as snmpsim/pyasn1 read an odd-length hex value
        raw = value if isinstance(value, bytes) else bytes.fromhex(text)
        if tag in _INT_RANGES:
            return _in_range(tag, int.from_bytes(raw, "big"))
        if tag == TAG_OID:
            return parse_oid(raw.decode("ascii"))
        if tag == TAG_IP_ADDRESS and len(raw) != 4:
            raise ValueError(f"an IpAddress has 4 bytes, not {len(raw)}")
        return raw
    if tag in _INT_RANGES:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(f"expected an integer, got {value!r}")
        return _in_range(tag, int(text))
    if tag == TAG_OID:
        return parse_oid(text)
    if tag == TAG_IP_ADDRESS:
        return ipaddress.IPv4Address(text).packed
    return text.encode("utf-8")


def _in_range(tag: int, number: int) -> int:
    low, high = _INT_RANGES[tag]
    if not low <= number <= high:
        raise ValueError(f"{number} is out of range for type tag {tag}")
    return number


def parse_line(line: str) -> Record:
    """Parse one `OID|TYPE|VALUE` line; ValueError says what is wrong."""
    oid_text, sep1, rest = line.partition("|")
    tag_text, sep2, value_text = rest.partition("|")
    if not (sep1 and sep2):
        raise ValueError("expected OID|TYPE|VALUE")
    hexed = tag_text.endswith("x")
    tag_digits = tag_text[:-1] if hexed else tag_text
    if not tag_digits.isdigit():
        raise ValueError(f"bad type {tag_text!r} (variation modules are not supported)")
    tag = int(tag_digits)
    return Record(parse_oid(oid_text), tag, convert_value(tag, value_text, hexed=hexed))


def load_snmprec(path: Path) -> list[Record]:
    """Read a capture, sorted by OID; errors name the file and line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise StationConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    records: dict[Oid, Record] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            record = parse_line(line)
        except ValueError as exc:
            raise StationConfigError(f"{path}:{number}: {exc}") from None
        if record.oid in records:
            raise StationConfigError(f"{path}:{number}: duplicate OID {format_oid(record.oid)}")
        records[record.oid] = record
    return [records[oid] for oid in sorted(records)]
