"""Device profiles: every shipped profile loads, identifies its captures, and the model refuses
inconsistent definitions with a message naming the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from checks.base import Finding
from checks.engine import DeviceGrader
from checks.profile_rules import ProfileError, builtin_profiles, load_profile, load_profiles
from checks.tracker import FaultTracker
from collectors.profiles import PROFILE_DIR, identify
from protocol.grades import Grade

DATA = Path(__file__).resolve().parent.parent / "data" / "snmprec"

# capture -> the profile its sysObjectID / sysDescr must pick
IDENTIFIES = {
    "rs": "rs_dvbt",
    "tait-infra93_tb9300": "tait_tb9300",
    "protelevision-t1": "protelevision_pt3080",
    "ecresofm-os": "ecreso_fm",
    "ecresofm-os_e03": "ecreso_fm",
    "ecresofm-os_g10": "ecreso_fm",
    "polycomLens_studioxc50": "polycom_studiox",
    "vccodec": "cisco_telepresence_codec",
    "vcs": "cisco_vcs",
    "avaya-ipo": "avaya_ipo",
    "allworx_voip": "allworx",
    "vrp_s5328c-ei": "huawei_vrp",
    "comware_hpe5900": "hpe_comware",
    "ruijie": "ruijie",
    "dcn-software_s5750e": "dcn",
    "ios_c3560": "cisco_ios_switch",
    "netagent2": "ups_netagent2",
    "apc_smt750x-nmc2": "ups_apc",
    "eatonups": "ups_eaton",
    "sinetica": "ups_sinetica",
    "hwg-ste2": "hwg_ste2",
}


def _identity(capture: str) -> tuple[str, str]:
    """(sysObjectID, sysDescr) as a device would report them, from a capture file."""
    oid = descr = ""
    for line in (DATA / f"{capture}.snmprec").read_text(encoding="utf-8").splitlines():
        name, tag, value = line.split("|", 2)
        if name == "1.3.6.1.2.1.1.1.0":
            descr = bytes.fromhex(value).decode("utf-8", "replace") if tag == "4x" else value
            descr = descr.strip('"')
        elif name == "1.3.6.1.2.1.1.2.0":
            oid = value
    return oid, descr


def test_every_builtin_profile_loads() -> None:
    """All profile files validate, one name each, covering every device class but host."""
    profiles = builtin_profiles()
    assert len(profiles) == len(list(PROFILE_DIR.glob("*.yaml")))
    classes = {p.device_class for p in profiles.values()}
    assert {"transmitter", "mcu", "pbx", "switch", "ups", "environment", "host"} <= classes


@pytest.mark.parametrize(("capture", "expected"), sorted(IDENTIFIES.items()))
def test_identify_picks_the_profile_of_each_capture(capture: str, expected: str) -> None:
    """sysObjectID first, then sysDescr, picks the capture's profile."""
    oid, descr = _identity(capture)
    found = identify(oid, descr, builtin_profiles())
    assert found is not None and found.name == expected


def test_identify_unknown_device_is_none() -> None:
    """A plain Linux net-snmp box matches no profile."""
    assert identify("1.3.6.1.4.1.8072.3.2.10", "Linux gw 6.1.0", builtin_profiles()) is None


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


def test_clear_trap_needs_a_raise(tmp_path: Path) -> None:
    """A trap clearing a code no trap raises is refused."""
    data = BASE | {"traps": [{"oid": "1.3.6.1.4.1.1.0.2", "action": "clear", "code": "x_fault"}]}
    with pytest.raises(ProfileError, match="no trap raises"):
        load_profile(_write(tmp_path, data))


def test_trap_code_must_not_be_a_per_component_check(tmp_path: Path) -> None:
    """A trap raising a per-component check's code would be cleared by the next poll."""
    data = BASE | {
        "snmp": {"tables": [{"name": "f", "columns": [{"metric": "fan", "oid": "1.3.6.1.4.1.1"}]}]},
        "checks": [
            {"code": "fan_fault", "title": "Fan", "kind": "state", "metric": "fan",
             "per_component": True, "raise_in": ["bad"], "grade": 3}
        ],
        "traps": [{"oid": "1.3.6.1.4.1.1.0.1", "code": "fan_fault"}],
    }  # fmt: skip
    with pytest.raises(ProfileError, match="code of its own"):
        load_profile(_write(tmp_path, data))


def test_backup_needs_a_command(tmp_path: Path) -> None:
    """A backup over SSH without any config command is refused."""
    with pytest.raises(ProfileError, match="config_command"):
        load_profile(_write(tmp_path, BASE | {"backup": {"via": "ssh"}}))


def test_bad_log_pattern_is_refused(tmp_path: Path) -> None:
    """A log pattern that is not a regex names the field."""
    data = BASE | {"log_patterns": [{"code": "e", "title": "E", "pattern": "(", "grade": 3}]}
    with pytest.raises(ProfileError, match="log_patterns"):
        load_profile(_write(tmp_path, data))


def test_missing_sentinel_and_index_named_rows(tmp_path: Path) -> None:
    """`missing` sentinels and tables without a name column load."""
    data = BASE | {
        "snmp": {
            "tables": [
                {
                    "name": "fans",
                    "columns": [{"metric": "t", "oid": "1.3.6.1.4.1.1.1", "missing": ["65535"]}],
                }
            ]
        }
    }
    profile = load_profile(_write(tmp_path, data))
    assert profile.snmp is not None
    assert profile.snmp.tables[0].component_oid is None


def test_host_profile_checks_host_metrics() -> None:
    """The host profile's checks use metrics the host collector produces."""
    host = builtin_profiles()["host"]
    assert host.protocol == "host"
    assert {c.metric for c in host.checks} <= host.metrics()


def test_load_profiles_refuses_duplicate_names(tmp_path: Path) -> None:
    """Two files with one profile name are refused."""
    for n in ("a", "b"):
        (tmp_path / f"{n}.yaml").write_text(yaml.safe_dump(BASE), encoding="utf-8")
    with pytest.raises(ProfileError, match="already used"):
        load_profiles(tmp_path)


def test_event_codes_survive_a_restart() -> None:
    """Trap, log and config codes are the grader's too, so reconcile does not clear them."""
    profile = builtin_profiles()["huawei_vrp"]
    assert {
        "fan_fail_trap",
        "power_fail_trap",
        "link_down",
        "config_changed",
    } <= profile.event_codes()
    grader = DeviceGrader("sw1", profile.checks, extra_codes=profile.event_codes())
    tracker = FaultTracker()
    tracker.apply("sw1", [Finding("power_fail_trap", "PSU 1", True, Grade.SEVERE, "PSU")])
    tracker.apply("sw1", [Finding("gone_check", "", True, Grade.GENERAL, "old")])
    cleared = grader.retire_unknown(tracker)
    assert [c.code for c in cleared] == ["gone_check"]
