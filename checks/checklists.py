"""Inspection checklists: named lists of items, judged against fresh readings.

A checklist is data (one YAML file each in checks/checklists/); the agent runs only the
checklists it ships or is configured with, never a list sent by HQ.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from collectors.base import ReadingSet

CHECKLIST_DIR = Path(__file__).with_name("checklists")


class ChecklistItem(BaseModel):
    """One thing an inspection looks at, on every device it applies to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")
    title: str
    category: Literal["software", "hardware", "environment"]
    kind: Literal["reachable", "no_faults", "metric", "metric_ratio", "host"]
    device_class: str | None = None
    profile: str | None = None
    metric: str | None = None
    relative_to: str | None = None
    min: float | None = None
    max: float | None = None
    max_grade: int = Field(default=3, ge=1, le=5)

    def applies_to(self, device_class: str, profile: str) -> bool:
        """Whether this (device) item applies to a device."""
        if self.kind == "host":
            return False
        if self.device_class and self.device_class != device_class:
            return False
        return not (self.profile and self.profile != profile)

    def judge_value(self, readings: ReadingSet) -> tuple[bool | None, str]:
        """Judge a metric item: (passed or None when not measurable, detail)."""
        assert self.metric
        raw = readings.get(self.metric)
        if not isinstance(raw, int | float) or isinstance(raw, bool):
            return None, f"{self.metric} not read"
        value = float(raw)
        shown = f"{self.metric} = {value:g}"
        if self.kind == "metric_ratio":
            assert self.relative_to
            ref = readings.get(self.relative_to)
            if not isinstance(ref, int | float) or ref <= 0:
                return None, f"{self.relative_to} not read"
            value = value / float(ref)
            shown = f"{self.metric} / {self.relative_to} = {value:.2f}"
        return self.within(value), shown

    def within(self, value: float) -> bool:
        """Whether a value is inside [min, max]."""
        return not (
            (self.min is not None and value < self.min)
            or (self.max is not None and value > self.max)
        )


class Checklist(BaseModel):
    """A named inspection."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")
    title: str
    items: list[ChecklistItem] = Field(min_length=1)


@cache
def builtin_checklists() -> dict[str, Checklist]:
    """The checklists shipped with StationWatch, by name."""
    found: dict[str, Checklist] = {}
    for path in sorted(CHECKLIST_DIR.glob("*.yaml")):
        try:
            cl = Checklist.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
        except (yaml.YAMLError, ValidationError) as exc:
            raise ValueError(f"{path}: invalid checklist: {exc}") from None
        found[cl.name] = cl
    return found
