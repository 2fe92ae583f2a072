"""Fixtures of the console's in-process tests: the real app on SQLite and PostgreSQL (the
fixtures of tests/hq), driven like a browser by tests/web/console.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hq_server.core.clock import ManualClock
from tests.hq.conftest import HQ, start_hq
from tests.hq.conftest import clock as clock
from tests.hq.conftest import db_url as db_url
from tests.hq.conftest import migrated_url as migrated_url
from tests.web.console import Console


@pytest.fixture
def hq(migrated_url: str, clock: ManualClock, tmp_path: Path) -> Iterator[HQ]:
    """The HQ app on a migrated database, started and driven by TestClient."""
    with start_hq(migrated_url, clock, tmp_path) as started:
        yield started


@pytest.fixture
def console(hq: HQ) -> Console:
    """A browser with no session yet."""
    return Console(hq)


@pytest.fixture(scope="module")
def stack_env() -> dict[str, str]:
    """Extra environment (STATIONWATCH_* settings) of the browser tests' HQ process
    (tests/web/test_browser.py's `stack`); a module may override it."""
    return {}
