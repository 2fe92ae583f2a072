"""`stationwatch agent poll` as a real process against captures served over SNMP on loopback.

A device without a profile in the config is identified first, by the same code as the daemon
(collectors.identify): the command names the profile it chose and prints the readings. A device
whose profile yields none of its key readings is a profile mismatch: said so, exit status 1.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.config import AUTO_PROFILE, load_config
from agent.runner import AgentRuntime
from protocol.wire import DeviceState
from tests.snmprec_agent import SnmprecAgent

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parent.parent / "data" / "snmprec"


@pytest.fixture
def served(request: pytest.FixtureRequest) -> Iterator[SnmprecAgent]:
    """The capture (a path) served on loopback."""
    agent = SnmprecAgent(request.param).start()
    yield agent
    agent.stop()


def _site(
    tmp_path: Path, port: int, profile: str | None = None, checks: list[Any] | None = None
) -> Path:
    """A site config with one SNMP device `dev1` at the served port (no profile: auto)."""
    creds = tmp_path / "credentials.yaml"
    creds.write_text(yaml.safe_dump({"dev1": {"community": "public"}}), encoding="utf-8")
    creds.chmod(0o600)
    device: dict[str, Any] = {
        "id": "dev1",
        "snmp": {"host": "127.0.0.1", "port": port, "timeout_s": 2, "retries": 1},
    }
    if profile:
        device["profile"] = profile
    if checks:
        device["checks"] = checks
    site = tmp_path / "site.yaml"
    config = {
        "site": "t",
        "hq": {"url": "http://127.0.0.1:9"},
        "state_dir": str(tmp_path / "state"),
        "credentials_file": str(creds),
        "intervals": {"poll_s": 3600},
        "devices": [device],
    }
    site.write_text(yaml.safe_dump(config), encoding="utf-8")
    return site


def _poll(
    cmd: list[str], env: dict[str, str], site: Path, device: str = "dev1"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cmd, "agent", "poll", "--config", str(site), device],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )


def _rows(stdout: str) -> set[tuple[str, ...]]:
    return {tuple(line.split()) for line in stdout.splitlines()}


CASES = [
    # (capture, the profile it is identified as, a reading row the poll must print)
    ("identify/deltaups.snmprec", "ups_rfc1628", ("output_source", "normal")),
    ("identify/eatonups_m2.snmprec", "ups_rfc1628", ("battery_status", "normal")),
    ("ios_c3560.snmprec", "cisco_ios_switch", ("fan_state", "Switch#1,", "Fan#1", "normal")),
    ("identify/iosxr.snmprec", "generic_if", ("if_oper_status", "MgmtEth0/RSP0/CPU0/1", "down")),
]


@pytest.mark.parametrize(
    ("served", "profile", "row"),
    [pytest.param(DATA / c, p, r, id=Path(c).stem) for c, p, r in CASES],
    indirect=["served"],
)
async def test_poll_identifies_like_the_daemon_and_prints_readings(
    served: SnmprecAgent,
    profile: str,
    row: tuple[str, ...],
    tmp_path: Path,
    stationwatch_cmd: list[str],
    clean_env: dict[str, str],
) -> None:
    """Auto-detected device: the command names the profile, prints its readings, exits 0, and
    the daemon's identify() picks the same profile."""
    site = _site(tmp_path, served.port)
    run = _poll(stationwatch_cmd, clean_env, site)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[0].startswith(f"profile: {profile} (detected) - ")
    assert row in _rows(run.stdout)
    assert "Traceback" not in run.stderr
    rt = AgentRuntime(load_config(site), token=None)
    try:
        device = rt.loaded.devices[0]
        assert device.profile is AUTO_PROFILE
        known = await rt.identify(device)
        assert known is not None and known.profile.name == profile
    finally:
        await rt.close()


@pytest.mark.parametrize("served", [DATA / "identify" / "eatonups_m2.snmprec"], indirect=True)
def test_poll_with_a_profile_the_device_does_not_speak_is_a_mismatch(
    served: SnmprecAgent, tmp_path: Path, stationwatch_cmd: list[str], clean_env: dict[str, str]
) -> None:
    """An Eaton 9PX (M2 card) configured as ups_eaton: readings printed, mismatch said, exit 1."""
    run = _poll(stationwatch_cmd, clean_env, _site(tmp_path, served.port, "ups_eaton"))
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stdout.startswith("profile: ups_eaton (configured) - Eaton ")
    assert ("battery_charge_percent", "100", "%") in _rows(run.stdout)
    assert "profile_mismatch" in run.stdout
    assert "dev1: profile mismatch (grade 4): profile ups_eaton read none of: " in run.stderr
    assert "output_source, runtime_s" in run.stderr


@pytest.mark.parametrize("served", [DATA / "identify" / "asa.snmprec"], indirect=True)
async def test_poll_of_an_unidentifiable_device_says_what_was_tried(
    served: SnmprecAgent, tmp_path: Path, stationwatch_cmd: list[str], clean_env: dict[str, str]
) -> None:
    """A Cisco ASA is no switch: nothing answers, the command says what it tried, exit 1; the
    daemon raises the same as an 'unreadable' fault with the device state to match."""
    site = _site(tmp_path, served.port)
    run = _poll(stationwatch_cmd, clean_env, site)
    assert run.returncode == 1
    assert "dev1: not identified: no profile answers for sysObjectID 1.3.6.1.4.1.9.1.745" in (
        run.stderr
    )
    assert "tried ups_rfc1628, generic_host_resources, generic_if" in run.stderr
    rt = AgentRuntime(load_config(site), token=None)
    try:
        assert await rt.identify(rt.loaded.devices[0]) is None
        assert rt.tracker.view("dev1").is_active("unreadable")
        assert rt.device_state["dev1"] is DeviceState.UNREADABLE
    finally:
        await rt.close()


@pytest.mark.parametrize("served", [DATA / "identify" / "deltaups.snmprec"], indirect=True)
async def test_site_override_the_identified_profile_lacks_is_said_not_crashed(
    served: SnmprecAgent, tmp_path: Path, stationwatch_cmd: list[str], clean_env: dict[str, str]
) -> None:
    """A check override written for another model: the command and the daemon name it."""
    site = _site(tmp_path, served.port, checks=[{"code": "vswr_high", "above": 2}])
    run = _poll(stationwatch_cmd, clean_env, site)
    assert run.returncode == 1
    assert "dev1: identified as ups_rfc1628: no check 'vswr_high' in this profile" in run.stderr
    assert "Traceback" not in run.stderr
    rt = AgentRuntime(load_config(site), token=None)
    try:
        assert await rt.identify(rt.loaded.devices[0]) is None
        assert rt.tracker.view("dev1").is_active("unreadable")
        assert rt.device_state["dev1"] is DeviceState.UNREADABLE
        (detail,) = [e.detail for e in rt.outbox.pending() if e.code == "unreadable"]
        assert "identified as ups_rfc1628, but its checks: no check 'vswr_high'" in detail
    finally:
        await rt.close()
