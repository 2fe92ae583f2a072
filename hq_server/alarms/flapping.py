"""Flap detection, after Icinga: the percent of state changes over an alarm's last N states.

Every fresh event of an alarm adds its state (1 raised, 0 cleared) to a short log. The alarm
starts flapping when the changes reach `high` percent of the possible changes, and stops when
they fall below `low` (hysteresis, so it does not flap about flapping). Unlike Icinga the
states are not weighted by age: the window is short and the rule stays easy to explain.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise


@dataclass(frozen=True, slots=True)
class FlapState:
    """An alarm's state log after one more state, and whether it is flapping."""

    log: str
    percent: float
    flapping: bool


def percent_change(log: str) -> float:
    """Changes between consecutive states, as a percent of the possible changes."""
    if len(log) < 2:
        return 0.0
    changes = sum(1 for a, b in pairwise(log) if a != b)
    return 100.0 * changes / (len(log) - 1)


def observe(
    log: str, active: bool, flapping: bool, *, window: int, high: float, low: float
) -> FlapState:
    """Add one state to the log and decide flapping with hysteresis."""
    log = (log + ("1" if active else "0"))[-window:]
    percent = percent_change(log)
    # Judge only a full window: three quick changes at the start are not a pattern yet.
    if len(log) < window:
        return FlapState(log, percent, flapping)
    if not flapping and percent >= high:
        flapping = True
    elif flapping and percent < low:
        flapping = False
    return FlapState(log, percent, flapping)
