"""The check interface: readings in, findings out.

A check never does I/O. `evaluate` looks at one poll's readings (and at which faults are active
now, for hysteresis) and returns a `Finding` for every condition it could judge: active or not.
A condition it could not judge (metric not read) yields no finding, so its fault stays as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from collectors.base import ReadingSet, Value
from protocol.grades import Grade


@dataclass(frozen=True, slots=True)
class Finding:
    """The judged state of one fault condition on one device (component "" = the device)."""

    code: str
    component: str
    active: bool
    grade: Grade
    title: str
    detail: str = ""
    values: dict[str, Value] = field(default_factory=dict)
    title_zh: str = ""  # the title in Simplified Chinese, when the profile gives one


class FaultState(Protocol):
    """What a check may know about faults active right now on the device it judges."""

    def is_active(self, code: str, component: str = "") -> bool:
        """Whether this fault is raised now."""
        ...

    def active_components(self, code: str) -> set[str]:
        """Components with this fault raised now."""
        ...


class Check(Protocol):
    """A rule that judges readings."""

    code: str

    def evaluate(self, readings: ReadingSet, state: FaultState) -> list[Finding]:
        """Judge one poll's readings."""
        ...
