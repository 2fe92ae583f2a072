"""Each part of the agent built alone, without an AgentRuntime: the parts take what they use
through their constructors (a fault sink on a temporary outbox, a device set, an uplink), so
each can be run and inspected on its own, against real peers on loopback."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.backups import BackupManager
from agent.config import AUTO_PROFILE, LoadedConfig, load_config
from agent.devices import DeviceSet
from agent.faults import FaultSink
from agent.jobs import JobRunner, Refused
from agent.listeners import Listeners
from agent.outbox import Outbox
from agent.state import DEVICE_STATES_KEY
from agent.uplink import Uplink
from protocol.wire import DeviceState, Job, JobKind, JobStatus
from simulators.station import SimulatedStation, load_station_config
from stationwatch.demo import write_agent_config
from tests.peers import free_port
from tests.snmprec_agent import SnmprecAgent

pytestmark = pytest.mark.integration

DELTA_UPS = (
    Path(__file__).resolve().parent.parent / "data" / "snmprec" / "identify" / "deltaups.snmprec"
)
OUTPUT_SOURCE = "1.3.6.1.2.1.33.1.4.1.0"
NO_HQ = "http://127.0.0.1:9"  # nothing listens: uploads fail at once


def _site(tmp_path: Path, devices: list[dict[str, Any]], **extra: Any) -> Path:
    creds = tmp_path / "credentials.yaml"
    entries = {d["id"]: {"community": "public"} for d in devices if "snmp" in d}
    creds.write_text(yaml.safe_dump(entries), encoding="utf-8")
    creds.chmod(0o600)
    config = {
        "site": "parts",
        "hq": {"url": NO_HQ},
        "state_dir": str(tmp_path / "state"),
        "credentials_file": str(creds),
        "intervals": {"poll_s": 3600},
        "devices": devices,
    } | extra
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump(config), encoding="utf-8")
    return site


def _snmp(dev_id: str, port: int) -> dict[str, Any]:
    """An SNMP device without a profile: identified first, which also builds its collector."""
    return {"id": dev_id, "snmp": {"host": "127.0.0.1", "port": port, "timeout_s": 1, "retries": 0}}


def _sink(loaded: LoadedConfig) -> FaultSink:
    return FaultSink(Outbox(loaded.agent.state_dir / "outbox.sqlite", {}), loaded.agent.site)


@pytest.fixture
def ups() -> Iterator[SnmprecAgent]:
    """A Delta UPS (RFC 1628 card) served on loopback."""
    agent = SnmprecAgent(DELTA_UPS).start()
    yield agent
    agent.stop()


async def test_device_set_alone_identifies_polls_and_grades(
    tmp_path: Path, ups: SnmprecAgent
) -> None:
    """A DeviceSet on a fault sink: a UPS is identified and polled; a device that does not
    answer identification is unreachable, fault and state alike; `agent status` sees both."""
    loaded = load_config(
        _site(tmp_path, [_snmp("ups1", ups.port), _snmp("gone", free_port(socket.SOCK_DGRAM))])
    )
    faults = _sink(loaded)
    devices = DeviceSet(faults, loaded)
    try:
        ups1, gone = devices.devices
        assert ups1.profile is AUTO_PROFILE
        known = await devices.identify(ups1)
        assert known is not None and known.profile.name == "ups_rfc1628"
        assert devices.device("ups1") is known
        assert await devices.poll_now(known)
        assert devices.states["ups1"] is DeviceState.OK and faults.tracker.active == {}
        ups.set(OUTPUT_SOURCE, "2", "5")  # upsOutputSource: battery
        await devices.poll_now(known)
        assert {k: int(f.grade) for k, f in faults.tracker.active.items()} == {"ups1:on_battery": 2}

        assert await devices.identify(gone) is None
        assert faults.tracker.view("gone").is_active("unreachable")
        assert devices.states["gone"] is DeviceState.UNREACHABLE
        await faults.in_db(devices.save_states)
        saved = json.loads(faults.outbox.get_meta(DEVICE_STATES_KEY) or "{}")
        assert saved == {"ups1": "ok", "gone": "unreachable"}
        codes = [(e.device_id, e.code) for e in faults.outbox.pending()]
        assert codes == [("ups1", "on_battery"), ("gone", "unreachable")]
    finally:
        await devices.stop()
        devices.close()
        faults.close()


async def test_job_runner_alone_with_a_device_set_of_one_simulated_device(
    tmp_path: Path, ups: SnmprecAgent
) -> None:
    """A JobRunner over a DeviceSet of one UPS: polls and checks it on demand, refuses what
    its catalogue lacks, judges the agent host's checklist items."""
    loaded = load_config(_site(tmp_path, [_snmp("ups1", ups.port)]))
    faults = _sink(loaded)
    devices = DeviceSet(faults, loaded)
    uplink = Uplink(NO_HQ, None)
    backups = BackupManager(faults, devices, uplink, loaded.agent)
    jobs = JobRunner(faults, devices, backups, uplink, loaded.agent)

    def job(kind: JobKind, item: str = "", device: str | None = "ups1") -> Job:
        return Job(job_id=uuid.uuid4(), kind=kind, item=item, device_id=device,
                   created_at=datetime.now(UTC))  # fmt: skip

    try:
        assert await devices.identify(devices.devices[0]) is not None
        status, _, [item] = await jobs._dispatch(job(JobKind.POLL_DEVICE))
        assert status is JobStatus.OK and item.values["output_source"] == "normal"
        status, summary, _ = await jobs._dispatch(job(JobKind.RUN_CHECK, "on_battery"))
        assert status is JobStatus.OK and "not raised" in summary
        ups.set(OUTPUT_SOURCE, "2", "5")
        status, summary, _ = await jobs._dispatch(job(JobKind.RUN_CHECK, "on_battery"))
        assert status is JobStatus.FAILED and "raised" in summary
        with pytest.raises(Refused, match="has no config backup"):
            jobs.check(job(JobKind.BACKUP_CONFIG), datetime.now(UTC))
        _, _, items = await jobs._dispatch(job(JobKind.RUN_CHECKLIST, "routine_inspection", None))
        by = {(i.name, i.device_id): i for i in items}
        assert by[("device_reachable", "ups1")].passed
        assert by[("agent_outbox", "agent")].passed  # one event waiting, of at most 1000
        assert by[("agent_outbox", "agent")].detail == "outbox_depth = 1"
    finally:
        await uplink.aclose()
        await devices.stop()
        devices.close()
        faults.close()


