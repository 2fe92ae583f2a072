"""Issue 11, item 4 with real processes: poisoned events in an agent's outbox next to a grade-1
event, a real agent and a real HQ on PostgreSQL and on SQLite.

Before: one NUL in an event made HQ on PostgreSQL refuse the whole batch, the agent sent the same
batch forever and the grade-1 event in it never became a ticket; an event year 1 at +14:00 was a
500; an outbox event the agent could not read stopped its uploads. Now the grade-1 event has its
ticket, the NUL is cleaned and stored, the refused events are set aside (logged once, counted in
`agent status`), and events recorded later keep flowing.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.outbox import Outbox
from checks.tracker import FaultChange
from protocol.grades import Grade
from protocol.wire import EventKind
from tests.e2e.conftest import Hq, outbox_depth, write_site
from tests.hq.conftest import pg_schema
from tests.outbox_rows import put_raw
from tests.procs import Procs

pytestmark = pytest.mark.e2e

OBSERVED = 1_772_000_000.0  # 2026-02-25, in HQ's past


@pytest.fixture(params=["sqlite", "postgresql"])
def hq_db(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None for HQ's own SQLite file, or the URL of a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield None
        return
    with pg_schema("e2e") as url:
        yield url


def record(state: Path, changes: list[FaultChange]) -> list[str]:
    """Record fault changes into the agent's outbox (as its poll loop would)."""
    box = Outbox(state / "outbox.sqlite", {"tx1": "transmitter"})
    try:
        return [str(e.event_id) for e in box.record(changes, {})]
    finally:
        box.close()


def body(code: str, grade: int, title: str, observed_at: str) -> dict[str, Any]:
    return {
        "kind": "raise",
        "device_id": "tx1",
        "device_class": "transmitter",
        "code": code,
        "component": "",
        "grade": grade,
        "title": title,
        "detail": "",
        "observed_at": observed_at,
        "values": {},
    }


def change(code: str, grade: int) -> FaultChange:
    return FaultChange(EventKind.RAISE, "tx1", code, "", Grade(grade), code, "", OBSERVED)


def test_poisoned_events_are_set_aside_and_the_station_keeps_reporting(
    procs: Procs,
    stationwatch_cmd: list[str],
    clean_env: dict[str, str],
    tmp_path: Path,
    hq_db: str | None,
) -> None:
    sw = stationwatch_cmd
    hq = Hq(procs, sw, clean_env, tmp_path / "hq", db_url=hq_db)
    try:
        hq.start()
        site = write_site(tmp_path / "agent", hq.url)
        state = tmp_path / "agent" / "state"
        subprocess.run(
            [*sw, "agent", "enroll", "--config", str(site), "--token", hq.enroll_token()],
            check=True,
            capture_output=True,
            env=clean_env,
            timeout=60,
        )
        [off_air] = record(state, [change("off_air", 1)])
        # What an older agent wrote: a NUL in the title (JSON "\u0000"), a time of year 1 at
        # +14:00, and a body this agent cannot read at all (another version's field).
        outbox = state / "outbox.sqlite"
        nul = put_raw(outbox, 100, 3, body("fan_fail", 3, "fan\x00 1", "2026-02-25T06:00:00Z"))
        year_one = put_raw(outbox, 101, 2, body("clock", 2, "clock", "0001-01-01T00:00:00+14:00"))
        newer = put_raw(
            outbox,
            102,
            3,
            body("temp_high", 3, "t", "2026-02-25T06:00:00Z") | {"colour": "crimson"},
        )
        assert "\\u0000" in json.dumps(body("x", 3, "fan\x00 1", ""))
        assert outbox_depth(state) == 4

        procs.start("agent", [*sw, "agent", "run", "--config", str(site)])
        procs.wait_for(
            "the grade-1 ticket",
            lambda: any(t["fault_key"] == "tx1:off_air" for t in hq.tickets(grade=1)),
            60,
        )
        procs.wait_for("an empty outbox", lambda: outbox_depth(state) == 0, 60)

        stored = {
            str(uuid.UUID(str(event_id))): title
            for event_id, title in hq.query("SELECT event_id, title FROM events")
        }
        assert stored == {off_air: "off_air", nul: "fan\ufffd 1"}
        tickets = {t["fault_key"]: t for t in hq.tickets()}
        assert tickets["tx1:fan_fail"]["title"].endswith("fan\ufffd 1")

        # Events recorded afterwards are delivered: the queue is not stuck.
        later = record(state, [change("vswr_high", 2), change("power_drop", 2)])
        procs.wait_for(
            "the later events at HQ",
            lambda: (
                {str(uuid.UUID(str(r[0]))) for r in hq.query("SELECT event_id FROM events")}
                >= set(later)
            ),
            60,
        )

        status = subprocess.run(
            [*sw, "agent", "status", "--config", str(site)],
            check=True,
            capture_output=True,
            text=True,
            env=clean_env,
            timeout=60,
        ).stdout
        assert "set aside: 2 event(s)" in status, status
        assert year_one in status and newer in status
        assert "cannot be expressed in UTC" in status
    finally:
        procs.stop_all()
        hq.api.close()
    log = (tmp_path / "agent.log").read_text()
    for event_id in (year_one, newer):
        lines = [ln for ln in log.splitlines() if event_id in ln]
        assert len(lines) == 1 and "ERROR" in lines[0], lines
    assert "set aside" in log and "crimson" not in log  # reasons never echo the input
