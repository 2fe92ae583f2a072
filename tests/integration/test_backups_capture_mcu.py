"""The full simulated station's video codec CLI (generic_mcu_ssh) over real SSH: its
configuration backed up scrubbed, its error and call logs read as new lines only and graded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from checks.engine import DeviceGrader
from checks.logpatterns import LogPatternChecker
from checks.profile_rules import builtin_profiles
from checks.tracker import FaultTracker
from collectors.backups import ConfigStore, backup_device
from collectors.base import ReadingSet
from collectors.logs import LogCollector, LogCursors
from collectors.ssh import SshCollector
from collectors.targets import SshTarget
from simulators.station import SimulatedStation, load_station_config

pytestmark = pytest.mark.integration

SECRETS = ["Adm1n-Pass!", "vc1-public", "s1p-Secret", "vc1-secret"]


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatedStation]:
    """The full station (every device class) on ephemeral ports."""
    sim = SimulatedStation(
        load_station_config("full"), tmp_path_factory.mktemp("sim"), ephemeral_ports=True
    )
    sim.start()
    yield sim
    sim.stop()


def _ssh(station: SimulatedStation, tmp_path: Path) -> SshCollector:
    d = station.manifest["devices"]["vc1-cli"]
    target = SshTarget(
        host=d["host"],
        port=d["port"],
        username=d["username"],
        password=SecretStr(d["password"]),
        timeout_s=5,
    )
    profile = builtin_profiles()["generic_mcu_ssh"]
    assert profile.ssh is not None
    return SshCollector("vc1", target, profile.ssh, tmp_path / "known_hosts")


async def test_codec_poll_backup_and_logs(station: SimulatedStation, tmp_path: Path) -> None:
    """Ports and alarms polled; config scrubbed and judged; new log lines graded once."""
    profile = builtin_profiles()["generic_mcu_ssh"]
    assert profile.ssh is not None
    ssh = _ssh(station, tmp_path)
    grader = DeviceGrader("vc1", profile.checks, extra_codes=profile.event_codes())
    tracker = FaultTracker()
    logs = LogCollector(
        "vc1", ssh, profile.ssh.log_commands, LogCursors(tmp_path / "log_cursors.json")
    )
    checker = LogPatternChecker(profile.log_patterns)
    store = ConfigStore(tmp_path / "state")
    try:
        assert grader.on_readings(ReadingSet(await ssh.collect()), tracker) == []
        first = await backup_device("vc1", ssh, profile, store)
        assert first.status == "first" and 'sip.registrar "sip.hq.example.net"' in first.text
        assert await logs.collect() == []  # history is not replayed

        station.set_condition("vc1-cli", "ports_exhausted")
        station.set_condition("vc1-cli", "mcu_alarm")
        raised = grader.on_readings(ReadingSet(await ssh.collect()), tracker)
        assert sorted((c.code, c.component, int(c.grade)) for c in raised) == [
            ("mcu_alarm", "E1-1", 2),
            ("ports_exhausted", "", 4),
        ]

        station.set_condition("vc1-cli", "config_noise")
        assert (await backup_device("vc1", ssh, profile, store)).status == "noise"
        station.set_condition("vc1-cli", "config_changed")
        changed = await backup_device("vc1", ssh, profile, store)
        assert changed.status == "changed" and '+sip.registrar "203.0.113.66"' in changed.diff
        for text in [
            changed.text,
            changed.diff,
            *(p.read_text() for p in store.root.rglob("*.cfg")),
        ]:
            for secret in SECRETS:
                assert secret not in text

        station.set_condition("vc1-cli", "error_burst")
        station.set_condition("vc1-cli", "call_failed")
        new = await logs.collect()
        assert {r.metric for r in new} == {"error_log", "call_log"}
        assert len(new) == 6  # 4 error lines + 1 call line + 1 error line, nothing older
        changes = tracker.apply("vc1", checker.evaluate(new, tracker.view("vc1")))
        assert sorted((c.code, int(c.grade)) for c in changes) == [
            ("call_failures", 3),
            ("fan_failure", 3),
        ]
        assert await logs.collect() == []
    finally:
        station.reset("vc1-cli")
