"""Grades one device: its profile's rules plus reachability, against the fault tracker."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from checks.base import Finding
from checks.rules import Rule
from checks.spec import CheckSpec
from checks.tracker import FaultChange, FaultTracker
from collectors.base import ReadingSet
from protocol import faults
from protocol.faults import PROFILE_MISMATCH, UNREACHABLE, UNREADABLE
from protocol.grades import Grade

REACHABILITY_CODES = frozenset({UNREACHABLE, UNREADABLE})


class DeviceGrader:
    """Turns a device's poll outcome (readings or an error) into fault changes."""

    def __init__(
        self,
        device_id: str,
        checks: list[CheckSpec],
        unreachable_grade: Grade = Grade.SEVERE,
        extra_codes: Iterable[str] = (),
        key_metrics: Mapping[str, bool] | None = None,
        profile_name: str = "",
    ) -> None:
        self.device_id = device_id
        self.rules = [Rule(c) for c in checks if c.enabled]
        self.unreachable_grade = unreachable_grade
        # Codes raised outside polling (traps, log patterns, config_changed): kept at restart.
        self.extra_codes = frozenset(extra_codes)
        # The profile's key readings (metric -> read per table row): a poll yielding none of
        # them means the device is not the model its profile describes.
        self.key_metrics = dict(key_metrics or {})
        self.profile_name = profile_name

    @property
    def codes(self) -> set[str]:
        """Codes this grader may raise (its rules, reachability and the extra codes)."""
        mismatch = {PROFILE_MISMATCH} if self.key_metrics else set()
        return {r.code for r in self.rules} | REACHABILITY_CODES | self.extra_codes | mismatch

    def mismatch(self, readings: ReadingSet) -> Finding | None:
        """The profile_mismatch finding for a poll (raised when no key reading came back)."""
        if not self.key_metrics:
            return None
        yielded = [
            m
            for m, per_row in self.key_metrics.items()
            if (readings.components(m) if per_row else readings.get(m) is not None)
        ]
        if yielded:
            return Finding(PROFILE_MISMATCH, "", False, Grade.MINOR, "", "key readings back")
        keys = ", ".join(self.key_metrics)
        return Finding(
            PROFILE_MISMATCH,
            "",
            True,
            Grade.MINOR,
            faults.title(PROFILE_MISMATCH),
            f"profile {self.profile_name or '?'} read none of: {keys}; the device is probably "
            "another model: check its profile (a device without one is identified by probing)",
            title_zh=faults.title_zh(PROFILE_MISMATCH),
        )

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
        if (mismatch := self.mismatch(readings)) is not None:
            findings.append(mismatch)
        return tracker.apply(self.device_id, findings, now)

    def on_error(
        self, code: str, message: str, tracker: FaultTracker, now: float | None = None
    ) -> list[FaultChange]:
        """A failed poll: raise unreachable or unreadable; other faults stay as they are."""
        assert code in REACHABILITY_CODES
        other = UNREADABLE if code == UNREACHABLE else UNREACHABLE
        findings = [
            Finding(
                code,
                "",
                True,
                self.unreachable_grade,
                faults.title(code),
                message,
                title_zh=faults.title_zh(code),
            ),
            Finding(other, "", False, self.unreachable_grade, "", "superseded"),
        ]
        return tracker.apply(self.device_id, findings, now)

    def retire_unknown(self, tracker: FaultTracker, now: float | None = None) -> list[FaultChange]:
        """Clear faults of checks that no longer exist (profile or overrides changed)."""
        return tracker.clear_all(
            self.device_id, self.codes, "check removed from configuration", now
        )
