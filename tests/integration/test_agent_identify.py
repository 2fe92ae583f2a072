"""Devices without a profile in the config are recognised by sysObjectID / sysDescr."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agent.config import AUTO_PROFILE, load_config
from agent.runner import AgentRuntime
from simulators.station import SimulatedStation, load_station_config
from stationwatch.demo import write_agent_config

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
            await rt._start_devices()
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
