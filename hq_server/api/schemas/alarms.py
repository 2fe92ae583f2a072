"""Alarms as the API shows them: the current state, and the events of an alarm's history."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import Field

from hq_server.api.schemas.common import Out
from hq_server.store.models import Alarm


class AlarmOut(Out):
    """The current state of one fault condition at a site."""

    id: int
    site_id: int
    site: str
    fault_key: str
    device_id: str
    device_class: str
    code: str
    component: str
    grade: int
    title: str
    title_zh: str = Field(description="The title in Simplified Chinese; empty when unknown")
    active: bool
    flapping: bool
    first_raised_at: datetime
    last_change_at: datetime
    cleared_at: datetime | None
    raise_count: int

    @classmethod
    def of(cls, alarm: Alarm) -> AlarmOut:
        """From a stored alarm (with its site loaded)."""
        return cls(
            id=alarm.id,
            site_id=alarm.site_id,
            site=alarm.site.name,
            fault_key=alarm.fault_key,
            device_id=alarm.device_id,
            device_class=alarm.device_class,
            code=alarm.code,
            component=alarm.component,
            grade=alarm.grade,
            title=alarm.title,
            title_zh=alarm.title_zh,
            active=alarm.active,
            flapping=alarm.flapping,
            first_raised_at=alarm.first_raised_at,
            last_change_at=alarm.last_change_at,
            cleared_at=alarm.cleared_at,
            raise_count=alarm.raise_count,
        )


class AlarmEventOut(Out):
    """One event of an alarm's history, as its agent sent it."""

    event_id: UUID
    agent_id: int
    seq: int
    kind: str = Field(description="raise, update or clear")
    grade: int
    title: str
    detail: str
    values: dict[str, Any] = Field(description="The readings the agent saw")
    observed_at: datetime
    received_at: datetime
    applied: bool = Field(
        description="False when the event changed nothing (a repeat, or older than the alarm's "
        "state)"
    )
