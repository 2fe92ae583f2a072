"""Turning a raw protocol value into a Reading value, the same way for every collector.

A ValueMap says what a raw value means: a named state (`states`), identity text (`text`) or a
number multiplied by `scale`. Raw values arrive as int, float, str or bytes (SNMP OctetString,
serial and CLI text); anything else is read through its text form.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation

from collectors.base import Value
from collectors.errors import DeviceUnreadable
from collectors.profiles import ValueMap

_MAX_SHOWN = 40  # raw values in error messages are cut to this many characters


def as_text(raw: object) -> str:
    """The text form of a raw value: bytes decoded as UTF-8 (bad bytes replaced), stripped."""
    if isinstance(raw, bytes | bytearray):
        return bytes(raw).decode("utf-8", errors="replace").strip()
    if isinstance(raw, bool):
        return "1" if raw else "0"
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    return str(raw).strip()


def convert(vm: ValueMap, raw: object) -> Value:
    """Map one raw value through a ValueMap: state name, kept text, or scaled number.

    An unknown state reads as "unknown(<raw>)"; a numeric metric whose raw value is not a
    number raises DeviceUnreadable naming the metric. None (no value) and the profile's
    `missing` sentinels read as None.
    """
    if raw is None:
        return None
    if vm.missing and as_text(raw) in vm.missing:
        return None  # the device's "not available" sentinel (e.g. 65535 for no sensor)
    if vm.states is not None:
        key = as_text(raw)
        return vm.states.get(key, f"unknown({key})")
    if vm.text:
        return as_text(raw)
    return _scaled(vm, _number(vm, raw))


def _number(vm: ValueMap, raw: object) -> int | float:
    """Parse a raw value as an int or a float, refusing text, NaN and infinities."""
    if isinstance(raw, bool):
        return int(raw)
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        number: int | float = raw
    else:
        text = as_text(raw)
        try:
            number = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                raise DeviceUnreadable(
                    f"{vm.metric}: not a number: {text[:_MAX_SHOWN]!r}"
                ) from None
    if isinstance(number, float) and not math.isfinite(number):
        raise DeviceUnreadable(f"{vm.metric}: not a finite number: {number!r}")
    return number


def _scaled(vm: ValueMap, number: int | float) -> int | float:
    """Multiply by the scale in decimal, so 30 x 0.1 is 3.0 and not 3.0000000000000004."""
    if vm.scale == 1.0:
        return number
    try:
        exact = Decimal(repr(number)) * Decimal(repr(vm.scale))
    except InvalidOperation:  # pragma: no cover - repr of a finite int/float always parses
        raise DeviceUnreadable(f"{vm.metric}: cannot scale {number!r}") from None
    if isinstance(number, int) and vm.scale.is_integer():
        return int(exact)
    return float(exact)
