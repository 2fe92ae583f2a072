"""Identification over real SNMP on loopback, on captures the profiles were not written from.

Each capture (tests/data/snmprec/identify, GPL-3.0 LibreNMS data and one BSD-2 snmpsim walk, see
the README there) is served by a small v2c agent and identified exactly as the daemon and
`agent poll` do (collectors.identify): match rules nominate, key OIDs confirm, the standard-MIB
profiles catch the rest. No device may land on a vendor profile it is not, and every UPS that
answers RFC 1628 status must end on ups_rfc1628 (or its vendor profile when that one answers).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from checks.engine import DeviceGrader
from checks.profile_rules import builtin_profiles
from checks.tracker import FaultTracker
from collectors.base import ReadingSet
from collectors.identify import identify_target
from collectors.profiles import MAX_VENDOR_CANDIDATES
from collectors.snmp import SnmpCollector, SnmpEngineHolder
from collectors.targets import SnmpTarget
from protocol.faults import PROFILE_MISMATCH
from protocol.wire import EventKind
from tests.snmprec_agent import SnmprecAgent

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parent.parent / "data" / "snmprec"
IDENTIFY = DATA / "identify"

# capture -> the profile identification must take (None: none; the device stays unidentified).
EXPECTED: dict[str, str | None] = {
    # Cisco: only switches are cisco_ios_switch; routers answering IF-MIB are generic_if.
    "asa": None,
    "ciscowlc": None,
    "ios": None,  # a Catalyst 2950 whose capture holds no readings: nominated, not confirmed
    "iosxe": None,
    "iosxr": "generic_if",
    "nxos": None,  # Nexus 5000, no readings in the capture: nominated, not confirmed
    "ciscosb": None,
    "ciscospa": None,
    "ucos": None,
    "waas": None,
    # UPSs speaking RFC 1628 (Delta, Generex, Riello, Tripp Lite, Eaton 9PX with an M2 card)
    "deltaups": "ups_rfc1628",
    "generex-ups_cs141": "ups_rfc1628",
    "riello": "ups_rfc1628",
    "poweralert_ups": "ups_rfc1628",  # also answers HOST-RESOURCES: the UPS comes first
    "eatonups_m2": "ups_rfc1628",  # sysObjectID says Eaton, no XUPS status: ups_eaton refused
    "eaton-9PX-partial-walk": "ups_eaton",  # an Eaton card that does speak XUPS
    # UPS cards with only UPS-MIB identity, or nothing: not identified
    "cyberpower": None,
    "huaweiups": None,
    "poweralert": None,
    "netmanplus": None,
    "liebert": None,
    "apc": None,  # NetBotz 200: nominated by the APC card's sysDescr, refused by probing
    # hosts, NAS, printers, other devices
    "qnap": "generic_host_resources",
    "socomec": "generic_if",
    "linux": None,
    "dsm": None,
    "windows": None,
    "jetdirect": None,
    "vrp": None,
    "aaron_650": None,
    "deva-db7001": None,
    "grandstream-gxw": None,
    "ird": None,
}
RFC1628_UPS = {"deltaups", "generex-ups_cs141", "riello", "poweralert_ups", "eatonups_m2"}
# The profiles written from the captures in tests/data/snmprec must still be identified there.
OWN = {
    "allworx_voip": "allworx",
    "apc_smt750x-nmc2": "ups_apc",
    "avaya-ipo": "avaya_ipo",
    "comware_hpe5900": "hpe_comware",
    "dcn-software_s5750e": "dcn",
    "eatonups": "ups_eaton",
    "ecresofm-os": "ecreso_fm",
    "ecresofm-os_e03": "ecreso_fm",
    "ecresofm-os_g10": "ecreso_fm",
    "hwg-ste2": "hwg_ste2",
    "ios_c3560": "cisco_ios_switch",
    "netagent2": "ups_netagent2",
    "polycomLens_studioxc50": "polycom_studiox",
    "protelevision-t1": "protelevision_pt3080",
    "rs": "rs_dvbt",
    "ruijie": "ruijie",
    "sinetica": "ups_sinetica",
    "tait-infra93_tb9300": "tait_tb9300",
    "vccodec": "cisco_telepresence_codec",
    "vcs": "cisco_vcs",
    "vrp_s5328c-ei": "huawei_vrp",
}
GENERIC = {"ups_rfc1628", "generic_host_resources", "generic_if"}
# 1 GET of the system group, then at most a GET and a GETNEXT per candidate probed.
MAX_REQUESTS = 1 + 2 * (MAX_VENDOR_CANDIDATES + len(GENERIC))


@pytest.fixture
async def engine() -> AsyncIterator[SnmpEngineHolder]:
    """A warmed-up engine for this test's event loop."""
    holder = SnmpEngineHolder()
    await holder.warm_up()
    yield holder
    holder.close()


