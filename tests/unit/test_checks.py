"""Checks and grading: the bundled profiles' rules against hand-made readings."""

from __future__ import annotations

import pytest

from checks.engine import DeviceGrader
from checks.profile_rules import builtin_profiles
from checks.spec import CheckOverride, CheckSpec, apply_overrides
from checks.tracker import FaultTracker
from collectors.base import Reading, ReadingSet
from protocol.faults import UNREACHABLE, UNREADABLE
from protocol.grades import DEFAULT_POLICIES, Grade, parse_grade
from protocol.wire import EventKind

ECRESO_ON_AIR = {
    "op_mode": "on",
    "forward_power_w": 301,
    "power_setpoint_w": 300,
    "reflected_power_w": 3.0,
    "vswr": 1.2,
    "alarm_fault": "ok",
    "alarm_temp_internal": "ok",
    "alarm_temp_psu": "ok",
}


def readings(
    device: str, values: dict[str, object], rows: dict[str, dict[str, object]] | None = None
) -> ReadingSet:
    """A ReadingSet from scalar values and per-component rows (with their row counts)."""
    out = [Reading(device, m, v) for m, v in values.items()]  # type: ignore[arg-type]
    for metric, comp_values in (rows or {}).items():
        out.append(Reading(device, metric, len(comp_values)))
        out += [Reading(device, metric, v, component=c) for c, v in comp_values.items()]  # type: ignore[arg-type]
    return ReadingSet(out)


def grader(profile: str, device: str = "tx1") -> DeviceGrader:
    p = builtin_profiles()[profile]
    return DeviceGrader(device, p.checks, p.unreachable_grade)


def kinds(changes: list) -> list[tuple[str, str, int]]:  # type: ignore[type-arg]
    return [(c.kind.value, c.code, int(c.grade)) for c in changes]


def test_healthy_transmitter_raises_nothing() -> None:
    t = FaultTracker()
    assert grader("ecreso_fm").on_readings(readings("tx1", ECRESO_ON_AIR), t) == []
    assert t.active == {}


def test_off_air_is_grade_1_and_does_not_also_raise_power_drop() -> None:
    t, g = FaultTracker(), grader("ecreso_fm")
    off = ECRESO_ON_AIR | {"op_mode": "off", "forward_power_w": 0, "reflected_power_w": 0.0}
    assert kinds(g.on_readings(readings("tx1", off), t)) == [("raise", "off_air", 1)]
    # Same condition again: no new event (one condition, one raise).
    assert g.on_readings(readings("tx1", off), t) == []
    assert kinds(g.on_readings(readings("tx1", ECRESO_ON_AIR), t)) == [("clear", "off_air", 1)]


def test_power_drop_uses_ratio_of_setpoint_with_hysteresis() -> None:
    t, g = FaultTracker(), grader("ecreso_fm")
    assert kinds(g.on_readings(readings("tx1", ECRESO_ON_AIR | {"forward_power_w": 150}), t)) == [
        ("raise", "power_drop", 2)
    ]
    # 170 W is above the 150 W raise point but below the 180 W clear point: stays raised.
    assert g.on_readings(readings("tx1", ECRESO_ON_AIR | {"forward_power_w": 170}), t) == []
    assert kinds(g.on_readings(readings("tx1", ECRESO_ON_AIR | {"forward_power_w": 181}), t)) == [
        ("clear", "power_drop", 2)
    ]


def test_reflected_power_high_is_grade_2() -> None:
    t, g = FaultTracker(), grader("ecreso_fm")
    changes = g.on_readings(readings("tx1", ECRESO_ON_AIR | {"reflected_power_w": 30.0}), t)
    assert kinds(changes) == [("raise", "reflected_high", 2)]
    assert "reflected_power_w 30 >= 15" in changes[0].detail


def test_missing_metric_keeps_fault_state() -> None:
    t, g = FaultTracker(), grader("ecreso_fm")
    g.on_readings(readings("tx1", ECRESO_ON_AIR | {"op_mode": "off"}), t)
    partial = {k: v for k, v in ECRESO_ON_AIR.items() if k != "op_mode"}
    assert g.on_readings(readings("tx1", partial), t) == []
    assert "tx1:off_air" in t.active


def test_unreachable_then_back() -> None:
    t, g = FaultTracker(), grader("ecreso_fm")
    g.on_readings(readings("tx1", ECRESO_ON_AIR | {"op_mode": "off"}), t)
    assert kinds(g.on_error(UNREACHABLE, "SNMP timeout", t)) == [("raise", UNREACHABLE, 2)]
    # While unreachable, off_air stays raised: nothing is known about it.
    assert "tx1:off_air" in t.active
    assert kinds(g.on_error(UNREADABLE, "garbage", t)) == [
        ("raise", UNREADABLE, 2),
        ("clear", UNREACHABLE, 2),
    ]
    assert kinds(g.on_readings(readings("tx1", ECRESO_ON_AIR), t)) == [
        ("clear", UNREADABLE, 2),
        ("clear", "off_air", 1),
    ]


