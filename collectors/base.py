"""The collector interface: a device goes in, Readings come out.

A collector owns the protocol conversation with one device. It returns a list of `Reading`s
(metric values, states, log lines, config text), each timestamped and named after the profile's
metric. It never grades anything and never talks to HQ. Failures are raised as the errors in
`collectors.errors` so the poller can turn them into "device unreachable/unreadable" faults.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

Value = float | int | str | bool | None
ReadingKind = Literal["metric", "state", "log", "config"]


@dataclass(frozen=True, slots=True)
class Reading:
    """One observation of one metric on one device (and optionally one component, e.g. a port)."""

    device: str
    metric: str
    value: Value
    component: str = ""
    unit: str = ""
    kind: ReadingKind = "metric"
    ts: float = field(default_factory=time.time)


class Collector(Protocol):
    """Talks to one device; `collect` returns its readings or raises a CollectorError."""

    device_id: str

    async def collect(self) -> list[Reading]:
        """Poll the device once and return what it reported."""
        ...

    async def close(self) -> None:
        """Release connections; the collector may be reused after close."""
        ...


class ReadingSet:
    """Readings of one poll, indexed by (metric, component) for the checks."""

    def __init__(self, readings: list[Reading]) -> None:
        self._by_key: dict[tuple[str, str], Reading] = {
            (r.metric, r.component): r for r in readings
        }

    def get(self, metric: str, component: str = "") -> Value:
        """The value of a metric (for a component), or None when it was not read."""
        r = self._by_key.get((metric, component))
        return None if r is None else r.value

    def has(self, metric: str, component: str = "") -> bool:
        """Whether the metric was read this poll."""
        return (metric, component) in self._by_key

    def components(self, metric: str) -> list[str]:
        """All components that reported a metric (e.g. every port name for a port metric).

        A per-row metric also reports its row count under component "" so that "zero rows"
        (no active alarms) can be told apart from "not read"; that row is not a component.
        """
        return sorted(c for (m, c) in self._by_key if m == metric and c)

    def __iter__(self) -> Iterator[Reading]:
        return iter(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)