@pytest.fixture
def served(request: pytest.FixtureRequest) -> Iterator[SnmprecAgent]:
    """The capture (a path) served on loopback."""
    agent = SnmprecAgent(request.param).start()
    yield agent
    agent.stop()


def _target(agent: SnmprecAgent) -> SnmpTarget:
    return SnmpTarget(
        host="127.0.0.1", port=agent.port, community=SecretStr("public"), timeout_s=2, retries=1
    )


def test_every_new_capture_has_an_expectation() -> None:
    """No capture in the folder escapes the identification test."""
    assert set(EXPECTED) == {p.stem for p in IDENTIFY.glob("*.snmprec")}
    assert len(EXPECTED) >= 30


@pytest.mark.parametrize(
    ("capture", "served"),
    [pytest.param(c, IDENTIFY / f"{c}.snmprec", id=c) for c in sorted(EXPECTED)],
    indirect=["served"],
)
async def test_identification_of_new_captures(
    capture: str, served: SnmprecAgent, engine: SnmpEngineHolder
) -> None:
    """The expected profile (or none), never a vendor profile the device is not; RFC 1628 UPSs
    all end on a UPS profile; the probes stay within their bound."""
    found = await identify_target(capture, _target(served), engine)
    name = found.profile.name if found.profile else None
    assert name == EXPECTED[capture], found.failure() if name is None else found.refused
    if capture in RFC1628_UPS:
        assert found.profile is not None and found.profile.device_class == "ups"
    assert found.requests <= MAX_REQUESTS
    if found.profile is None:
        assert "none of their key OIDs answered" in found.failure()


@pytest.mark.parametrize(
    ("capture", "served"),
    [pytest.param(c, DATA / f"{c}.snmprec", id=c) for c in sorted(OWN)],
    indirect=["served"],
)
async def test_profiles_are_still_identified_on_their_own_captures(
    capture: str, served: SnmprecAgent, engine: SnmpEngineHolder
) -> None:
    """Confirming by key OIDs refuses none of the devices the profiles were written from."""
    found = await identify_target(capture, _target(served), engine)
    assert found.profile is not None, found.failure()
    assert found.profile.name == OWN[capture]
    assert found.refused == ()


@pytest.mark.parametrize("served", [IDENTIFY / "eatonups_m2.snmprec"], indirect=True)
async def test_eaton_9px_m2_on_ups_rfc1628_can_raise_on_battery(
    served: SnmprecAgent, engine: SnmpEngineHolder
) -> None:
    """Identified as ups_rfc1628, the 9PX's switch to battery raises on_battery (grade 2)."""
    found = await identify_target("ups1", _target(served), engine, builtin_profiles())
    assert found.profile is not None and found.profile.name == "ups_rfc1628"
    assert found.refused == ("ups_eaton",)
    profile = found.profile
    assert profile.snmp is not None
    collector = SnmpCollector("ups1", _target(served), profile.snmp, engine)
    grader = DeviceGrader("ups1", profile.checks, key_metrics=profile.key_per_row())
    tracker = FaultTracker()
    assert grader.on_readings(ReadingSet(await collector.collect()), tracker) == []
    served.set("1.3.6.1.2.1.33.1.4.1.0", "2", "5")  # upsOutputSource: battery
    changes = grader.on_readings(ReadingSet(await collector.collect()), tracker)
    raised = {(c.code, int(c.grade)) for c in changes if c.kind is EventKind.RAISE}
    assert raised == {("on_battery", 2)}


@pytest.mark.parametrize("served", [IDENTIFY / "eatonups_m2.snmprec"], indirect=True)
async def test_eaton_9px_m2_polled_as_ups_eaton_is_a_profile_mismatch(
    served: SnmprecAgent, engine: SnmpEngineHolder
) -> None:
    """Named ups_eaton in a config, the 9PX answers almost nothing of it: grade 4 mismatch."""
    profile = builtin_profiles()["ups_eaton"]
    assert profile.snmp is not None
    collector = SnmpCollector("ups1", _target(served), profile.snmp, engine)
    readings = await collector.collect()  # it does answer something: no "unreadable"
    assert {r.metric for r in readings} >= {"battery_charge_percent"}
    grader = DeviceGrader(
        "ups1", profile.checks, key_metrics=profile.key_per_row(), profile_name=profile.name
    )
    changes = grader.on_readings(ReadingSet(readings), FaultTracker())
    raised = {(c.code, int(c.grade)) for c in changes if c.kind is EventKind.RAISE}
    assert raised == {(PROFILE_MISMATCH, 4)}
