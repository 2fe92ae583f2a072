"""Devices without a profile in the config are recognised by sysObjectID / sysDescr."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agent.config import AUTO_PROFILE, load_config
from agent.devices import failure_outcome
from agent.runner import AgentRuntime
from collectors.errors import AuthFailed, DeviceUnreachable, DeviceUnreadable
from protocol.wire import DeviceState
from simulators.station import SimulatedStation, load_station_config
from stationwatch.demo import write_agent_config
from tests.snmprec_agent import SnmprecAgent

pytestmark = pytest.mark.integration


async def test_snmp_devices_are_identified_and_then_graded(tmp_path: Path) -> None:
    with SimulatedStation(load_station_config(), tmp_path / "sim", ephemeral_ports=True) as st:
        site = write_agent_config(st.manifest, tmp_path / "agent", "http://127.0.0.1:9", 600)
        config = yaml.safe_load(site.read_text())
        for dev in config["devices"]:
            if "snmp" in dev:
                del dev["profile"]
        site.write_text(yaml.safe_dump(config))
        loaded = load_config(site)
        assert loaded.problems == []
        rt = AgentRuntime(loaded, token=None)
        try:
            await rt.devices.start()
            tx1 = next(d for d in rt.loaded.devices if d.id == "tx1")
            assert tx1.profile is AUTO_PROFILE
            st.set_condition("tx1", "off_air")
            known = await rt.identify(tx1)
            assert known is not None and known.profile.name == "ecreso_fm"
            sw1 = next(d for d in rt.loaded.devices if d.id == "sw1")
            known_sw = await rt.identify(sw1)
            assert known_sw is not None and known_sw.profile.name == "cisco_ios_switch"
            await rt.poll_once(known, rt.collectors["tx1"], 10)
            assert "tx1:off_air" in rt.tracker.active
            assert [e.device_class for e in rt.outbox.pending() if e.code == "off_air"] == [
                "transmitter"
            ]
        finally:
            await rt.close()


def test_auto_is_only_for_snmp(tmp_path: Path) -> None:
    with SimulatedStation(load_station_config(), tmp_path / "sim", ephemeral_ports=True) as st:
        site = write_agent_config(st.manifest, tmp_path / "agent", "http://127.0.0.1:9", 600)
    config = yaml.safe_load(site.read_text())
    for dev in config["devices"]:
        del dev["profile"]
    site.write_text(yaml.safe_dump(config))
    problems = load_config(site).problems
    assert len(problems) == 2  # pbx1 (ssh) and tx2 (serial)
    assert all("only SNMP devices can be recognised automatically" in p for p in problems)


DATA = Path(__file__).resolve().parent.parent / "data" / "snmprec"
EATON_9PX_M2 = DATA / "identify" / "eatonups_m2.snmprec"  # sysObjectID Eaton, RFC 1628 only


def _ups_site(tmp_path: Path, port: int, profile: str | None) -> Path:
    creds = tmp_path / "credentials.yaml"
    creds.write_text(yaml.safe_dump({"ups1": {"community": "public"}}), encoding="utf-8")
    creds.chmod(0o600)
    device: dict[str, object] = {
        "id": "ups1",
        "snmp": {"host": "127.0.0.1", "port": port, "timeout_s": 2, "retries": 1},
    }
    if profile:
        device["profile"] = profile
    site = tmp_path / "site.yaml"
    site.write_text(
        yaml.safe_dump(
            {
                "site": "t",
                "hq": {"url": "http://127.0.0.1:9"},
                "state_dir": str(tmp_path / "state"),
                "credentials_file": str(creds),
                "intervals": {"poll_s": 3600},
                "devices": [device],
            }
        ),
        encoding="utf-8",
    )
    return site


async def test_eaton_9px_is_identified_by_probing_and_goes_on_battery(tmp_path: Path) -> None:
    """The daemon refuses ups_eaton for a 9PX with an M2 card (no XUPS status), takes
    ups_rfc1628, and its switch to battery raises on_battery (grade 2)."""
    agent = SnmprecAgent(EATON_9PX_M2).start()
    rt = AgentRuntime(load_config(_ups_site(tmp_path, agent.port, None)), token=None)
    try:
        await rt.devices.start()
        known = await rt.identify(rt.loaded.devices[0])
        assert known is not None and known.profile.name == "ups_rfc1628"
        await rt.poll_once(known, rt.collectors["ups1"], 10)
        assert rt.tracker.active == {}
        agent.set("1.3.6.1.2.1.33.1.4.1.0", "2", "5")  # upsOutputSource: battery
        await rt.poll_once(known, rt.collectors["ups1"], 10)
        assert {k: int(f.grade) for k, f in rt.tracker.active.items()} == {"ups1:on_battery": 2}
    finally:
        await rt.close()
        agent.stop()


async def test_profile_mismatch_is_a_grade_4_fault_of_the_poll(tmp_path: Path) -> None:
    """The same 9PX configured as ups_eaton: the poll answers, but with none of the profile's
    key readings: a grade-4 profile_mismatch through the normal checks path, to HQ's outbox."""
    agent = SnmprecAgent(EATON_9PX_M2).start()
    rt = AgentRuntime(load_config(_ups_site(tmp_path, agent.port, "ups_eaton")), token=None)
    try:
        await rt.devices.start()
        device = rt.loaded.devices[0]
        readings = await rt.poll_once(device, rt.collectors["ups1"], 10)
        assert readings, "the device answered"
        assert rt.device_state["ups1"] is DeviceState.OK
        fault = rt.tracker.active["ups1:profile_mismatch"]
        assert fault.grade == 4
        assert [e.code for e in rt.outbox.pending()] == ["profile_mismatch"]
    finally:
        await rt.close()
        agent.stop()


def test_failed_poll_and_failed_identification_share_one_mapping() -> None:
    """Unreadable answers and crashes are 'unreadable', no answer or refused credentials are
    'unreachable': the fault code and the device state always agree."""
    assert failure_outcome(DeviceUnreadable("x")) == ("unreadable", DeviceState.UNREADABLE)
    assert failure_outcome(RuntimeError("x")) == ("unreadable", DeviceState.UNREADABLE)
    assert failure_outcome(DeviceUnreachable("x")) == ("unreachable", DeviceState.UNREACHABLE)
    assert failure_outcome(AuthFailed("x")) == ("unreachable", DeviceState.UNREACHABLE)
