"""collectors.values.convert: states, text, scaled numbers and bad input."""

from __future__ import annotations

import pytest

from collectors.errors import DeviceUnreadable
from collectors.profiles import ValueMap
from collectors.values import as_text, convert

STATES = ValueMap(metric="op_mode", states={"0": "undefined", "1": "on", "2": "off"})
TEXT = ValueMap(metric="sys_descr", text=True)
PLAIN = ValueMap(metric="forward_power_w", unit="W")
TENTHS = ValueMap(metric="vswr", scale=0.1)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(1, "on"), ("2", "off"), (b"0", "undefined"), (" 1 ", "on"), (1.0, "on"), (True, "on")],
)
def test_states_map_the_raw_text(raw: object, expected: str) -> None:
    assert convert(STATES, raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [(7, "unknown(7)"), (b"x", "unknown(x)")])
def test_unknown_state_is_named_with_its_raw_value(raw: object, expected: str) -> None:
    assert convert(STATES, raw) == expected


def test_text_states_are_case_sensitive_like_the_profile() -> None:
    vm = ValueMap(metric="trunk_state", states={"UP": "up", "DOWN": "down"})
    assert convert(vm, "UP") == "up"
    assert convert(vm, "up") == "unknown(up)"


def test_text_keeps_strings_and_decodes_bytes() -> None:
    assert convert(TEXT, b"Cisco IOS Software\r\n") == "Cisco IOS Software"
    assert convert(TEXT, "  PBX-01 ") == "PBX-01"
    assert convert(TEXT, b"caf\xc3\xa9 \xff") == "café \ufffd"
    assert convert(TEXT, "1.3.6.1.4.1.9.1.634") == "1.3.6.1.4.1.9.1.634"
    assert convert(TEXT, 42) == "42"


@pytest.mark.parametrize(
    ("raw", "expected", "kind"),
    [
        (301, 301, int),
        ("301", 301, int),
        (b"301", 301, int),
        ("50.0", 50.0, float),
        (" -3.5 ", -3.5, float),
        (12.25, 12.25, float),
        ("1e3", 1000.0, float),
    ],
)
def test_numbers_are_parsed(raw: object, expected: float, kind: type) -> None:
    value = convert(PLAIN, raw)
    assert value == expected
    assert type(value) is kind


@pytest.mark.parametrize(
    ("raw", "expected"), [(30, 3.0), (12, 1.2), ("19", 1.9), (3, 0.3), (0, 0.0), (7, 0.7)]
)
def test_scaling_has_no_float_noise(raw: object, expected: float) -> None:
    assert convert(TENTHS, raw) == expected
    assert repr(convert(TENTHS, raw)) == repr(expected)


def test_integral_scale_of_an_int_stays_int() -> None:
    vm = ValueMap(metric="bytes", scale=1024)
    assert convert(vm, 3) == 3072
    assert type(convert(vm, 3)) is int


def test_scaling_huge_counters_keeps_precision() -> None:
    vm = ValueMap(metric="octets", scale=0.001)
    assert convert(vm, 18_446_744_073_709_551_615) == pytest.approx(18_446_744_073_709_551.615)


@pytest.mark.parametrize("raw", ["abc", b"", "12 W", "nan", "inf", float("nan"), b"\x00\x01"])
def test_a_numeric_metric_refuses_non_numbers_naming_the_metric(raw: object) -> None:
    with pytest.raises(DeviceUnreadable, match="forward_power_w"):
        convert(PLAIN, raw)


def test_long_bad_values_are_cut_in_the_message() -> None:
    with pytest.raises(DeviceUnreadable) as exc:
        convert(PLAIN, "x" * 500)
    assert len(str(exc.value)) < 100


def test_none_stays_none() -> None:
    assert convert(PLAIN, None) is None
    assert convert(STATES, None) is None


def test_as_text() -> None:
    assert as_text(b" a\n") == "a"
    assert as_text(2.0) == "2"
    assert as_text(2.5) == "2.5"
    assert as_text(False) == "0"
