"""Declarative check definitions, as written in device profiles and site config overrides."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from protocol.grades import Grade


class When(BaseModel):
    """A guard: the check applies only while another metric has one of these values."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: str
    in_: list[str] = Field(alias="in", min_length=1)


class CheckSpec(BaseModel):
    """One rule turning a metric into a graded fault.

    kind "state": raise while the value is in `raise_in` (or, with `ok_in`, not in it); with
    `grade_map` the grade follows the value (e.g. CRITICAL -> 1, MAJOR -> 2), so a change of
    severity is an UPDATE of the same fault, not a new one.
    kind "threshold": raise when the value crosses `above`/`below`; clear only once it is back past
    `clear_above`/`clear_below` (hysteresis). With `relative_to`, thresholds are fractions of that
    metric's value (e.g. forward power below 0.5 x the power set-point is -3 dB).
    With `per_component`, the rule applies to every component of the metric (each port, each
    alarm row) and each gets its own fault; `components` restricts it to the named ones. With
    `all_components`, one fault is raised when every component matches (e.g. all trunks down).
    A `when` guard on a per-component rule reads the guard metric of the same component first.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    code: str = Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")
    title: str = Field(min_length=1, max_length=200)
    title_zh: str = Field(default="", max_length=200)  # the title in Simplified Chinese
    grade: Grade
    kind: str = Field(pattern="^(state|threshold)$")
    metric: str
    per_component: bool = False
    all_components: bool = False
    grade_map: dict[str, Grade] | None = None
    components: list[str] | None = None
    raise_in: list[str] | None = None
    ok_in: list[str] | None = None
    above: float | None = None
    below: float | None = None
    clear_above: float | None = None
    clear_below: float | None = None
    relative_to: str | None = None
    when: When | None = None
    enabled: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.per_component and self.all_components:
            raise ValueError("per_component and all_components exclude each other")
        if self.kind == "state":
            if (self.raise_in is None) == (self.ok_in is None):
                raise ValueError("a state check needs exactly one of raise_in or ok_in")
        else:
            if self.above is None and self.below is None:
                raise ValueError("a threshold check needs above or below")
            if self.clear_below is not None and self.above is None:
                raise ValueError("clear_below goes with above")
            if self.clear_above is not None and self.below is None:
                raise ValueError("clear_above goes with below")
            if (
                self.above is not None
                and self.clear_below is not None
                and (self.clear_below > self.above)
            ):
                raise ValueError("clear_below must not be greater than above")
            if (
                self.below is not None
                and self.clear_above is not None
                and (self.clear_above < self.below)
            ):
                raise ValueError("clear_above must not be less than below")
        return self


class CheckOverride(BaseModel):
    """Site config tweaks to a profile's check: disable it, regrade it, move its thresholds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str
    enabled: bool | None = None
    grade: Grade | None = None
    above: float | None = None
    below: float | None = None
    clear_above: float | None = None
    clear_below: float | None = None
    components: list[str] | None = None


def apply_overrides(checks: list[CheckSpec], overrides: list[CheckOverride]) -> list[CheckSpec]:
    """Return the profile's checks with the site's overrides applied (unknown codes are errors)."""
    by_code = {c.code: c for c in checks}
    for ov in overrides:
        if ov.code not in by_code:
            raise ValueError(f"no check {ov.code!r} in this profile (has: {', '.join(by_code)})")
        changes = ov.model_dump(exclude_none=True, exclude={"code"})
        merged = by_code[ov.code].model_dump(by_alias=True) | changes
        by_code[ov.code] = CheckSpec.model_validate(merged)
    return list(by_code.values())
