"""Agent <-> HQ wire protocol (docs/architecture.md), versioned under /api/v1.

Both sides import these models; this module depends on pydantic only, so the agent never pulls
in server dependencies. Field changes must stay backward compatible within /api/v1.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

API_PREFIX = "/api/v1"
# Identifiers that end up in fault keys and URLs: short, printable, no separators of ours.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
_COMPONENT_MAX = 128

Ident = Annotated[str, Field(pattern=ID_PATTERN)]
GradeInt = Annotated[int, Field(ge=1, le=5)]
# Counters fit a signed 64-bit column on every store (SQLite INTEGER, PostgreSQL BIGINT).
Count = Annotated[int, Field(ge=0, le=2**63 - 1)]
# A heartbeat names at most this many devices (an agent config holds at most as many), and
# carries at most this many host figures: HQ keeps both, so both are bounded.
MAX_HEARTBEAT_DEVICES = 5000
MAX_HOST_FIGURES = 64

# NUL (which PostgreSQL text cannot hold) and surrogate code points (which have no UTF-8 form,
# so neither database nor JSON encoder takes them; they come from JSON escapes such as "\ud800"
# or from bytes decoded with surrogateescape).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def clean_text(value: str) -> str:
    """`value` with NUL and lone surrogates replaced by U+FFFD: storable everywhere, same length."""
    return _UNSTORABLE.sub(REPLACEMENT, value) if _UNSTORABLE.search(value) else value


def _clean_input(value: object) -> object:
    return clean_text(value) if isinstance(value, str) else value


def _clean_values(value: object) -> object:
    """Clean the keys and text of a values dict; a non-finite number becomes None (NaN and
    Infinity are no JSON: the agent's encoder writes null, and PostgreSQL refuses them)."""
    if not isinstance(value, dict):
        return value
    cleaned: dict[object, object] = {}
    for k, v in value.items():
        if isinstance(v, str):
            v = clean_text(v)
        elif isinstance(v, float) and not math.isfinite(v):
            v = None
        cleaned[clean_text(k) if isinstance(k, str) else k] = v
    return cleaned


# Text a device or a sender chose: cleaned rather than refused, the meaning survives.
CleanText = Annotated[str, BeforeValidator(_clean_input)]


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
    seq: int = Field(
        ge=1, le=2**63 - 1, description="Per-agent monotonically increasing sequence number"
    )
    kind: EventKind
    device_id: Ident
    device_class: CleanText = Field(max_length=32)
    code: Ident = Field(description="Fault code, e.g. off_air, power_drop, unreachable")
    component: str = Field(default="", max_length=_COMPONENT_MAX)
    grade: GradeInt
    title: CleanText = Field(max_length=200)
    detail: CleanText = Field(default="", max_length=2000)
    observed_at: datetime = Field(
        description="When the agent saw the change, with its UTC offset; HQ refuses one before "
        "2000-01-01 and stores one far ahead of its own clock with its receive time"
    )
    values: Annotated[
        dict[str, float | int | str | bool | None], BeforeValidator(_clean_values)
    ] = Field(default_factory=dict)

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
    """An event HQ refused for good (it will never accept it; the agent sets it aside)."""

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

    agent_version: str = Field(max_length=32)
    sent_at: datetime
    outbox_depth: Count
    dropped_events: Count
    last_seq: Count
    set_aside_events: Count = Field(
        default=0, description="Events HQ refused for good, kept aside in the agent's outbox"
    )
    devices: dict[Ident, DeviceState] = Field(
        default_factory=dict, max_length=MAX_HEARTBEAT_DEVICES
    )
    host: dict[Ident, float] = Field(
        default_factory=dict,
        max_length=MAX_HOST_FIGURES,
        description="Figures about the agent and its host (CPU, memory, suppressed traps...)",
    )


# Heartbeat fields added within v1: the agent leaves each out while it holds its default, and
# sends none of them to an HQ that refused one (an older HQ forbids fields it does not know).
HEARTBEAT_ADDED_IN_V1 = frozenset({"set_aside_events"})


class HeartbeatAck(_Wire):
    """HQ's answer to a heartbeat: its clock, so the agent can report skew."""

    server_time: datetime


# ---- Jobs: HQ asks, the agent runs items of its own catalogue only -------------------------


class JobKind(StrEnum):
    """What a job asks the agent to do; `item` names the catalogue entry."""

    RUN_CHECKLIST = "run_checklist"  # item: checklist name (e.g. routine_inspection)
    RUN_CHECK = "run_check"  # item: check code on device_id (e.g. vswr_high)
    BACKUP_CONFIG = "backup_config"  # item: "" ; device_id required
    POLL_DEVICE = "poll_device"  # item: "" ; device_id required
    RUN_ACTION = "run_action"  # item: action name (e.g. reboot); change actions need approval


class Approval(_Wire):
    """Written approval of a change action: who approved, the reference, the allowed window."""

    reference: str = Field(min_length=1, max_length=100)
    approved_by: str = Field(min_length=1, max_length=200)
    window_start: datetime
    window_end: datetime


ParamValue = str | int | float | bool


class Job(_Wire):
    """One unit of remote work for one agent."""

    job_id: UUID
    kind: JobKind
    item: str = Field(default="", max_length=64)
    device_id: str | None = Field(default=None, pattern=ID_PATTERN)
    params: dict[str, ParamValue] = Field(default_factory=dict)
    approval: Approval | None = None
    timeout_s: int = Field(default=300, ge=1, le=3600)
    created_at: datetime
    requested_by: str = Field(default="", max_length=200)


class JobPoll(_Wire):
    """HQ's answer to the agent's long poll: new jobs, and jobs to cancel."""

    jobs: list[Job] = Field(default_factory=list)
    cancel: list[UUID] = Field(default_factory=list)


class JobStatus(StrEnum):
    """How a job ended."""

    OK = "ok"  # ran; every item passed
    FAILED = "failed"  # ran; some item failed (see items)
    REFUSED = "refused"  # not run: outside the catalogue, or a change without valid approval
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    ERROR = "error"  # could not run (device unreachable, ...)


class JobItemResult(_Wire):
    """The outcome of one checklist item / check / action step."""

    name: str = Field(max_length=100)
    device_id: str | None = None
    category: str = Field(default="", max_length=32)  # software | hardware | environment
    passed: bool
    detail: str = Field(default="", max_length=2000)
    values: dict[str, float | int | str | bool | None] = Field(default_factory=dict)


class JobResult(_Wire):
    """What the agent reports when a job ends."""

    job_id: UUID
    status: JobStatus
    started_at: datetime
    finished_at: datetime
    summary: str = Field(default="", max_length=2000)
    items: list[JobItemResult] = Field(default_factory=list, max_length=2000)


# ---- Config backups --------------------------------------------------------------------


class ConfigBackup(_Wire):
    """A device configuration, scrubbed of secrets on the agent before upload."""

    device_id: Ident
    taken_at: datetime
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    text: str = Field(max_length=5_000_000)
    job_id: UUID | None = None


class BackupAck(_Wire):
    """HQ stored the backup as `version`; `changed` says whether it differs from the last one."""

    version: int
    changed: bool
