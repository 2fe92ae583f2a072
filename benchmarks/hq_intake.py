"""HQ's reading of an event batch before ingest: one batch validated as a whole (as HQ did
until issue 11, with FaultEvent as it was then and as it is now, cleaning text) against the
envelope plus each event on its own (hq_server.alarms.intake), in process.

The end-to-end figures of `hq_ingest` move by a third from run to run on a shared 2-core
machine; this measures only the part issue 11 changed, on the same 500-event batches
`hq_ingest` sends (its mixed workload), as CPU time of this process, alternating the two ways
so that both see the same load.

    .venv/bin/python -m benchmarks.hq_intake [--batches 40] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from benchmarks.hq_ingest import mixed_stream
from benchmarks.hq_procs import loadavg, machine, median
from hq_server.alarms import intake
from protocol.wire import EventBatch, EventKind, GradeInt, Ident


class _EventBefore(BaseModel):
    """protocol.wire.FaultEvent as it was before issue 11: no cleaning of text."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: UUID
    seq: int = Field(ge=1, le=2**63 - 1)
    kind: EventKind
    device_id: Ident
    device_class: str = Field(max_length=32)
    code: Ident
    component: str = Field(default="", max_length=128)
    grade: GradeInt
    title: str = Field(max_length=200)
    detail: str = Field(default="", max_length=2000)
    observed_at: datetime
    values: dict[str, float | int | str | bool | None] = Field(default_factory=dict)


class _BatchBefore(BaseModel):
    events: list[_EventBefore] = Field(max_length=5000)


def _before(body: Any, now: datetime) -> int:
    return len(_BatchBefore.model_validate(body).events)


def _whole(body: Any, now: datetime) -> int:
    return len(EventBatch.model_validate(body).events)


def _per_event(body: Any, now: datetime) -> int:
    screened = intake.screen(intake.EventBatch.model_validate(body), now, timedelta(minutes=5))
    return len(screened.batch.events)


def _cpu_us_per_event(
    way: Callable[[Any, datetime], int], bodies: list[bytes], now: datetime
) -> float:
    started = time.process_time()
    events = 0
    for raw in bodies:
        events += way(json.loads(raw), now)  # FastAPI reads the body with json.loads too
    return (time.process_time() - started) / events * 1e6


def main() -> None:
    """Print µs of CPU per event for both ways (median of the rounds)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40, help="500-event batches per round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    start = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    stream = mixed_stream("bench", 500 * args.batches, seed=1, start=start)
    bodies = [json.dumps({"events": b}).encode() for b in stream.batches()]
    now = start + timedelta(days=1)
    before: list[float] = []
    whole: list[float] = []
    per_event: list[float] = []
    load_before = loadavg()
    for _ in range(args.rounds):
        before.append(_cpu_us_per_event(_before, bodies, now))
        whole.append(_cpu_us_per_event(_whole, bodies, now))
        per_event.append(_cpu_us_per_event(_per_event, bodies, now))
    print(f"machine: {machine()}")
    print(f"{args.rounds} rounds of {args.batches} batches of 500 events; load {load_before}")
    print("| reading a batch | µs CPU per event (median) | min | max |")
    print("|---|---:|---:|---:|")
    rows = (
        ("as a whole, FaultEvent before issue 11", before),
        ("as a whole, FaultEvent cleaning text", whole),
        ("per event (hq_server.alarms.intake, now)", per_event),
    )
    for label, values in rows:
        print(f"| {label} | {median(values):.1f} | {min(values):.1f} | {max(values):.1f} |")


if __name__ == "__main__":
    main()
