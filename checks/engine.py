"""Grades one device: its profile's rules plus reachability, against the fault tracker."""

from __future__ import annotations

from collections.abc import Iterable

from checks.base import Finding
from checks.grading import Grade
from checks.rules import Rule
from checks.spec import CheckSpec
from checks.tracker import FaultChange, FaultTracker
from collectors.base import ReadingSet

UNREACHABLE = "unreachable"
UNREADABLE = "unreadable"
CONFIG_INVALID = "config_invalid"
REACHABILITY_CODES = frozenset({UNREACHABLE, UNREADABLE})


class DeviceGrader:
    """Turns a device's poll outcome (readings or an error) into fault changes."""

    def __init__(
        self,
        device_id: str,
        checks: list[CheckSpec],
        unreachable_grade: Grade = Grade.SEVERE,
        extra_codes: Iterable[str] = (),
    ) -> None:
        self.device_id = device_id
        self.rules = [Rule(c) for c in checks if c.enabled]
        self.unreachable_grade = unreachable_grade
        # Codes raised outside polling (traps, log patterns, config_changed): kept at restart.
        self.extra_codes = frozenset(extra_codes)

    @property
    def codes(self) -> set[str]:
        """Codes this grader may raise (its rules, reachability and the extra codes)."""
        return {r.code for r in self.rules} | REACHABILITY_CODES | self.extra_codes

    def on_readings(
        self, readings: ReadingSet, tracker: FaultTracker, now: float | None = None
    ) -> list[FaultChange]:
        """A successful poll: clear reachability faults and judge every rule."""
        state = tracker.view(self.device_id)
        findings = [
            Finding(code, "", False, self.unreachable_grade, "", "device answered again")
            for code in (UNREACHABLE, UNREADABLE)
            if state.is_active(code)
        ]
        for rule in self.rules:
            findings.extend(rule.evaluate(readings, state))
        return tracker.apply(self.device_id, findings, now)

    def on_error(
        self, code: str, message: str, tracker: FaultTracker, now: float | None = None
    ) -> list[FaultChange]:
        """A failed poll: raise unreachable or unreadable; other faults stay as they are."""
        assert code in REACHABILITY_CODES
        other = UNREADABLE if code == UNREACHABLE else UNREACHABLE
        title = "Device unreachable" if code == UNREACHABLE else "Device answers unreadable data"
        findings = [
            Finding(code, "", True, self.unreachable_grade, title, message),
            Finding(other, "", False, self.unreachable_grade, "", "superseded"),
        ]
        return tracker.apply(self.device_id, findings, now)

    def retire_unknown(self, tracker: FaultTracker, now: float | None = None) -> list[FaultChange]:
        """Clear faults of checks that no longer exist (profile or overrides changed)."""
        return tracker.clear_all(
            self.device_id, self.codes, "check removed from configuration", now
        )
