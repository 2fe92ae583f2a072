"""State and threshold rules built from CheckSpec (profiles and site overrides)."""

from __future__ import annotations

from checks.base import FaultState, Finding
from checks.spec import CheckSpec
from collectors.base import ReadingSet, Value
from protocol.grades import Grade


def _number(v: Value) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int | float):
        return float(v)
    try:
        return float(v)
    except ValueError:
        return None


def _fmt(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:.0f}"


class Rule:
    """One CheckSpec made executable."""

    def __init__(self, spec: CheckSpec) -> None:
        self.spec = spec
        self.code = spec.code

    def evaluate(self, readings: ReadingSet, state: FaultState) -> list[Finding]:
        """Judge the readings; see checks.base for the contract."""
        spec = self.spec
        if spec.all_components:
            return self._all_components(readings)
        if not spec.per_component:
            f = self._judge(readings, "", state.is_active(spec.code))
            return [] if f is None else [f]
        if not readings.has(spec.metric, ""):
            return []  # the table was not read this poll: nothing to say about its rows
        wanted = set(spec.components) if spec.components is not None else None
        present = [c for c in readings.components(spec.metric) if wanted is None or c in wanted]
        findings = [
            f
            for c in present
            if (f := self._judge(readings, c, state.is_active(spec.code, c))) is not None
        ]
        # A row that vanished from a table that was read (an alarm gone from the alarm list)
        # is a cleared condition, not an unknown one.
        for gone in sorted(state.active_components(spec.code) - set(present)):
            findings.append(
                Finding(
                    spec.code,
                    gone,
                    False,
                    spec.grade,
                    spec.title,
                    "no longer reported",
                    title_zh=spec.title_zh,
                )
            )
        return findings

    def _all_components(self, readings: ReadingSet) -> list[Finding]:
        spec = self.spec
        if not readings.has(spec.metric, ""):
            return []
        rows = readings.components(spec.metric)
        values = [str(readings.get(spec.metric, c)) for c in rows]
        active = bool(rows) and all(self._state_matches(v) for v in values)
        detail = f"{len(rows)} of {len(rows)} {spec.metric} {values[0]}" if active else ""
        return [
            Finding(spec.code, "", active, spec.grade, spec.title, detail, title_zh=spec.title_zh)
        ]

    def _guard_open(self, readings: ReadingSet, component: str) -> bool | None:
        when = self.spec.when
        if when is None:
            return True
        comp = component if readings.has(when.metric, component) else ""
        value = readings.get(when.metric, comp)
        if value is None:
            return None
        return str(value) in when.in_

    def _state_matches(self, value: str) -> bool:
        spec = self.spec
        if spec.raise_in is not None:
            return value in spec.raise_in
        assert spec.ok_in is not None
        return value not in spec.ok_in

    def _judge(self, readings: ReadingSet, component: str, was_active: bool) -> Finding | None:
        spec = self.spec
        value = readings.get(spec.metric, component)
        if value is None:
            return None
        guard = self._guard_open(readings, component)
        if guard is None:
            return None
        if not guard:
            return Finding(
                spec.code,
                component,
                False,
                spec.grade,
                spec.title,
                "not applicable now",
                title_zh=spec.title_zh,
            )
        if spec.kind == "state":
            text = str(value)
            active = self._state_matches(text)
            grade = spec.grade
            if spec.grade_map and text in spec.grade_map:
                grade = Grade(spec.grade_map[text])
            return Finding(
                spec.code,
                component,
                active,
                grade,
                spec.title,
                f"{spec.metric} is {text}",
                {spec.metric: value},
                spec.title_zh,
            )
        return self._threshold(readings, component, value, was_active)

    def _threshold(
        self, readings: ReadingSet, component: str, value: Value, was_active: bool
    ) -> Finding | None:
        spec = self.spec
        x = _number(value)
        if x is None:
            return None
        factor = 1.0
        values: dict[str, Value] = {spec.metric: value}
        if spec.relative_to:
            ref = _number(
                readings.get(spec.relative_to, component) or readings.get(spec.relative_to)
            )
            if ref is None or ref <= 0:
                return None  # a ratio of nothing means nothing
            factor = ref
            values[spec.relative_to] = ref
        active = False
        reasons: list[str] = []
        if spec.above is not None:
            limit = spec.above * factor
            release = (spec.clear_below if spec.clear_below is not None else spec.above) * factor
            hit = x > release if was_active and spec.clear_below is not None else x >= limit
            if hit:
                active = True
                reasons.append(f"{spec.metric} {_fmt(x)} >= {_fmt(limit)}")
        if spec.below is not None:
            limit = spec.below * factor
            release = (spec.clear_above if spec.clear_above is not None else spec.below) * factor
            hit = x < release if was_active and spec.clear_above is not None else x <= limit
            if hit:
                active = True
                reasons.append(f"{spec.metric} {_fmt(x)} <= {_fmt(limit)}")
        if spec.relative_to and reasons:
            reasons.append(f"({spec.relative_to} {_fmt(factor)})")
        detail = " ".join(reasons) if reasons else f"{spec.metric} {_fmt(x)} within limits"
        return Finding(
            spec.code, component, active, spec.grade, spec.title, detail, values, spec.title_zh
        )
