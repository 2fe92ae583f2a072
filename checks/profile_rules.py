"""The grading sections of a device profile: its `checks`, the grade and title of its `traps`,
its `log_patterns` and its `unreachable_grade`.

collectors.profiles reads what a device profile says about reading the device and keeps these
sections as written; `GradedProfile` is the same profile with them parsed and validated too (a
check on a metric the profile does not read, a trap raising a per-component check's code, ...),
with the same errors naming the file and the field. The agent and `agent poll` load profiles
through here; collectors alone (identification, the collectors' tests) need not.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Self

from pydantic import Field, model_validator

from checks.logpatterns import LogPattern
from checks.spec import CheckSpec
from checks.traps import TrapRule
from collectors.profiles import PROFILE_DIR, Profile, ProfileError
from collectors.profiles import load_profile as _load_profile
from collectors.profiles import load_profiles as _load_profiles
from protocol.faults import CONFIG_CHANGED
from protocol.grades import Grade

__all__ = ["GradedProfile", "ProfileError", "builtin_profiles", "load_profile", "load_profiles"]


class GradedProfile(Profile):
    """A device profile with its grading sections parsed: what the agent polls and grades."""

    unreachable_grade: Grade = Grade.SEVERE
    checks: list[CheckSpec] = Field(default_factory=list)
    traps: Sequence[TrapRule] = Field(default_factory=list)
    log_patterns: list[LogPattern] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rules_fit(self) -> Self:
        per_component = {c.code for c in self.checks if c.per_component}
        for code in sorted({t.code for t in self.traps} | {p.code for p in self.log_patterns}):
            if code in per_component:
                raise ValueError(
                    f"{code!r} is a per-component check; a trap or log pattern raising it would "
                    "be cleared by the next poll when its component is not a polled row: give "
                    "it a code of its own"
                )
        metrics = self.metrics()
        for check in self.checks:
            for needed in (
                check.metric,
                check.relative_to,
                check.when.metric if check.when else None,
            ):
                if needed and needed not in metrics:
                    raise ValueError(f"check {check.code!r} uses unknown metric {needed!r}")
        return self

    def event_codes(self) -> set[str]:
        """Fault codes raised outside polling: traps, log patterns, configuration changes."""
        codes = {t.code for t in self.traps} | {p.code for p in self.log_patterns}
        if self.backup is not None:
            codes.add(CONFIG_CHANGED)
        return codes


def load_profile(path: Path) -> GradedProfile:
    """Load and validate one profile file, its grading sections included."""
    return _load_profile(path, GradedProfile)


def load_profiles(directory: Path) -> dict[str, GradedProfile]:
    """Load every profile of a directory, grading sections included."""
    return _load_profiles(directory, GradedProfile)


@cache
def builtin_profiles() -> dict[str, GradedProfile]:
    """All profiles shipped in collectors/profiles, by name, grading sections included."""
    return load_profiles(PROFILE_DIR)
