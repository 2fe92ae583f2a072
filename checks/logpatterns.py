"""Log-pattern checks: log lines in, findings out (graded faults with dedup).

A profile's `log_patterns` name a regex that raises a fault (its named group `component`, if
any, names the component) and optionally a regex that clears it or a quiet time after which it
clears (`clear_after_s`). Many matching lines in one batch make one finding that counts them;
a fault already raised is not raised again (the tracker sees the same grade), so a log that
repeats an error every second yields one fault, not a flood.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from checks.base import FaultState, Finding
from collectors.base import Reading
from collectors.profiles import Code, Regex
from protocol.grades import Grade

MAX_LINE_SHOWN = 400


class LogPattern(BaseModel):
    """A log line pattern raising a graded fault; `clear` lines end it (a profile's
    `log_patterns` entry)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: Code
    title: str = Field(min_length=1, max_length=200)
    title_zh: str = Field(default="", max_length=200)  # the title in Simplified Chinese
    pattern: Regex  # a named group `component` names the component
    grade: Grade
    clear: Regex | None = None  # a line that ends the condition
    clear_after_s: float | None = Field(default=None, gt=0)  # or: no matching line for this long


@dataclass(slots=True)
class _Hit:
    active: bool
    line: str
    count: int


class LogPatternChecker:
    """Judges one device's new log lines against its profile's log patterns."""

    def __init__(self, patterns: list[LogPattern]) -> None:
        self.patterns = patterns
        self._raise = [(p, re.compile(p.pattern)) for p in patterns]
        self._clear = [(p, re.compile(p.clear)) for p in patterns if p.clear]
        self._last_seen: dict[tuple[str, str], float] = {}
        self.lines_matched = 0

    @property
    def codes(self) -> set[str]:
        """Codes these patterns may raise."""
        return {p.code for p in self.patterns}

    def evaluate(
        self, lines: Iterable[Reading | str], state: FaultState, now: float | None = None
    ) -> list[Finding]:
        """Findings for a batch of new lines (plus quiet-time clears); see the module doc."""
        now = time.time() if now is None else now
        hits: dict[tuple[str, str], _Hit] = {}
        for item in lines:
            line = item if isinstance(item, str) else str(item.value)
            for pattern, rx in self._raise:
                m = rx.search(line)
                if m:
                    comp = _component(m)
                    key = (pattern.code, comp)
                    hit = hits.get(key)
                    count = hit.count + 1 if hit and hit.active else 1
                    hits[key] = _Hit(True, line, count)
                    self._last_seen[key] = now
                    self.lines_matched += 1
            for pattern, rx in self._clear:
                m = rx.search(line)
                if not m:
                    continue
                comp = _component(m)
                comps = [comp] if comp or "component" in rx.groupindex else [""]
                if not comp and "component" not in rx.groupindex:
                    comps += sorted(state.active_components(pattern.code))
                for c in comps:
                    hits[(pattern.code, c)] = _Hit(False, line, 0)
        findings = [self._finding(code, comp, hit) for (code, comp), hit in hits.items()]
        findings += self._quiet_clears(state, now, set(hits))
        return findings

    def _finding(self, code: str, component: str, hit: _Hit) -> Finding:
        pattern = next(p for p in self.patterns if p.code == code)
        shown = hit.line[:MAX_LINE_SHOWN]
        detail = f"{hit.count} matching line(s), last: {shown}" if hit.active else shown
        return Finding(
            code,
            component,
            hit.active,
            pattern.grade,
            pattern.title,
            detail,
            title_zh=pattern.title_zh,
        )

    def _quiet_clears(
        self, state: FaultState, now: float, judged: set[tuple[str, str]]
    ) -> list[Finding]:
        """Clear faults whose pattern has a quiet time and has not matched for that long."""
        out: list[Finding] = []
        for p in self.patterns:
            if p.clear_after_s is None:
                continue
            comps = state.active_components(p.code) | ({""} if state.is_active(p.code) else set())
            for comp in sorted(comps):
                key = (p.code, comp)
                if key in judged:
                    continue
                seen = self._last_seen.get(key)
                if seen is None or now - seen >= p.clear_after_s:
                    out.append(
                        Finding(
                            p.code,
                            comp,
                            False,
                            p.grade,
                            p.title,
                            f"no matching line for {p.clear_after_s:g} s",
                            title_zh=p.title_zh,
                        )
                    )
        return out


def _component(m: re.Match[str]) -> str:
    if "component" in m.re.groupindex:
        return (m.group("component") or "")[:64]
    return ""
