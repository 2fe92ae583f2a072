"""The fault grade scheme, shared by the agent's checks and HQ's SLA clocks."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Grade(IntEnum):
    """Fault grade: 1 is the most severe (service interrupted), 5 a request."""

    MAJOR = 1
    SEVERE = 2
    GENERAL = 3
    MINOR = 4
    REQUEST = 5


@dataclass(frozen=True, slots=True)
class GradePolicy:
    """Response targets for a grade; None means no deadline."""

    grade: Grade
    meaning: str
    ack_minutes: int | None
    restore_minutes: int | None
    clock: str  # "24x7" or "business"


DEFAULT_POLICIES: dict[Grade, GradePolicy] = {
    Grade.MAJOR: GradePolicy(Grade.MAJOR, "major system fault", 10, 4 * 60, "24x7"),
    Grade.SEVERE: GradePolicy(Grade.SEVERE, "severe fault", 30, 24 * 60, "24x7"),
    Grade.GENERAL: GradePolicy(Grade.GENERAL, "general fault", 2 * 60, 72 * 60, "business"),
    Grade.MINOR: GradePolicy(Grade.MINOR, "minor fault", 8 * 60, None, "business"),
    Grade.REQUEST: GradePolicy(Grade.REQUEST, "request", None, None, "business"),
}

# Other schemes in use map onto ours; "D" (scheduled maintenance) is not a fault.
SCHEME_ALIASES: dict[str, Grade] = {
    "A": Grade.MAJOR,
    "B": Grade.SEVERE,
    "C": Grade.GENERAL,
    "C-1": Grade.MAJOR,
    "C-2": Grade.SEVERE,
    "C-3": Grade.GENERAL,
}


def parse_grade(value: int | str) -> Grade:
    """Turn 1..5, "1".."5" or a foreign grade name (A, B, C, C-1..C-3) into a Grade."""
    if isinstance(value, int) and not isinstance(value, bool):
        return Grade(value)
    text = str(value).strip().upper()
    if text.isdigit():
        return Grade(int(text))
    if text in SCHEME_ALIASES:
        return SCHEME_ALIASES[text]
    raise ValueError(f"unknown grade {value!r}: expected 1..5, A, B, C or C-1..C-3")
