"""Config backups of the simulated station's PBX over real SSH: scrubbed, versioned, judged.

The PBX's running configuration holds a plain password (`pbx1-secret`), an SNMP community
(`s3cr3tRO`), an enable secret hash and a voicemail PIN; none of them may reach the store, the
diff or the fault. `config_noise` changes only the "Last configuration change" header;
`config_changed` changes the password and adds an extension.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from checks.tracker import FaultTracker
from collectors.backups import backup_device
from collectors.profiles import builtin_profiles
from collectors.ssh import SshCollector
from collectors.targets import SshTarget
from protocol.faults import CONFIG_CHANGED
from protocol.wire import EventKind
from simulators.station import SimulatedStation, load_station_config
from tests.backup_grading import GradingStore

pytestmark = pytest.mark.integration

SECRETS = ["pbx1-secret", "pbx1-n3w-secret", "s3cr3tRO", "$1$mERr$hx5rVt7rPNoS4wqbXKX7m0", "4711"]


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatedStation]:
    """The demo station on ephemeral ports."""
    sim = SimulatedStation(
        load_station_config(), tmp_path_factory.mktemp("sim"), ephemeral_ports=True
    )
    sim.start()
    yield sim
    sim.stop()


def _collector(station: SimulatedStation, known_hosts: Path) -> SshCollector:
    d = station.manifest["devices"]["pbx1"]
    target = SshTarget(
        host=d["host"],
        port=d["port"],
        username=d["username"],
        password=SecretStr(d["password"]),
        timeout_s=5,
    )
    profile = builtin_profiles()["generic_pbx_ssh"]
    assert profile.ssh is not None
    return SshCollector("pbx1", target, profile.ssh, known_hosts)


def _no_secret_in(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked"


async def test_pbx_backup_noise_and_significant_change(
    station: SimulatedStation, tmp_path: Path
) -> None:
    """Baseline, noise-only change (no fault), significant change (grade-4 fault with diff)."""
    profile = builtin_profiles()["generic_pbx_ssh"]
    store = GradingStore(tmp_path / "state")
    collector = _collector(station, tmp_path / "known_hosts")
    tracker = FaultTracker()
    try:
        first = await backup_device("pbx1", collector, profile, store)
        assert first.status == "first"
        assert "hostname PBX-01" in first.text and "<removed>" in first.text
        _no_secret_in(first.text)

        again = await backup_device("pbx1", collector, profile, store)
        assert again.status == "unchanged"

        station.set_condition("pbx1", "config_noise")
        noise = await backup_device("pbx1", collector, profile, store)
        assert noise.status == "noise", noise.diff
        assert tracker.apply("pbx1", noise.findings(active=False)) == []

        station.set_condition("pbx1", "config_changed")
        changed = await backup_device("pbx1", collector, profile, store)
        assert changed.status == "changed"
        assert "+extension 2099" in changed.diff
        active = tracker.view("pbx1").is_active(CONFIG_CHANGED)
        [event] = tracker.apply("pbx1", changed.findings(active=active))
        assert event.kind is EventKind.RAISE and event.code == CONFIG_CHANGED
        assert int(event.grade) == 4 and "+extension 2099" in event.detail
        for text in (changed.text, changed.diff, event.detail, str(event.values)):
            _no_secret_in(text)
        for path in (tmp_path / "state").rglob("*"):
            if path.is_file():
                _no_secret_in(path.read_text(encoding="utf-8"))
        assert len(store.versions("pbx1")) == 2
    finally:
        station.reset("pbx1")
