"""Every SNMP device profile against its LibreNMS capture, over real SNMP on loopback.

Each capture (tests/data/snmprec, GPL-3.0 data, see the README there) is served by a small v2c
agent; the real SnmpCollector polls it and the profile's own checks grade the readings. A healthy
capture raises only what is genuinely wrong in it; targeted value changes raise the expected
graded faults, and putting the values back clears them.

Genuine conditions in the captures (documented, asserted):
- rs: transport stream input 2 reports "No Signal" (the transmitter runs on input 1): input2_lost.
- vrp_s5328c-ei: GigabitEthernet0/0/19 and MEth0/0/1 are admin up, oper down: port_down.
- ruijie: 20 ports are admin up, oper down: port_down on each.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic import SecretStr

from checks.engine import DeviceGrader
from checks.profile_rules import builtin_profiles
from checks.tracker import FaultTracker
from collectors.base import ReadingSet
from collectors.snmp import SnmpCollector, SnmpEngineHolder
from collectors.targets import SnmpTarget
from protocol.wire import EventKind
from tests.snmprec_agent import SnmprecAgent

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parent.parent / "data" / "snmprec"
IF_ADMIN = "1.3.6.1.2.1.2.2.1.7"
IF_OPER = "1.3.6.1.2.1.2.2.1.8"


@dataclass
class Case:
    """A profile, its capture, what the healthy capture raises and targeted changes."""

    profile: str
    capture: str
    healthy: set[tuple[str, str]] = field(default_factory=set)
    healthy_count: int | None = None  # when listing every component is too long
    changes: list[tuple[str, str, str]] = field(default_factory=list)  # (oid, tag, value)
    expect: dict[tuple[str, str], int] = field(default_factory=dict)  # (code, component): grade
    remap: tuple[str, str] | None = None


RS = "1.3.6.1.4.1.2566.127.1.2.167.4.1.2"
IRT = "1.3.6.1.4.1.19831.1.1.1.1.1"
TAIT = "1.3.6.1.4.1.3570.2.2.2.1"
ECRESO = "1.3.6.1.4.1.6404.3.1.2.7.1"
POLY = "1.3.6.1.4.1.13885.101.1"
HW = "1.3.6.1.4.1.2011.5.25.31.1.1"
H3C = "1.3.6.1.4.1.25506"
XPPC = "1.3.6.1.4.1.935.1.1.1"
APC = "1.3.6.1.4.1.318.1.1.1"
XUPS = "1.3.6.1.4.1.534.1"
SIN = "1.3.6.1.4.1.13891.101"
UPS = "1.3.6.1.2.1.33.1"
STE2 = "1.3.6.1.4.1.21796.4.9"

CASES = [
    Case(
        "rs_dvbt",
        "rs",
        healthy={("input2_lost", "")},
        changes=[(f"{IRT}.3.0", "2", "2"), (f"{RS}.6.0", "4", "5.0"), (f"{IRT}.6.0", "2", "1")],
        expect={("off_air", ""): 1, ("reflected_high", ""): 2, ("tx_fault", ""): 2},
    ),
    Case(
        "rs_dvbt",
        "rs",
        healthy={("input2_lost", "")},
        changes=[(f"{RS}.5.0", "4", "20.0")],
        expect={("power_drop", ""): 2},
    ),
    Case(
        "tait_tb9300",
        "tait-infra93_tb9300",
        changes=[
            (f"{TAIT}.2.3.2.1.0", "66", "10"),
            (f"{TAIT}.3.4.10.0", "2", "2"),
            (f"{TAIT}.3.1.9.0", "2", "2"),
            (f"{TAIT}.2.4.2.1.0", "2", "2"),
        ],
        expect={
            ("power_drop", ""): 2,
            ("vswr_alarm", ""): 2,
            ("major_alarm", ""): 1,
            ("mains_failed", ""): 2,
        },
    ),
    Case(
        "protelevision_pt3080",
        "protelevision-t1",
        changes=[("1.3.6.1.4.1.18086.3080.4.6.0", "2", "0")],
        expect={("output_not_synchronised", ""): 1},
    ),
    Case(
        "ecreso_fm",
        "ecresofm-os_e03",
        changes=[(f"{ECRESO}.3.1.0", "66", "140"), (f"{ECRESO}.3.3.0", "66", "19")],
        expect={("power_drop", ""): 2, ("vswr_high", ""): 2},
    ),
    Case(
        "ecreso_fm",
        "ecresofm-os",
        healthy={("off_air", "")},  # the capture is of a transmitter switched off
    ),
    Case(
        "polycom_studiox",
        "polycomLens_studioxc50",
        changes=[(f"{POLY}.3.6.1.0", "2", "4"), (f"{POLY}.3.1.0", "2", "4")],
        expect={("camera_failed", ""): 3, ("hardware_failed", ""): 2},
    ),
    Case("cisco_telepresence_codec", "vccodec"),
    Case("cisco_vcs", "vcs"),
    Case("avaya_ipo", "avaya-ipo"),
    Case(
        "allworx",
        "allworx_voip",
        changes=[(f"{IF_OPER}.2", "2", "2")],
        expect={("port_down", "WAN port (eth1)"): 3},
    ),
    Case(
        "huawei_vrp",
        "vrp_s5328c-ei",
        healthy={("port_down", "GigabitEthernet0/0/19"), ("port_down", "MEth0/0/1")},
        changes=[
            (f"{HW}.10.1.7.0", "2", "2"),
            (f"{HW}.1.1.5.67108873", "2", "97"),
            (f"{HW}.1.1.11.67108873", "2", "80"),
        ],
        expect={
            ("fan_fault", "0"): 3,
            ("cpu_high", "MPU Board 0"): 3,
            ("temp_high", "MPU Board 0"): 3,
        },
    ),
    Case(
        "hpe_comware",
        "comware_hpe5900",
        changes=[
            (f"{H3C}.8.35.9.1.1.1.2.1", "2", "2"),
            (f"{H3C}.8.35.9.1.2.1.2.2", "2", "2"),
            (f"{H3C}.2.6.1.1.1.1.12.202", "2", "70"),
        ],
        expect={("fan_fault", "1"): 3, ("psu_fault", "2"): 2, ("temp_high", "SENSOR 1"): 3},
    ),
    Case("ruijie", "ruijie", healthy_count=20),
    Case(
        "dcn",
        "dcn-software_s5750e",
        changes=[
            ("1.3.6.1.4.1.6339.100.1.11.10.0", "2", "96"),
            ("1.3.6.1.4.1.6339.100.1.11.7.0", "2", "260000000"),
        ],
        expect={("cpu_high", ""): 3, ("memory_high", ""): 3},
    ),
    Case(
        "ups_netagent2",
        "netagent2",
        changes=[(f"{XPPC}.4.1.1.0", "2", "3"), (f"{XPPC}.2.1.1.0", "2", "3")],
        expect={("on_battery", ""): 2, ("battery_low", ""): 2},
    ),
    Case(
        "ups_apc",
        "apc_smt750x-nmc2",
        changes=[
            (f"{APC}.4.1.1.0", "2", "3"),
            (f"{APC}.2.2.3.0", "67", "30000"),
            (f"{APC}.2.2.4.0", "2", "2"),
        ],
        expect={("on_battery", ""): 2, ("runtime_low", ""): 1, ("battery_replace", ""): 3},
    ),
    Case(
        "ups_eaton",
        "eatonups",
        changes=[
            (f"{XUPS}.4.5.0", "2", "5"),
            (f"{XUPS}.2.4.0", "2", "20"),
            (f"{XUPS}.6.1.0", "2", "41"),
        ],
        expect={("on_battery", ""): 2, ("battery_low", ""): 2, ("room_temp_high", ""): 3},
    ),
    Case(
        "ups_sinetica",
        "sinetica",
        changes=[
            (f"{SIN}.4.1.0", "2", "5"),
            (f"{SIN}.2.1.0", "2", "4"),
            (f"{SIN}.2.3.0", "2", "5"),
        ],
        expect={("on_battery", ""): 2, ("battery_low", ""): 1, ("runtime_low", ""): 1},
    ),
    Case(
        "ups_rfc1628",
        "sinetica",
        remap=(SIN, UPS),
        # The capture's estimated runtime reads 0 minutes: on battery that is "runtime low".
        changes=[(f"{UPS}.4.1.0", "2", "5"), (f"{UPS}.2.1.0", "2", "3")],
        expect={("on_battery", ""): 2, ("battery_low", ""): 2, ("runtime_low", ""): 1},
    ),
    Case(
        "hwg_ste2",
        "hwg-ste2",
        changes=[(f"{STE2}.3.1.5.2", "2", "412"), (f"{STE2}.1.1.4.1", "2", "1")],
        expect={("room_temp_high", "Datorrum 2"): 3, ("input_alarm", "Input 1"): 2},
    ),
    Case(
        "cisco_ios_switch",
        "ios_c3560",
        changes=[("1.3.6.1.4.1.9.9.13.1.4.1.3.1004", "2", "3")],
        expect={("fan_fault", "Switch#1, Fan#1"): 3},
    ),
]


@pytest.fixture
async def engine() -> AsyncIterator[SnmpEngineHolder]:
    """A warmed-up engine for this test's event loop."""
    holder = SnmpEngineHolder()
    await holder.warm_up()
    yield holder
    holder.close()


