"""Site config and credentials: valid examples load; mistakes are named precisely."""

from __future__ import annotations

import resource
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from agent.config import load_config
from agent.errors import ConfigError
from protocol.wire import MAX_HEARTBEAT_DEVICES

EXAMPLES = Path(__file__).resolve().parents[2] / "agent" / "examples"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    for name in ("site.yaml", "credentials.yaml"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    (tmp_path / "credentials.yaml").chmod(0o600)
    return tmp_path / "site.yaml"


class _NoAliases(yaml.SafeDumper):
    """Writes a value shared by several places out each time (configs refuse aliases)."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def edit(path: Path, fn) -> None:  # type: ignore[no-untyped-def]
    data = yaml.safe_load(path.read_text())
    fn(data)
    path.write_text(yaml.dump(data, Dumper=_NoAliases, sort_keys=False))


def test_example_loads(site: Path) -> None:
    loaded = load_config(site)
    assert loaded.problems == []
    ids = ["tx1", "tx2", "sw1", "sw2", "pbx1", "mcu1", "ups1", "env1", "agent"]
    assert [d.id for d in loaded.devices] == ids
    sw1 = loaded.devices[2]
    assert sw1.backup_target is not None and sw1.backup_target.username == "backup"
    assert sw1.target.community.get_secret_value() == "change-me"  # type: ignore[union-attr]
    tx1 = loaded.devices[0]
    assert tx1.target.community.get_secret_value() == "change-me"  # type: ignore[union-attr]
    assert "change-me" not in repr(tx1)
    assert {c.code: c.above for c in tx1.checks}["vswr_high"] == 1.6
    assert loaded.agent.state_dir == Path("/var/lib/stationwatch")


def test_bad_device_names_file_line_field_and_expectation(site: Path) -> None:
    text = site.read_text().replace("port: 161, version: 2c", "port: abc, version: 2c")
    site.write_text(text)
    loaded = load_config(site)
    assert "tx1" not in [d.id for d in loaded.devices] and len(loaded.devices) == 8
    (problem,) = loaded.problems
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "port: abc" in s)
    assert problem.startswith(f"{site}:{line}: devices[0].snmp.port: ")
    assert "integer" in problem and "'abc'" in problem


def test_unknown_profile_lists_known_ones(site: Path) -> None:
    edit(site, lambda d: d["devices"][2].update(profile="cisco_nope"))
    (problem,) = load_config(site).problems
    assert "devices[2].profile: unknown profile 'cisco_nope'; expected one of:" in problem
    assert "cisco_ios_switch" in problem


def test_secret_in_site_config_is_refused(site: Path) -> None:
    edit(site, lambda d: d["devices"][0]["snmp"].update(community="public"))
    (problem,) = load_config(site).problems
    assert "devices[0].snmp: community must be in the credentials file" in problem


def test_missing_credentials_entry_and_no_secret_echo(site: Path) -> None:
    creds = site.parent / "credentials.yaml"
    creds.write_text("tx1: {community: s3cret}\nsw1: {community: x}\npbx1: {username: maint}\n")
    problems = load_config(site).problems
    (problem,) = [p for p in problems if "devices[4]" in p]
    assert "devices[4].ssh" in problem and "password or a key_file" in problem
    assert any("no entry 'ups1' in credentials file" in p for p in problems)
    assert not any("s3cret" in p or "maint" in p for p in problems)


def test_world_readable_credentials_refused(site: Path) -> None:
    creds = site.parent / "credentials.yaml"
    creds.chmod(0o644)
    loaded = load_config(site)
    assert [d.id for d in loaded.devices] == ["tx2", "agent"]  # they need no credentials
    (problem,) = loaded.problems  # said once, not once per device
    assert "mode 644" in problem and "chmod 600" in problem


def test_top_level_errors_stop_the_agent(site: Path) -> None:
    edit(site, lambda d: d["hq"].update(url="ftp://x"))
    with pytest.raises(ConfigError) as err:
        load_config(site)
    assert "hq.url" in str(err.value) and "ftp://x" in str(err.value)


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    bad = tmp_path / "site.yaml"
    bad.write_text("site: x\nhq: {url: http://a\ndevices: []\n")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert str(err.value).startswith(f"{bad}:")
    assert "not valid YAML" in str(err.value)


def test_unknown_field_is_named(site: Path) -> None:
    edit(site, lambda d: d["devices"][1]["serial"].update(baud=9600))
    (problem,) = load_config(site).problems
    assert "devices[1].serial.baud: unknown field" in problem


def test_unused_transport_section_is_named(site: Path) -> None:
    edit(site, lambda d: d["devices"][0].update(ssh={"host": "127.0.0.1"}))
    (problem,) = load_config(site).problems
    assert "profile 'ecreso_fm' speaks snmp; the ssh section is not used by it" in problem


def test_duplicate_device_id(site: Path) -> None:
    edit(site, lambda d: d["devices"][1].update(id="tx1"))
    (problem,) = load_config(site).problems
    assert "duplicate device id 'tx1'" in problem


def test_check_config_command(
    site: Path, stationwatch_cmd: list[str], clean_env: dict[str, str]
) -> None:
    ok = subprocess.run(
        [*stationwatch_cmd, "agent", "check-config", str(site)],
        capture_output=True,
        text=True,
        env=clean_env,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "OK, 9 device(s)" in ok.stdout
    site.write_text(site.read_text().replace("port: 161, version: 2c", "port: 99999, version: 2c"))
    bad = subprocess.run(
        [*stationwatch_cmd, "agent", "check-config", str(site)],
        capture_output=True,
        text=True,
        env=clean_env,
        check=False,
    )
    assert bad.returncode == 1
    assert "devices[0].snmp.port" in bad.stderr and "less than or equal to 65535" in bad.stderr
    assert "Traceback" not in bad.stderr
    # `agent run` with a broken top level exits non-zero, without a traceback.
    site.write_text("site: x\n")
    run = subprocess.run(
        [*stationwatch_cmd, "agent", "run", "--config", str(site)],
        capture_output=True,
        text=True,
        env=clean_env,
        check=False,
        timeout=60,
    )
    assert run.returncode == 1
    assert "hq: Field required" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080", "http://localhost:8080/", "http://[::1]:8080", "https://hq"]
)
def test_https_or_plain_http_to_loopback_is_accepted(site: Path, url: str) -> None:
    edit(site, lambda d: d["hq"].update(url=url))
    assert load_config(site).agent.hq.url == url.rstrip("/")


def _run_agent(
    stationwatch_cmd: list[str], clean_env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*stationwatch_cmd, "agent", *args],
        capture_output=True,
        text=True,
        env=clean_env,
        check=False,
        timeout=60,
    )


def test_plain_http_to_a_remote_hq_is_refused_unless_allowed(
    site: Path, stationwatch_cmd: list[str], clean_env: dict[str, str], tmp_path: Path
) -> None:
    text = site.read_text().replace("url: https://hq.example.net", "url: http://hq.example.net")
    site.write_text(text)
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "url: http://" in s)
    for args in (["check-config", str(site)], ["run", "--config", str(site)]):
        refused = _run_agent(stationwatch_cmd, clean_env, *args)
        assert refused.returncode == 1, args
        assert f"{site}:{line}: hq.url: plain http:// to hq.example.net" in refused.stderr
        assert "use https://" in refused.stderr and "hq.allow_insecure_http: true" in refused.stderr
        assert "Traceback" not in refused.stderr
    # Allowed explicitly: accepted, and every start says so at WARNING (`status` starts too,
    # and talks to no one).
    edit(site, lambda d: d["hq"].update(allow_insecure_http=True, url="http://hq.example.net"))
    edit(site, lambda d: d.update(state_dir=str(tmp_path / "state")))
    assert _run_agent(stationwatch_cmd, clean_env, "check-config", str(site)).returncode == 0
    status = _run_agent(stationwatch_cmd, clean_env, "status", "--config", str(site))
    assert status.returncode == 0, status.stderr
    assert "WARNING" in status.stderr
    assert "plain HTTP to HQ at http://hq.example.net" in status.stderr


def _billion_laughs(first_line: str = "") -> str:
    """Nine levels of nine aliases: 9**9 (387 million) strings once expanded."""
    lines = [first_line] if first_line else []
    lines.append("l0: &l0 [" + ", ".join(["lol"] * 9) + "]")
    for level in range(1, 10):
        lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def _limited_memory() -> None:
    # 512 MiB of address space: check-config needs ~50 MiB of RSS; an expanded bomb, gigabytes.
    resource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20))


@pytest.mark.parametrize("which", ["credentials.yaml", "site.yaml"])
def test_billion_laughs_fails_fast_in_bounded_memory(
    site: Path, stationwatch_cmd: list[str], clean_env: dict[str, str], which: str
) -> None:
    target = site.parent / which
    target.write_text(_billion_laughs("site: x" if which == "site.yaml" else ""))
    result = subprocess.run(
        [*stationwatch_cmd, "agent", "check-config", str(site)],
        capture_output=True,
        text=True,
        env=clean_env,
        check=False,
        timeout=60,
        preexec_fn=_limited_memory,
    )
    assert result.returncode == 1
    line = 2 if which == "site.yaml" else 1
    assert f"{target}:{line}: not valid YAML: YAML anchors and aliases are not allowed (&l0)" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr


def test_an_alias_alone_is_refused_with_its_line(site: Path) -> None:
    site.write_text(site.read_text() + "extra: *undefined_anchor\n")
    with pytest.raises(ConfigError) as err:
        load_config(site)
    line = len(site.read_text().splitlines())
    assert str(err.value).startswith(f"{site}:{line}: not valid YAML: YAML aliases are not allowed")


def test_a_file_over_1_mib_is_refused_unread(site: Path) -> None:
    creds = site.parent / "credentials.yaml"
    creds.write_text("# padding\n" * 200_000)  # 2 MB of comments: valid YAML, but not a config
    (problem,) = load_config(site).problems
    assert problem.startswith(f"{creds}: larger than 1024 KiB")
    site.write_text(site.read_text() + "#" * (1 << 20))
    with pytest.raises(ConfigError, match=f"{site}: larger than 1024 KiB"):
        load_config(site)


def test_more_devices_than_a_heartbeat_may_name_stop_the_agent(site: Path) -> None:
    # Every device is named in the heartbeat, which HQ bounds (protocol.wire).
    def many(data: dict) -> None:  # type: ignore[type-arg]
        # Short entries: the file must stay under the 1 MiB a config file may be.
        data["devices"] = [
            {"id": f"tx{i}", "profile": "ecreso_fm", "snmp": {"host": "127.0.0.1"}}
            for i in range(MAX_HEARTBEAT_DEVICES + 1)
        ]

    edit(site, many)
    with pytest.raises(ConfigError) as err:
        load_config(site)
    assert "devices" in str(err.value) and "at most 5000" in str(err.value)


def test_a_device_id_hq_would_refuse_names_no_device(site: Path) -> None:
    # Its problem is reported, but the bad id never reaches a fault or the heartbeat.
    edit(site, lambda d: d["devices"][1].update(id="tx 2"))
    loaded = load_config(site)
    (bad,) = loaded.bad_devices
    assert bad.id is None and "devices[1].id" in bad.problems[0]
