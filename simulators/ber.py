"""The few BER encoders the SNMP responder needs to frame responses fast.

Requests are decoded with pyasn1 (via pysnmp.proto.api); values are pre-encoded with pyasn1
when data is loaded. Only the framing (sequences, integers, OIDs) is written here, because
building a response through pyasn1 objects costs ~60 us per varbind.
"""

from __future__ import annotations

from simulators.snmprec import Oid

SEQUENCE = 0x30
INTEGER = 0x02
OCTET_STRING = 0x04
OBJECT_IDENTIFIER = 0x06
GET_RESPONSE = 0xA2
INFORM_REQUEST = 0xA6
SNMPV2_TRAP = 0xA7
NULL = b"\x05\x00"
NO_SUCH_OBJECT = b"\x80\x00"
NO_SUCH_INSTANCE = b"\x81\x00"
END_OF_MIB_VIEW = b"\x82\x00"


def length(n: int) -> bytes:
    """BER definite length octets."""
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def tlv(tag: int, content: bytes) -> bytes:
    """Tag, length, value."""
    return bytes((tag,)) + length(len(content)) + content


def integer(value: int) -> bytes:
    """A signed INTEGER (two's complement, minimal length)."""
    size = ((value if value >= 0 else ~value).bit_length() + 8) // 8
    return tlv(INTEGER, value.to_bytes(size, "big", signed=True))


def oid(value: Oid) -> bytes:
    """An OBJECT IDENTIFIER."""
    arcs = [value[0] * 40 + value[1], *value[2:]] if len(value) > 1 else [value[0] * 40]
    out = bytearray()
    for arc in arcs:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out.extend(reversed(chunk))
    return tlv(OBJECT_IDENTIFIER, bytes(out))


def varbind(name: Oid, encoded_value: bytes) -> bytes:
    """A VarBind: SEQUENCE { name, value } with an already encoded value."""
    return tlv(SEQUENCE, oid(name) + encoded_value)


def response(
    version: int,
    community: bytes,
    request_id: int,
    error_status: int,
    error_index: int,
    varbinds: list[bytes],
) -> bytes:
    """A whole GetResponse message around pre-encoded varbinds."""
    return message(
        version, community, GET_RESPONSE, request_id, varbinds, error_status, error_index
    )


def message(
    version: int,
    community: bytes,
    pdu_tag: int,
    request_id: int,
    varbinds: list[bytes],
    error_status: int = 0,
    error_index: int = 0,
) -> bytes:
    """A v1/v2c message with a PDU of that tag (response, SNMPv2-Trap, InformRequest)."""
    pdu = (
        integer(request_id)
        + integer(error_status)
        + integer(error_index)
        + tlv(SEQUENCE, b"".join(varbinds))
    )
    return tlv(SEQUENCE, integer(version) + tlv(OCTET_STRING, community) + tlv(pdu_tag, pdu))