async def test_listeners_alone_feed_a_fault_sink(tmp_path: Path) -> None:
    """Listeners on a fault sink over a temporary outbox: a syslog line from the PBX's address
    is graded by the PBX profile's log patterns and lands in the outbox."""
    pbx = {"id": "pbx1", "profile": "generic_pbx_ssh", "ssh": {"host": "127.0.0.2"}}
    creds_entry = {"pbx1": {"username": "maint", "password": "x"}}
    site = _site(tmp_path, [pbx], syslog={"enabled": True, "host": "127.0.0.1", "port": 0})
    (tmp_path / "credentials.yaml").write_text(yaml.safe_dump(creds_entry), encoding="utf-8")
    loaded = load_config(site)
    faults = _sink(loaded)
    listeners = Listeners(faults, loaded, {})
    tasks = await listeners.start()
    try:
        assert listeners.syslog_port and listeners.traps is None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.2", 0))
            msg = b"<131>Nov 23 14:40:00 PBX-01 alarmd: TRUNK-3 E1 loss of signal"
            s.sendto(msg, ("127.0.0.1", listeners.syslog_port))
        key = "pbx1:e1_loss_of_signal:TRUNK-3"
        deadline = time.monotonic() + 15
        while key not in faults.tracker.active:
            assert time.monotonic() < deadline, sorted(faults.tracker.active)
            await asyncio.sleep(0.05)  # polling interval of the condition, not synchronisation
        assert int(faults.tracker.active[key].grade) == 2
        assert [e.fault_key for e in faults.outbox.pending()] == [key]
        assert faults.wake.is_set()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        listeners.close()
        faults.close()


@pytest.fixture
def station(tmp_path: Path) -> Iterator[SimulatedStation]:
    with SimulatedStation(load_station_config(), tmp_path / "sim", ephemeral_ports=True) as st:
        yield st


@pytest.fixture
async def backup_parts(
    station: SimulatedStation, tmp_path: Path
) -> AsyncIterator[tuple[BackupManager, FaultSink, DeviceSet]]:
    site = write_agent_config(station.manifest, tmp_path / "agent", NO_HQ, 600)
    loaded = load_config(site)
    faults = _sink(loaded)
    devices = DeviceSet(faults, loaded)
    uplink = Uplink(NO_HQ, None)
    try:
        yield BackupManager(faults, devices, uplink, loaded.agent), faults, devices
    finally:
        await uplink.aclose()
        devices.close()
        faults.close()


async def test_backup_manager_alone_raises_config_changed_and_keeps_the_upload_pending(
    backup_parts: tuple[BackupManager, FaultSink, DeviceSet], station: SimulatedStation
) -> None:
    """BackupManager on a fault sink and a device set (no poll loops): the PBX's backup is
    taken over SSH; a significant change raises config_changed (grade 4) in the sink; HQ out
    of reach leaves the upload pending."""
    backups, faults, devices = backup_parts
    pbx1 = devices.device("pbx1")
    assert pbx1 is not None and backups.supports(pbx1)
    assert (await backups.backup(pbx1)).status == "first"
    assert faults.tracker.active == {}
    station.set_condition("pbx1", "config_changed")
    assert (await backups.backup(pbx1)).status == "changed"
    fault = faults.tracker.active["pbx1:config_changed"]
    assert int(fault.grade) == 4
    assert [e.code for e in faults.outbox.pending()] == ["config_changed"]
    assert await backups.upload_latest("pbx1") is False
    assert faults.outbox.get_meta("backup_sent:pbx1") is None
