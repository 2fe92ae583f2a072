"""Agent <-> HQ wire protocol (DESIGN.md section 4), versioned under /api/v1.

Both sides import these models; this module depends on pydantic only, so the agent never pulls
in server dependencies. Field changes must stay backward compatible within /api/v1.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

API_PREFIX = "/api/v1"
# Identifiers that end up in fault keys and URLs: short, printable, no separators of ours.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
_COMPONENT_MAX = 128

Ident = Annotated[str, Field(pattern=ID_PATTERN)]
GradeInt = Annotated[int, Field(ge=1, le=5)]


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EventKind(StrEnum):
    """What happened to a fault: it appeared, its grade changed, or it went away."""

    RAISE = "raise"
    UPDATE = "update"
    CLEAR = "clear"


def fault_key(device_id: str, code: str, component: str = "") -> str:
    """The stable key of one fault condition on a device (site is added by HQ)."""
    return f"{device_id}:{code}:{component}" if component else f"{device_id}:{code}"


class FaultEvent(_Wire):
    """One change of one fault condition, as graded by the agent's checks."""

    event_id: UUID
    seq: int = Field(ge=1, description="Per-agent monotonically increasing sequence number")
    kind: EventKind
    device_id: Ident
    device_class: str = Field(max_length=32)
    code: Ident = Field(description="Fault code, e.g. off_air, power_drop, unreachable")
    component: str = Field(default="", max_length=_COMPONENT_MAX)
    grade: GradeInt
    title: str = Field(max_length=200)
    detail: str = Field(default="", max_length=2000)
    observed_at: datetime
    values: dict[str, float | int | str | bool | None] = Field(default_factory=dict)

    @property
    def fault_key(self) -> str:
        """The key HQ deduplicates on, together with the site."""
        return fault_key(self.device_id, self.code, self.component)

    @field_validator("component")
    @classmethod
    def _component_printable(cls, v: str) -> str:
        if v and not re.fullmatch(r"[\x20-\x7e]+", v):
            raise ValueError("component must be printable ASCII")
        return v


class EventBatch(_Wire):
    """A batch of events the agent uploads (gzip on the wire)."""

    events: list[FaultEvent] = Field(max_length=5000)


class RejectedEvent(_Wire):
    """An event HQ refused for good (it will never accept it; the agent drops it and logs)."""

    event_id: UUID
    reason: str


class BatchAck(_Wire):
    """HQ's answer to a batch: what it has stored (new or already known) and what it refused."""

    stored: list[UUID]
    rejected: list[RejectedEvent] = Field(default_factory=list)


class EnrollRequest(_Wire):
    """The agent trades a one-time enrollment token for its own token."""

    enrollment_token: str = Field(min_length=16, max_length=200)
    hostname: str = Field(max_length=253)
    agent_version: str = Field(max_length=32)


class EnrollResponse(_Wire):
    """A new agent's identity; agent_token is shown once and stored hashed by HQ."""

    agent_id: int
    site_id: int
    site_name: str
    agent_token: str


class DeviceState(StrEnum):
    """Reachability of a device as the agent last saw it."""

    OK = "ok"
    UNREACHABLE = "unreachable"
    UNREADABLE = "unreadable"
    DISABLED = "disabled"
    UNKNOWN = "unknown"


class Heartbeat(_Wire):
    """Sent at least every 60 s; HQ raises "site unreachable" when they stop."""

    agent_version: str
    sent_at: datetime
    outbox_depth: int = Field(ge=0)
    dropped_events: int = Field(ge=0)
    last_seq: int = Field(ge=0)
    devices: dict[str, DeviceState] = Field(default_factory=dict)
    host: dict[str, float] = Field(default_factory=dict)


class HeartbeatAck(_Wire):
    """HQ's answer to a heartbeat: its clock, so the agent can report skew."""

    server_time: datetime
