"""Identification rules over captures the profiles were not written from, the profile `key` and
`fallback` model, and the profile_mismatch grading of a poll without key readings."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from checks.engine import DeviceGrader
from checks.profile_rules import ProfileError, builtin_profiles, load_profile
from checks.tracker import FaultTracker
from collectors.base import Reading, ReadingSet
from collectors.profiles import MAX_VENDOR_CANDIDATES, candidates, identify
from protocol.faults import PROFILE_MISMATCH
from protocol.grades import Grade
from protocol.wire import EventKind
from tests.snmprec_agent import load_snmprec
from tests.snmprec_trim import trim

IDENTIFY = Path(__file__).resolve().parent.parent / "data" / "snmprec" / "identify"
CAPTURES = sorted(p.stem for p in IDENTIFY.glob("*.snmprec"))

# capture -> the profile its sysObjectID / sysDescr nominates first (None: no vendor profile).
# Cisco's 1.3.6.1.4.1.9.1 product tree holds routers, firewalls, controllers and call managers:
# only switch images (and Nexus chassis) nominate cisco_ios_switch.
NOMINATED: dict[str, str | None] = {
    "asa": None,
    "ciscowlc": None,
    "ios": "cisco_ios_switch",
    "iosxe": None,
    "iosxr": None,
    "nxos": "cisco_ios_switch",
    "ciscosb": None,
    "ciscospa": None,
    "ucos": None,
    "waas": None,
    "vrp": None,  # a Huawei AR router: VRP, but not an S-series switch
    "apc": "ups_apc",  # a NetBotz says "APC Web/SNMP Management Card" too: probing refuses it
    "eatonups_m2": "ups_eaton",  # sysObjectID says Eaton; probing finds no XUPS status
    "eaton-9PX-partial-walk": "ups_eaton",
    "generex-ups_cs141": "ups_rfc1628",  # reports UPS-MIB itself as its sysObjectID
}


def _identity(capture: str) -> tuple[str, str]:
    """(sysObjectID, sysDescr) as the capture's agent would answer them."""
    data = load_snmprec(IDENTIFY / f"{capture}.snmprec")
    descr = data.get((1, 3, 6, 1, 2, 1, 1, 1, 0))
    oid = data.get((1, 3, 6, 1, 2, 1, 1, 2, 0))
    text = bytes(descr.asOctets()).decode("utf-8", "replace") if descr is not None else ""
    return (str(oid) if oid is not None else ""), text


def test_there_are_at_least_30_new_captures() -> None:
    """The identification tests run over at least 30 captures no profile was written from."""
    written_from = {p.stem for p in IDENTIFY.parent.glob("*.snmprec")}
    assert len(set(CAPTURES) - written_from) >= 30


@pytest.mark.parametrize("capture", CAPTURES)
def test_capture_is_trimmed_and_sorted(capture: str) -> None:
    """Every stored capture is valid snmprec, sorted by numeric OID, with only kept records."""
    text = (IDENTIFY / f"{capture}.snmprec").read_text(encoding="utf-8")
    assert trim(text) == text
    assert len(load_snmprec(IDENTIFY / f"{capture}.snmprec")) == len(text.splitlines())


@pytest.mark.parametrize("capture", CAPTURES)
def test_match_rules_nominate_no_wrong_profile(capture: str) -> None:
    """sysObjectID / sysDescr nominate the right vendor profile, or none."""
    oid, descr = _identity(capture)
    found = identify(oid, descr, builtin_profiles())
    assert (found.name if found else None) == NOMINATED.get(capture)


def test_candidates_end_with_the_standard_mib_fallbacks() -> None:
    """Vendor candidates first (bounded), then UPS-MIB, HOST-RESOURCES, IF-MIB, in that order."""
    names = [p.name for p in candidates("1.3.6.1.4.1.534.1", "Eaton 9PX", builtin_profiles())]
    assert names == ["ups_eaton", "ups_rfc1628", "generic_host_resources", "generic_if"]
    names = [p.name for p in candidates("1.3.6.1.2.1.33", "CS141", builtin_profiles())]
    assert names == ["ups_rfc1628", "generic_host_resources", "generic_if"]
    everything = {p.name: p for p in builtin_profiles().values()}
    assert len(candidates("", ".*", everything)) <= MAX_VENDOR_CANDIDATES + 3