def test_port_down_only_for_admin_up_ports_and_per_component() -> None:
    t, g = FaultTracker(), grader("cisco_ios_switch", "sw1")
    rows = {
        "if_admin_status": {"Fa0/1": "down", "Fa0/2": "up", "Gi0/1": "up"},
        "if_oper_status": {"Fa0/1": "down", "Fa0/2": "up", "Gi0/1": "up"},
        "fan_state": {"Switch#1, Fan#1": "normal"},
    }
    assert g.on_readings(readings("sw1", {}, rows), t) == []
    rows["if_oper_status"]["Fa0/2"] = "down"
    changes = g.on_readings(readings("sw1", {}, rows), t)
    assert [(c.kind, c.key, c.grade) for c in changes] == [
        (EventKind.RAISE, "sw1:port_down:Fa0/2", Grade.GENERAL)
    ]
    rows["fan_state"]["Switch#1, Fan#1"] = "critical"
    assert kinds(g.on_readings(readings("sw1", {}, rows), t)) == [("raise", "fan_fault", 3)]


def test_alarm_rows_grade_follows_severity_and_vanished_rows_clear() -> None:
    t, g = FaultTracker(), grader("generic_pbx_ssh", "pbx1")
    trunks = {f"TRUNK-{i}": "up" for i in range(1, 5)}
    rs = readings("pbx1", {}, {"alarm_severity": {"TRUNK-2": "major"}, "trunk_state": trunks})
    assert [(c.kind, c.key, c.grade) for c in g.on_readings(rs, t)] == [
        (EventKind.RAISE, "pbx1:pbx_alarm:TRUNK-2", Grade.SEVERE)
    ]
    rs = readings("pbx1", {}, {"alarm_severity": {"TRUNK-2": "critical"}, "trunk_state": trunks})
    assert kinds(g.on_readings(rs, t)) == [("update", "pbx_alarm", 1)]
    # The alarm list was read and is empty: the alarm is gone.
    rs = readings("pbx1", {}, {"alarm_severity": {}, "trunk_state": trunks})
    assert kinds(g.on_readings(rs, t)) == [("clear", "pbx_alarm", 1)]


def test_all_trunks_down_is_grade_1() -> None:
    t, g = FaultTracker(), grader("generic_pbx_ssh", "pbx1")
    down = {f"TRUNK-{i}": "down" for i in range(1, 5)}
    rs = readings("pbx1", {}, {"alarm_severity": {}, "trunk_state": down})
    got = kinds(g.on_readings(rs, t))
    assert ("raise", "all_trunks_down", 1) in got
    assert got.count(("raise", "trunk_down", 2)) == 4


def test_overrides_regrade_and_disable() -> None:
    p = builtin_profiles()["ecreso_fm"]
    checks = apply_overrides(
        p.checks,
        [
            CheckOverride(code="vswr_high", grade=Grade.GENERAL, above=1.8, clear_below=1.6),
            CheckOverride(code="tx_fault", enabled=False),
        ],
    )
    by = {c.code: c for c in checks}
    assert (by["vswr_high"].grade, by["vswr_high"].above) == (Grade.GENERAL, 1.8)
    g = DeviceGrader("tx1", checks)
    t = FaultTracker()
    assert (
        g.on_readings(readings("tx1", ECRESO_ON_AIR | {"vswr": 1.7, "alarm_fault": "alarm"}), t)
        == []
    )
    with pytest.raises(ValueError, match="no check 'nope'"):
        apply_overrides(p.checks, [CheckOverride(code="nope", enabled=False)])


def test_spec_validation_messages() -> None:
    with pytest.raises(ValueError, match="exactly one of raise_in or ok_in"):
        CheckSpec(code="x", title="x", grade=Grade.MINOR, kind="state", metric="m")
    with pytest.raises(ValueError, match="clear_below must not be greater than above"):
        CheckSpec(
            code="x", title="x", grade=2, kind="threshold", metric="m", above=1, clear_below=2
        )


def test_grade_scheme() -> None:
    assert DEFAULT_POLICIES[Grade.MAJOR].ack_minutes == 10
    assert DEFAULT_POLICIES[Grade.SEVERE].ack_minutes == 30
    assert parse_grade("A") is Grade.MAJOR
    assert parse_grade("C-2") is Grade.SEVERE
    assert parse_grade(4) is Grade.MINOR
    with pytest.raises(ValueError, match="unknown grade"):
        parse_grade("D")


def test_retire_clears_faults_of_removed_checks() -> None:
    t = FaultTracker()
    full = grader("ecreso_fm")
    full.on_readings(readings("tx1", ECRESO_ON_AIR | {"alarm_fault": "alarm"}), t)
    p = builtin_profiles()["ecreso_fm"]
    reduced = DeviceGrader(
        "tx1", apply_overrides(p.checks, [CheckOverride(code="tx_fault", enabled=False)])
    )
    assert kinds(reduced.retire_unknown(t)) == [("clear", "tx_fault", 2)]
