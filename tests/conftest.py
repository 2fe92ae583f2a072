"""Shared fixtures; the real peers live in tests/peers.py."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


@pytest.fixture
def stationwatch_cmd() -> list[str]:
    """argv prefix that runs the installed `stationwatch` console command."""
    exe = VENV_BIN / "stationwatch"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "stationwatch"]


@pytest.fixture
def clean_env() -> Iterator[dict[str, str]]:
    """An environment for child processes without proxies (everything is on loopback)."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["PYTHONUNBUFFERED"] = "1"
    yield env