def test_snmp_profiles_with_checks_declare_key_readings() -> None:
    """A profile that grades anything says which readings prove the device is its model."""
    for profile in builtin_profiles().values():
        if profile.protocol == "snmp" and profile.checks:
            assert profile.key, profile.name
            scalars, columns = profile.key_oids()
            assert scalars or columns, profile.name


def _write(tmp_path: Path, data: dict[str, object]) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


BASE: dict[str, object] = {
    "name": "t",
    "vendor": "v",
    "model": "m",
    "device_class": "ups",
    "protocol": "snmp",
    "snmp": {"scalars": [{"metric": "x", "oid": "1.3.6.1.2.1.1.3.0"}]},
}


def test_key_must_be_a_metric_of_the_profile(tmp_path: Path) -> None:
    """A key reading the profile does not read is refused, naming it."""
    with pytest.raises(ProfileError, match="key reading 'y' is not a metric"):
        load_profile(_write(tmp_path, BASE | {"key": ["y"]}))


def test_fallback_needs_a_key(tmp_path: Path) -> None:
    """A standard-MIB fallback without key readings could never be confirmed: refused."""
    with pytest.raises(ProfileError, match="fallback profile needs key readings"):
        load_profile(_write(tmp_path, BASE | {"match": {"fallback": 1}}))


def test_match_rules_are_checked(tmp_path: Path) -> None:
    """A sysObjectID that is not numeric, or a sysDescr that is not a regex, is refused."""
    with pytest.raises(ProfileError, match=r"match\.sys_object_id"):
        load_profile(_write(tmp_path, BASE | {"match": {"sys_object_id": ["enterprises.9"]}}))
    with pytest.raises(ProfileError, match=r"match\.sys_descr"):
        load_profile(_write(tmp_path, BASE | {"match": {"sys_descr": "("}}))


def _readings(*pairs: tuple[str, str, object]) -> ReadingSet:
    return ReadingSet([Reading("d", m, v, c) for m, c, v in pairs])  # type: ignore[arg-type]


def test_poll_without_key_readings_is_a_grade_4_profile_mismatch() -> None:
    """No key reading: profile_mismatch (grade 4) is raised; a key reading back clears it."""
    eaton = builtin_profiles()["ups_eaton"]
    grader = DeviceGrader(
        "ups1", eaton.checks, key_metrics=eaton.key_per_row(), profile_name=eaton.name
    )
    tracker = FaultTracker()
    # What the Eaton 9PX with an M2 card answers to ups_eaton: battery, no status, no runtime.
    poor = _readings(("sys_descr", "", "Eaton 9PX"), ("battery_charge_percent", "", 100))
    (change,) = [c for c in grader.on_readings(poor, tracker) if c.code == PROFILE_MISMATCH]
    assert change.kind is EventKind.RAISE and change.grade is Grade.MINOR
    assert "output_source" in change.detail and "ups_eaton" in change.detail
    good = _readings(("output_source", "", "normal"), ("battery_charge_percent", "", 100))
    cleared = [c for c in grader.on_readings(good, tracker) if c.code == PROFILE_MISMATCH]
    assert [c.kind for c in cleared] == [EventKind.CLEAR]


def test_table_key_needs_rows_not_just_a_row_count() -> None:
    """A key column read with zero rows (only its row count) is not a key reading."""
    generic = builtin_profiles()["generic_if"]
    grader = DeviceGrader("r1", generic.checks, key_metrics=generic.key_per_row())
    tracker = FaultTracker()
    empty = _readings(("if_oper_status", "", 0), ("sys_descr", "", "x"))
    assert PROFILE_MISMATCH in {c.code for c in grader.on_readings(empty, tracker)}
    rows = _readings(("if_oper_status", "", 1), ("if_oper_status", "eth0", "up"))
    assert tracker.view("r1").is_active(PROFILE_MISMATCH)
    grader.on_readings(rows, tracker)
    assert not tracker.view("r1").is_active(PROFILE_MISMATCH)


def test_identity_only_profile_never_mismatches() -> None:
    """A profile without key readings (identity only) raises no profile_mismatch."""
    vcs = builtin_profiles()["cisco_vcs"]
    grader = DeviceGrader("v1", vcs.checks, key_metrics=vcs.key_per_row())
    assert PROFILE_MISMATCH not in grader.codes
    assert grader.on_readings(_readings(("sys_descr", "", "x")), FaultTracker()) == []
