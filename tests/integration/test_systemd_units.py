"""The shipped systemd units verify cleanly and are hardened (exposure score <= 2.0)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from hq_server.core.settings import Settings
from hq_server.serving import RESERVED_FDS
from tests.peers import require_binary

UNITS = Path(__file__).resolve().parents[2] / "systemd"


@pytest.fixture
def installed_units(tmp_path: Path) -> Path:
    """The units as a station would install them, pointing at this checkout's venv."""
    venv = str(Path(sys.executable).parent.parent)
    for unit in UNITS.glob("*.service"):
        text = unit.read_text().replace("/opt/stationwatch/venv", venv)
        (tmp_path / unit.name).write_text(text)
    return tmp_path


@pytest.mark.parametrize("unit", ["stationwatch-agent.service", "stationwatch-hq.service"])
def test_unit_verifies_and_is_hardened(installed_units: Path, unit: str) -> None:
    tool = require_binary("systemd-analyze")
    path = str(installed_units / unit)
    verify = subprocess.run([tool, "verify", path], capture_output=True, text=True, check=False)
    assert verify.returncode == 0, verify.stderr
    assert verify.stderr.strip() == "", verify.stderr
    sec = subprocess.run(
        [tool, "security", "--offline=yes", "--threshold=20", path],
        capture_output=True,
        text=True,
        check=False,
    )
    score = re.search(r"Overall exposure level for \S+: (\d+\.\d)", sec.stdout)
    assert score, sec.stdout + sec.stderr
    assert float(score.group(1)) <= 2.0
    assert sec.returncode == 0


def test_agent_unit_has_the_promised_shape() -> None:
    text = (UNITS / "stationwatch-agent.service").read_text()
    for line in (
        "Type=notify",
        "Restart=on-failure",
        "DynamicUser=yes",
        "StateDirectory=",
        "ConfigurationDirectory=",
        "LoadCredential=",
        "SupplementaryGroups=dialout",
        "WatchdogSec=",
    ):
        assert line in text


def test_hq_unit_has_room_for_hqs_connections() -> None:
    text = (UNITS / "stationwatch-hq.service").read_text()
    match = re.search(r"^LimitNOFILE=(\d+)$", text, re.MULTILINE)
    assert match, "the HQ unit sets no LimitNOFILE (systemd's soft default is 1,024)"
    defaults = Settings()
    needed = defaults.max_connections + defaults.listen_backlog + RESERVED_FDS
    assert int(match.group(1)) >= needed
