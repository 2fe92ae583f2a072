"""Grading SNMP traps: the trap receiver (collectors.traps) reports which fault a trap raises
or clears; the profile's trap rules here give it its grade and title.

A clear carries the grade of the rule that raises the same code, so the tracker sees the fault
it ends as it was raised.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import ConfigDict, Field

from checks.base import Finding
from collectors.profiles import TrapSpec
from collectors.traps import TrapEvent
from protocol.grades import Grade


class TrapRule(TrapSpec):
    """A profile's `traps` entry with its grading: the fault's grade and title."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str = ""
    title_zh: str = Field(default="", max_length=200)  # the title in Simplified Chinese
    grade: Grade = Grade.GENERAL


class TrapJudge:
    """Turns the traps of the agent's devices into findings, by each device's trap rules."""

    def __init__(self, rules: Mapping[str, Sequence[TrapRule]]) -> None:
        """`rules`: each device id's trap rules (its profile's `traps`)."""
        self._by_oid = {dev: {r.oid: r for r in rs} for dev, rs in rules.items()}
        self._raising = {
            dev: {r.code: r for r in rs if r.action == "raise"} for dev, rs in rules.items()
        }

    def finding(self, trap: TrapEvent) -> Finding:
        """The finding a received trap implies for its device."""
        own = self._by_oid.get(trap.device_id, {}).get(trap.trap_oid)
        rule = self._raising.get(trap.device_id, {}).get(trap.code, own)
        return Finding(
            trap.code,
            trap.component,
            trap.raised,
            rule.grade if rule is not None else Grade.GENERAL,
            (rule.title if rule is not None else "") or trap.code.replace("_", " "),
            f"SNMP trap {trap.trap_oid} from {trap.source}",
            dict(trap.values),
            rule.title_zh if rule is not None else "",
        )