@pytest.fixture
def agent(request: pytest.FixtureRequest) -> Iterator[SnmprecAgent]:
    """The case's capture served on loopback."""
    case: Case = request.param
    served = SnmprecAgent(DATA / f"{case.capture}.snmprec")
    if case.remap:
        served.remap(*case.remap)
    served.start()
    yield served
    served.stop()


def _raised(changes: list) -> dict[tuple[str, str], int]:  # type: ignore[type-arg]
    return {(c.code, c.component): int(c.grade) for c in changes if c.kind is EventKind.RAISE}


@pytest.mark.parametrize(
    ("case", "agent"),
    [pytest.param(c, c, id=f"{c.profile}-{c.capture}") for c in CASES],
    indirect=["agent"],
)
async def test_profile_against_capture(
    case: Case, agent: SnmprecAgent, engine: SnmpEngineHolder
) -> None:
    """Healthy capture: only genuine faults; targeted changes: the expected graded faults."""
    profile = builtin_profiles()[case.profile]
    assert profile.snmp is not None
    target = SnmpTarget(
        host="127.0.0.1", port=agent.port, community=SecretStr("public"), timeout_s=2, retries=1
    )
    collector = SnmpCollector("dev1", target, profile.snmp, engine)
    grader = DeviceGrader("dev1", profile.checks, profile.unreachable_grade)
    tracker = FaultTracker()

    readings = await collector.collect()
    assert readings, "the profile read nothing from its capture"
    healthy = _raised(grader.on_readings(ReadingSet(readings), tracker))
    if case.healthy_count is not None:
        assert len(healthy) == case.healthy_count, sorted(healthy)
    else:
        assert set(healthy) == case.healthy
    if not case.changes:
        return

    saved = agent.save()
    for oid, tag, value in case.changes:
        agent.set(oid, tag, value)
    changed = _raised(grader.on_readings(ReadingSet(await collector.collect()), tracker))
    assert changed == case.expect

    agent.restore(saved)
    back = grader.on_readings(ReadingSet(await collector.collect()), tracker)
    cleared = {(c.code, c.component) for c in back if c.kind is EventKind.CLEAR}
    assert cleared == set(case.expect)
