"""Turns findings into RAISE / UPDATE / CLEAR changes against the set of active faults.

The tracker is the agent's memory of which faults are raised. It is plain data so the agent can
persist it in the same transaction as the events it produced (agent.outbox), which is what keeps
HQ and the agent in agreement across restarts.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from checks.base import Finding
from collectors.base import Value
from protocol.grades import Grade
from protocol.wire import EventKind, fault_key


@dataclass(frozen=True, slots=True)
class ActiveFault:
    """A fault raised and not yet cleared."""

    device_id: str
    code: str
    component: str
    grade: Grade
    title: str
    since: float
    title_zh: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for persistence."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ActiveFault:
        """Inverse of to_dict."""
        return cls(
            d["device_id"],
            d["code"],
            d["component"],
            Grade(d["grade"]),
            d["title"],
            d["since"],
            d.get("title_zh", ""),  # not recorded by agents before title_zh
        )


@dataclass(frozen=True, slots=True)
class FaultChange:
    """One change of a fault, before it becomes a wire event (no seq/event_id yet)."""

    kind: EventKind
    device_id: str
    code: str
    component: str
    grade: Grade
    title: str
    detail: str
    observed_at: float
    values: dict[str, Value] = field(default_factory=dict)
    title_zh: str = ""

    @property
    def key(self) -> str:
        """The fault key (device:code[:component])."""
        return fault_key(self.device_id, self.code, self.component)


class DeviceFaults:
    """FaultState view of one device's active faults (for checks' hysteresis)."""

    def __init__(self, tracker: FaultTracker, device_id: str) -> None:
        self._tracker = tracker
        self._device = device_id

    def is_active(self, code: str, component: str = "") -> bool:
        """Whether this fault is raised now."""
        return fault_key(self._device, code, component) in self._tracker.active

    def active_components(self, code: str) -> set[str]:
        """Components with this fault raised now."""
        return {
            f.component
            for f in self._tracker.active.values()
            if f.device_id == self._device and f.code == code and f.component
        }


class FaultTracker:
    """Active faults by key; `apply` returns the changes a set of findings implies."""

    def __init__(self, active: dict[str, ActiveFault] | None = None) -> None:
        self.active: dict[str, ActiveFault] = dict(active or {})

    def view(self, device_id: str) -> DeviceFaults:
        """The FaultState of one device."""
        return DeviceFaults(self, device_id)

    def apply(
        self, device_id: str, findings: list[Finding], now: float | None = None
    ) -> list[FaultChange]:
        """Update the active set from findings and return the resulting changes."""
        now = time.time() if now is None else now
        changes: list[FaultChange] = []
        for f in findings:
            key = fault_key(device_id, f.code, f.component)
            current = self.active.get(key)
            if f.active and current is None:
                kind: EventKind | None = EventKind.RAISE
            elif f.active and current is not None and current.grade != f.grade:
                kind = EventKind.UPDATE
            elif not f.active and current is not None:
                kind = EventKind.CLEAR
            else:
                kind = None
            if kind is None:
                continue
            if kind is EventKind.CLEAR:
                del self.active[key]
                grade, title, title_zh = (
                    current.grade if current else f.grade,
                    current.title if current else f.title,
                    current.title_zh if current else f.title_zh,
                )
            else:
                since = current.since if current else now
                self.active[key] = ActiveFault(
                    device_id, f.code, f.component, f.grade, f.title, since, f.title_zh
                )
                grade, title, title_zh = f.grade, f.title, f.title_zh
            changes.append(
                FaultChange(
                    kind,
                    device_id,
                    f.code,
                    f.component,
                    grade,
                    title,
                    f.detail,
                    now,
                    f.values,
                    title_zh,
                )
            )
        return changes

    def clear_all(
        self, device_id: str, keep: set[str], reason: str, now: float | None = None
    ) -> list[FaultChange]:
        """Clear every active fault of a device whose code is not in `keep` (check removed)."""
        findings = [
            Finding(f.code, f.component, False, f.grade, f.title, reason, title_zh=f.title_zh)
            for f in self.active.values()
            if f.device_id == device_id and f.code not in keep
        ]
        return self.apply(device_id, findings, now)
