"""Profiles sharing blocks through `extends:` (collectors/profiles/README.md): the shipped
profiles that use blocks load exactly as their written-out versions did, entries merge by
name, and a missing block, a cycle or a block posing as a profile is a clear error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from checks.profile_rules import (
    GradedProfile,
    ProfileError,
    builtin_profiles,
    load_profile,
    load_profiles,
)
from collectors.profiles import PROFILE_DIR, SHARED_DIR, candidates, profile_data

# Each profile that now extends shared blocks, as its file read before it did (kept verbatim).
BEFORE = Path(__file__).resolve().parent.parent / "data" / "profiles_before_extends"
SWITCHES = ["cisco_ios_switch", "dcn", "hpe_comware", "huawei_vrp", "ruijie", "generic_if"]
UPS_MIB = ["ups_rfc1628", "ups_sinetica"]


def _blocks(name: str) -> set[str]:
    """Every shared block a profile builds on, through other blocks too."""
    seen: set[str] = set()
    todo = [PROFILE_DIR / f"{name}.yaml"]
    while todo:
        data = yaml.safe_load(todo.pop().read_text(encoding="utf-8"))
        for block in data.get("extends", []):
            if block not in seen:
                seen.add(block)
                todo.append(PROFILE_DIR / SHARED_DIR / f"{block}.yaml")
    return seen


@pytest.mark.parametrize("before", sorted(BEFORE.glob("*.yaml")), ids=lambda p: p.stem)
def test_a_profile_using_blocks_is_what_its_file_said_before(before: Path) -> None:
    """Merged from its blocks, the profile equals the model of its written-out version: every
    reading, check, trap and grade, in the same order."""
    assert _blocks(before.stem), f"{before.stem} extends no shared block"
    assert _without_title_zh(builtin_profiles()[before.stem]) == load_profile(before)


def _without_title_zh(profile: GradedProfile) -> GradedProfile:
    """The profile without the Chinese titles its rules gained after the written-out versions."""
    return profile.model_copy(
        update={
            "checks": [c.model_copy(update={"title_zh": ""}) for c in profile.checks],
            "traps": [t.model_copy(update={"title_zh": ""}) for t in profile.traps],
            "log_patterns": [p.model_copy(update={"title_zh": ""}) for p in profile.log_patterns],
        }
    )


def test_switches_and_ups_profiles_share_their_common_blocks() -> None:
    """The six switch profiles take IF-MIB from one block, the UPS-MIB profiles UPS-MIB."""
    for name in SWITCHES:
        assert "if_mib" in _blocks(name), name
    for name in UPS_MIB:
        assert "ups_mib" in _blocks(name), name
    assert "entity_sensors" in _blocks("generic_if")
    assert "host_resources" in _blocks("generic_host_resources")
    assert {p.stem for p in BEFORE.glob("*.yaml")} == {
        *SWITCHES,
        *UPS_MIB,
        "generic_host_resources",
    }


def test_shared_blocks_are_never_profiles() -> None:
    """A block is neither loaded as a profile nor tried by identification."""
    blocks = {p.stem for p in (PROFILE_DIR / SHARED_DIR).glob("*.yaml")}
    assert {"if_mib", "if_mib_ifname", "entity_sensors", "ups_mib", "host_resources"} <= blocks
    profiles = builtin_profiles()
    assert not blocks & set(profiles)
    assert not blocks & {p.name for p in candidates("1.3.6.1.2.1.33", ".*", profiles)}


def _dir(tmp_path: Path, profile: dict[str, Any], **shared: dict[str, Any]) -> Path:
    (tmp_path / SHARED_DIR).mkdir(exist_ok=True)
    for name, data in shared.items():
        (tmp_path / SHARED_DIR / f"{name}.yaml").write_text(yaml.safe_dump(data), "utf-8")
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(profile), encoding="utf-8")
    return path


IDENTITY: dict[str, Any] = {
    "name": "t",
    "vendor": "v",
    "model": "m",
    "device_class": "switch",
    "protocol": "snmp",
}
PORTS: dict[str, Any] = {
    "snmp": {
        "scalars": [{"metric": "sys_descr", "oid": "1.3.6.1.2.1.1.1.0", "text": True}],
        "tables": [
            {
                "name": "interfaces",
                "component_oid": "1.3.6.1.2.1.2.2.1.2",
                "columns": [
                    {"metric": "admin", "oid": "1.3.6.1.2.1.2.2.1.7", "states": {"1": "up"}},
                    {"metric": "oper", "oid": "1.3.6.1.2.1.2.2.1.8", "states": {"2": "down"}},
                ],
            }
        ],
    },
    "checks": [
        {
            "code": "port_down",
            "title": "Port down",
            "kind": "state",
            "metric": "oper",
            "per_component": True,
            "raise_in": ["down"],
            "when": {"metric": "admin", "in": ["up"]},
            "grade": 3,
        },
        {
            "code": "any_down",
            "title": "Any",
            "kind": "state",
            "metric": "oper",
            "raise_in": ["down"],
            "grade": 4,
        },
    ],
    "traps": [{"oid": "1.3.6.1.6.3.1.1.5.3", "code": "link_down", "grade": 3}],
}


def test_an_entry_named_like_an_inherited_one_is_merged_into_it_in_place(tmp_path: Path) -> None:
    """Give only what changes: a check regraded, a guard removed (null), a table renamed by
    another column and given one more, a reading moved; other entries follow, plain lists
    are replaced whole."""
    own = IDENTITY | {
        "extends": ["ports"],
        "key": ["oper"],
        "snmp": {
            "scalars": [{"metric": "uptime", "oid": "1.3.6.1.2.1.1.3.0"}],
            "tables": [
                {
                    "name": "interfaces",
                    "component_oid": "1.3.6.1.2.1.31.1.1.1.1",
                    "columns": [
                        {"metric": "oper", "oid": "1.3.6.1.4.1.9.8"},
                        {"metric": "alias", "oid": "1.3.6.1.2.1.31.1.1.1.18", "text": True},
                    ],
                }
            ],
        },
        "checks": [
            {"code": "port_down", "grade": 2, "when": None, "raise_in": ["down", "dormant"]},
            {
                "code": "extra",
                "title": "E",
                "kind": "threshold",
                "metric": "uptime",
                "below": 1,
                "grade": 4,
            },
        ],
    }
    profile = load_profile(_dir(tmp_path, own, ports=PORTS))
    assert profile.snmp is not None
    assert [s.metric for s in profile.snmp.scalars] == ["sys_descr", "uptime"]
    (table,) = profile.snmp.tables
    assert table.component_oid == "1.3.6.1.2.1.31.1.1.1.1"
    assert [(c.metric, c.oid, c.states) for c in table.columns] == [
        ("admin", "1.3.6.1.2.1.2.2.1.7", {"1": "up"}),
        ("oper", "1.3.6.1.4.1.9.8", {"2": "down"}),  # moved, its states kept
        ("alias", "1.3.6.1.2.1.31.1.1.1.18", None),
    ]
    port_down, any_down, extra = profile.checks
    assert (port_down.code, int(port_down.grade), port_down.when) == ("port_down", 2, None)
    assert port_down.raise_in == ["down", "dormant"] and port_down.per_component
    assert (any_down.code, extra.code) == ("any_down", "extra")
    assert [(t.code, int(t.grade)) for t in profile.traps] == [("link_down", 3)]


def test_blocks_merge_in_order_and_may_extend_blocks(tmp_path: Path) -> None:
    """`extends: [a, b]`: b over a, the profile over both; a block extending another counts."""
    fans = {
        "extends": ["ports"],
        "checks": [{"code": "any_down", "grade": 2}],
    }
    later = {"checks": [{"code": "any_down", "grade": 1, "title": "Later"}]}
    path = _dir(tmp_path, IDENTITY | {"extends": ["fans", "later"]}, ports=PORTS, fans=fans,
                later=later)  # fmt: skip
    data = profile_data(path)
    assert "extends" not in data
    checks = {c.code: c for c in load_profile(path).checks}
    assert (int(checks["any_down"].grade), checks["any_down"].title) == (1, "Later")
    assert int(checks["port_down"].grade) == 3


def test_a_missing_block_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = _dir(tmp_path, IDENTITY | {"extends": ["nowhere"]})
    with pytest.raises(ProfileError, match=r"p\.yaml: extends: no shared block 'nowhere'"):
        load_profile(path)


def test_a_cycle_is_an_error_naming_the_files(tmp_path: Path) -> None:
    path = _dir(
        tmp_path,
        IDENTITY | {"extends": ["a"]},
        a={"extends": ["b"]},
        b={"extends": ["a"]},
    )
    with pytest.raises(
        ProfileError, match=r"b\.yaml: extends: 'a' makes a cycle \(p -> a -> b -> a\)"
    ):
        load_profile(path)


def test_extends_must_name_blocks(tmp_path: Path) -> None:
    path = _dir(tmp_path, IDENTITY | {"extends": "../../etc/passwd"})
    with pytest.raises(ProfileError, match=r"p\.yaml: extends: expected a list of shared block"):
        load_profile(path)


def test_a_block_holding_a_device_identity_is_refused(tmp_path: Path) -> None:
    """A block is sections only: one with a name or match rules is no block."""
    path = _dir(tmp_path, IDENTITY | {"extends": ["odd"]}, odd={"match": {"fallback": 1}})
    with pytest.raises(ProfileError, match=r"odd\.yaml: match: a shared block holds only"):
        load_profile(path)


def test_merged_profile_is_validated_with_errors_naming_the_profile(tmp_path: Path) -> None:
    """A check of the block on a metric the merged profile lacks: refused, file and field."""
    block = {"checks": [{"code": "c", "title": "C", "kind": "state", "metric": "nope",
                         "raise_in": ["x"], "grade": 3}]}  # fmt: skip
    path = _dir(tmp_path, IDENTITY | {"extends": ["ports", "bad"]}, ports=PORTS, bad=block)
    with pytest.raises(ProfileError, match=r"p\.yaml: .*check 'c' uses unknown metric 'nope'"):
        load_profile(path)


def test_load_profiles_skips_the_shared_directory(tmp_path: Path) -> None:
    _dir(tmp_path, IDENTITY | {"extends": ["ports"]}, ports=PORTS)
    assert list(load_profiles(tmp_path)) == ["t"]
