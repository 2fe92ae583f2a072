"""Jobs: remote work HQ asks of a site's agent, handed out by long poll, ended by its result.

Life of a job (JobState): queued -> dispatched -> done | cancelled | expired, with
dispatched -> cancel_requested -> cancelled when a user cancels work already handed out.

Dispatch is safe against double delivery: a job is claimed in one write transaction that moves
it from queued to dispatched. On PostgreSQL the claim selects with FOR UPDATE SKIP LOCKED, so two
agents (or two HQ replicas) polling at once lock disjoint rows; on SQLite the writer session opens
with BEGIN IMMEDIATE, so claims are serialized. A claimed job whose response never reaches the
agent simply expires (at most once: a change action is never handed out twice).

The agent is the final judge of what it runs (its catalogue, approvals and windows); HQ checks
what it can: shapes, roles, that an approval is attached by an admin and its window is sane.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import Session

from hq_server.access.auth import active_agent
from hq_server.core.changes import Topic
from hq_server.core.errors import HQError, NotFound, PermissionDenied
from hq_server.store.changes import mark
from hq_server.store.models import (
    FINISHED_STATES,
    HELD_STATES,
    Agent,
    JobItemRecord,
    JobRecord,
    JobState,
    Site,
)
from protocol.wire import (
    ID_PATTERN,
    Approval,
    Job,
    JobKind,
    JobPoll,
    JobResult,
    JobStatus,
    ParamValue,
)

logger = logging.getLogger(__name__)

# A dispatched job gets this long past its own timeout_s to report before it expires.
EXPIRY_GRACE = timedelta(seconds=60)
# A job no agent picked up in this long expires (the site was offline; ask again if still needed).
QUEUE_TTL = timedelta(hours=24)
# An approval window longer than this, or starting further ahead, is refused as not sane.
MAX_APPROVAL_WINDOW = timedelta(days=31)
MAX_APPROVAL_LEAD = timedelta(days=366)
MAX_JOBS_PER_POLL = 20
MAX_PARAMS = 50
MAX_PARAM_TEXT = 1000
_ITEM_RE = re.compile(ID_PATTERN)


class JobRequestInvalid(HQError):
    """The job asked for cannot be queued as given (answered 422)."""


class JobConflict(HQError):
    """The job is not in a state that allows this (answered 409)."""


def _no_nul(value: str, what: str) -> str:
    if "\x00" in value:
        raise ValueError(f"{what} must not contain NUL characters")
    return value


class NewJob(BaseModel):
    """What a user asks for; `approval` only with run_action, and only an admin may attach it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: JobKind
    item: str = Field(
        default="",
        max_length=64,
        description="Catalogue entry: checklist, check code or action name ('' for backups/polls)",
    )
    device_id: str | None = Field(default=None, pattern=ID_PATTERN)
    params: dict[str, ParamValue] = Field(default_factory=dict)
    timeout_s: int = Field(default=300, ge=1, le=3600)
    agent_id: int | None = Field(
        default=None,
        ge=1,
        le=2_147_483_647,
        description="Only this agent of the site may take the job (default: any)",
    )
    approval: Approval | None = None

    @field_validator("item")
    @classmethod
    def _item_shape(cls, v: str) -> str:
        if v and not _ITEM_RE.fullmatch(v):
            raise ValueError(f"item must match {ID_PATTERN} (or be empty)")
        return v

    @field_validator("params")
    @classmethod
    def _params_sane(cls, v: dict[str, ParamValue]) -> dict[str, ParamValue]:
        if len(v) > MAX_PARAMS:
            raise ValueError(f"at most {MAX_PARAMS} params")
        for key, value in v.items():
            if not _ITEM_RE.fullmatch(key):
                raise ValueError(f"param names must match {ID_PATTERN}")
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"param {key!r} is not a finite number")
            if isinstance(value, str):
                if len(value) > MAX_PARAM_TEXT:
                    raise ValueError(f"param {key!r} longer than {MAX_PARAM_TEXT} characters")
                _no_nul(value, f"param {key!r}")
        return v


def check_shape(kind: JobKind, item: str, device_id: str | None) -> None:
    """Raise JobRequestInvalid unless item/device_id fit the kind."""
    if kind in (JobKind.BACKUP_CONFIG, JobKind.POLL_DEVICE):
        if device_id is None:
            raise JobRequestInvalid(f"a {kind.value} job needs a device_id")
        if item:
            raise JobRequestInvalid(f"a {kind.value} job takes no item")
    elif kind is JobKind.RUN_CHECK:
        if not item or device_id is None:
            raise JobRequestInvalid("a run_check job needs an item (check code) and a device_id")
    elif not item:
        raise JobRequestInvalid(f"a {kind.value} job needs an item (catalogue name)")


def check_approval(approval: Approval, now: datetime) -> None:
    """Raise JobRequestInvalid unless the approval window is sane (the agent judges it again)."""
    start, end = approval.window_start, approval.window_end
    if start.tzinfo is None or end.tzinfo is None:
        raise JobRequestInvalid("approval window times need a timezone (e.g. Z or +08:00)")
    if end <= start:
        raise JobRequestInvalid("approval window_end must be after window_start")
    if end - start > MAX_APPROVAL_WINDOW:
        raise JobRequestInvalid(f"approval window longer than {MAX_APPROVAL_WINDOW.days} days")
    if end <= now:
        raise JobRequestInvalid("approval window is already over")
    if start - now > MAX_APPROVAL_LEAD:
        raise JobRequestInvalid("approval window starts more than a year ahead")
    for name, value in (("reference", approval.reference), ("approved_by", approval.approved_by)):
        if "\x00" in value:
            raise JobRequestInvalid(f"approval {name} must not contain NUL characters")


def create_job(
    session: Session,
    site_id: int,
    request: NewJob,
    *,
    requested_by: str,
    may_approve: bool,
    now: datetime,
) -> JobRecord:
    """Queue a job for a site after checking its shape, target agent and approval."""
    if session.get(Site, site_id) is None:
        raise NotFound(f"no site {site_id}")
    if request.approval is not None and not may_approve:
        raise PermissionDenied("only an admin may attach an approval to a job")
    check_shape(request.kind, request.item, request.device_id)
    if request.kind is JobKind.RUN_ACTION:
        # HQ cannot tell a read-only action from a change in the agent's catalogue: every action
        # needs an approval here (read-only work has its own kinds); the agent checks it again.
        if request.approval is None:
            raise JobRequestInvalid(
                "a run_action job needs an approval {reference, approved_by, window_start, "
                "window_end} attached by an admin"
            )
        check_approval(request.approval, now)
    elif request.approval is not None:
        raise JobRequestInvalid("an approval applies to run_action jobs only")
    if request.agent_id is not None:
        agent = session.get(Agent, request.agent_id)
        if agent is None or agent.site_id != site_id or agent.revoked_at is not None:
            raise JobRequestInvalid(f"agent {request.agent_id} is not an active agent of the site")
    return _insert(
        session,
        site_id=site_id,
        kind=request.kind,
        item=request.item,
        device_id=request.device_id,
        params=dict(request.params),
        timeout_s=request.timeout_s,
        agent_id=request.agent_id,
        approval=request.approval,
        requested_by=requested_by,
        now=now,
    )


def _insert(
    session: Session,
    *,
    site_id: int,
    kind: JobKind,
    item: str,
    device_id: str | None,
    params: dict[str, Any],
    timeout_s: int,
    requested_by: str,
    now: datetime,
    agent_id: int | None = None,
    approval: Approval | None = None,
    schedule_id: uuid.UUID | None = None,
    scheduled_for: datetime | None = None,
) -> JobRecord:
    row = JobRecord(
        id=uuid.uuid4(),
        site_id=site_id,
        agent_id=agent_id,
        kind=kind.value,
        item=item,
        device_id=device_id,
        params=params,
        approval_reference=approval.reference if approval else None,
        approval_by=approval.approved_by if approval else None,
        approval_window_start=approval.window_start if approval else None,
        approval_window_end=approval.window_end if approval else None,
        timeout_s=timeout_s,
        status=JobState.QUEUED.value,
        requested_by=requested_by[:200],
        schedule_id=schedule_id,
        scheduled_for=scheduled_for,
        created_at=now,
    )
    session.add(row)
    session.flush()
    logger.info(
        "site=%s job %s queued: %s %s device=%s by %s",
        site_id,
        row.id,
        kind.value,
        item,
        device_id,
        requested_by,
    )
    return row


def get_job(session: Session, job_id: uuid.UUID, *, for_update: bool = False) -> JobRecord:
    """The job, or NotFound."""
    row = session.get(JobRecord, job_id, with_for_update=for_update)
    if row is None:
        raise NotFound(f"no job {job_id}")
    return row


def cancel_job(session: Session, job_id: uuid.UUID, *, who: str, now: datetime) -> JobRecord:
    """Cancel a queued job at once; ask the agent to cancel a dispatched one (idempotent)."""
    row = get_job(session, job_id, for_update=True)
    state = JobState(row.status)
    if state is JobState.QUEUED:
        row.status = JobState.CANCELLED.value
        row.cancel_requested_at = now
        row.finished_at = now
        row.result = {"summary": f"cancelled by {who} before an agent took it"}
    elif state in (JobState.DISPATCHED, JobState.RUNNING):
        row.status = JobState.CANCEL_REQUESTED.value
        row.cancel_requested_at = now
    elif state is not JobState.CANCEL_REQUESTED:
        raise JobConflict(f"job {job_id} is {state.value}: nothing to cancel")
    session.flush()
    logger.info("site=%s job %s: cancel by %s -> %s", row.site_id, row.id, who, row.status)
    return row


def approval_of(row: JobRecord) -> Approval | None:
    """The approval stored with a job, if any."""
    if row.approval_reference is None:
        return None
    assert row.approval_by is not None
    assert row.approval_window_start is not None and row.approval_window_end is not None
    return Approval(
        reference=row.approval_reference,
        approved_by=row.approval_by,
        window_start=row.approval_window_start,
        window_end=row.approval_window_end,
    )


def to_wire(row: JobRecord) -> Job:
    """The job as the agent receives it."""
    return Job(
        job_id=row.id,
        kind=JobKind(row.kind),
        item=row.item,
        device_id=row.device_id,
        params=row.params,
        approval=approval_of(row),
        timeout_s=row.timeout_s,
        created_at=row.created_at,
        requested_by=row.requested_by,
    )


@dataclass(frozen=True, slots=True)
class AgentRef:
    """The agent polling (what the long poll needs of its principal)."""

    agent_id: int
    site_id: int


def _queued_for(agent: AgentRef) -> Any:
    return and_(
        JobRecord.site_id == agent.site_id,
        JobRecord.status == JobState.QUEUED.value,
        or_(JobRecord.agent_id.is_(None), JobRecord.agent_id == agent.agent_id),
    )


def _cancels_of(agent: AgentRef) -> Any:
    return and_(
        JobRecord.dispatched_agent_id == agent.agent_id,
        JobRecord.status == JobState.CANCEL_REQUESTED.value,
    )


def peek(session: Session, agent: AgentRef) -> tuple[bool, bool]:
    """(new work waits: a queued job or an undelivered cancel, any cancel pending); read only.

    One round trip on indexed columns: the long poll runs it about once a second per agent.
    """
    queued, fresh_cancel, any_cancel = session.execute(
        select(
            exists().where(_queued_for(agent)),
            exists().where(_cancels_of(agent), JobRecord.cancel_sent_at.is_(None)),
            exists().where(_cancels_of(agent)),
        )
    ).one()
    return bool(queued) or bool(fresh_cancel), bool(any_cancel)


def take_work(
    session: Session, agent: AgentRef, now: datetime, limit: int = MAX_JOBS_PER_POLL
) -> tuple[JobPoll, bool]:
    """Claim queued jobs for the agent and list its pending cancels; (poll, anything new).

    Call in a writer session's transaction: on PostgreSQL the rows are locked with SKIP LOCKED,
    so concurrent pollers claim disjoint jobs; on SQLite the writer holds the write lock.
    AuthError if the agent was revoked since its long poll began (its row is held shared until
    the jobs are claimed, so a revocation either comes first or waits).
    """
    active_agent(session, agent.agent_id, lock=True)
    claim = (
        select(JobRecord)
        .where(_queued_for(agent))
        .order_by(JobRecord.created_at, JobRecord.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    jobs = list(session.scalars(claim))
    for row in jobs:
        row.status = JobState.DISPATCHED.value
        row.dispatched_agent_id = agent.agent_id
        row.dispatched_at = now
        row.deadline_at = now + timedelta(seconds=row.timeout_s)
    cancels = list(
        session.scalars(select(JobRecord).where(_cancels_of(agent)).order_by(JobRecord.id))
    )
    fresh = bool(jobs)
    for row in cancels:
        if row.cancel_sent_at is None:
            row.cancel_sent_at = now
            fresh = True
    session.flush()
    for row in jobs:
        logger.info("site=%s job %s dispatched to agent %s", row.site_id, row.id, agent.agent_id)
    return JobPoll(jobs=[to_wire(r) for r in jobs], cancel=[r.id for r in cancels]), fresh


def _finite(values: dict[str, Any]) -> dict[str, Any]:
    """Non-finite floats (NaN, inf) become null: JSON (and PostgreSQL) has no such numbers."""
    return {
        k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in values.items()
    }


def _text(value: str) -> str:
    """Agent-reported free text, with NULs (which PostgreSQL text cannot hold) replaced."""
    return value.replace("\x00", "\ufffd")


def store_result(
    session: Session, agent: AgentRef, job_id: uuid.UUID, result: JobResult, now: datetime
) -> tuple[JobRecord, bool]:
    """Record the agent's result of a job it was given; (job, True if it was already known).

    Idempotent: the first result of a job wins, later posts get the stored job back. A refused
    job is stored like any other result (status done, result_status refused, the reason in
    the summary). A result arriving after the job expired is still stored (marked late).
    """
    if result.job_id != job_id:
        raise JobRequestInvalid("job_id in the body differs from the job in the path")
    row = session.get(JobRecord, job_id, with_for_update=True)
    if row is None or row.site_id != agent.site_id:
        raise NotFound(f"no job {job_id} for this site")
    if row.dispatched_agent_id != agent.agent_id:
        raise PermissionDenied(f"job {job_id} was not dispatched to this agent")
    if row.result_status is not None:
        return row, True
    for item in result.items:
        if item.device_id is not None and not _ITEM_RE.fullmatch(item.device_id):
            raise JobRequestInvalid(f"item {item.name!r}: device_id must match {ID_PATTERN}")
    late = JobState(row.status) in FINISHED_STATES
    row.status = (
        JobState.CANCELLED.value if result.status is JobStatus.CANCELLED else JobState.DONE.value
    )
    row.result_status = result.status.value
    row.finished_at = now
    row.result = {
        "summary": _text(result.summary),
        "started_at": result.started_at.isoformat(),
        "finished_at": result.finished_at.isoformat(),
        "items": len(result.items),
        "failed_items": sum(1 for i in result.items if not i.passed),
        "late": late,
    }
    session.add_all(
        JobItemRecord(
            job_id=row.id,
            site_id=row.site_id,
            position=position,
            device_id=item.device_id or row.device_id,
            name=_text(item.name),
            category=_text(item.category),
            passed=item.passed,
            detail=_text(item.detail),
            values=_finite(item.values),
            at=now,
        )
        for position, item in enumerate(result.items)
    )
    session.flush()
    logger.info(
        "site=%s job %s: result %s from agent %s%s",
        row.site_id,
        row.id,
        result.status.value,
        agent.agent_id,
        " (late)" if late else "",
    )
    mark(session, Topic.JOBS, str(row.id))
    return row, False


def release_agent_jobs(
    session: Session, agent_id: int, now: datetime, why: str, *, successor: int | None = None
) -> int:
    """The jobs of an agent that is revoked or replaced (`why`), so that none goes to it: the
    queued ones meant for it go to its `successor`, or are cancelled without one; the ones it
    holds are cancelled (it can no longer report a result). How many changed."""
    queued = (JobRecord.agent_id == agent_id, JobRecord.status == JobState.QUEUED.value)
    if successor is not None:
        retargeted = _rowcount(
            session.execute(
                update(JobRecord)
                .where(*queued)
                .values(agent_id=successor)
                .execution_options(synchronize_session=False)
            )
        )
    else:
        retargeted = 0
    rows = list(
        session.scalars(
            select(JobRecord)
            .where(
                or_(
                    and_(*queued),
                    and_(
                        JobRecord.dispatched_agent_id == agent_id,
                        JobRecord.status.in_([s.value for s in HELD_STATES]),
                    ),
                )
            )
            .with_for_update()
        )
    )
    for row in rows:
        row.status = JobState.CANCELLED.value
        row.finished_at = now
        row.cancel_requested_at = row.cancel_requested_at or now
        row.result = {**(row.result or {}), "summary": f"cancelled: agent {agent_id} {why}"}
    session.flush()
    if rows or retargeted:
        logger.info(
            "agent %s %s: %d jobs cancelled, %d queued jobs moved to agent %s",
            agent_id,
            why,
            len(rows),
            retargeted,
            successor,
        )
    return len(rows) + retargeted


def expire_jobs(
    session: Session,
    now: datetime,
    *,
    grace: timedelta = EXPIRY_GRACE,
    queue_ttl: timedelta = QUEUE_TTL,
) -> int:
    """Expire overdue jobs; returns how many changed. Idempotent; call it periodically.

    A dispatched job with no result by its deadline (dispatched_at + timeout_s) + `grace`
    becomes expired; a cancel_requested one becomes cancelled; a job still queued after
    `queue_ttl` (no agent of the site polled) becomes expired.
    """
    overdue = now - grace
    changed = 0
    for states, new_state in (
        ((JobState.DISPATCHED, JobState.RUNNING), JobState.EXPIRED),
        ((JobState.CANCEL_REQUESTED,), JobState.CANCELLED),
    ):
        changed += _rowcount(
            session.execute(
                update(JobRecord)
                .where(
                    JobRecord.status.in_([s.value for s in states]),
                    JobRecord.deadline_at < overdue,
                )
                .values(status=new_state.value, finished_at=now)
                .execution_options(synchronize_session=False)
            )
        )
    changed += _rowcount(
        session.execute(
            update(JobRecord)
            .where(
                JobRecord.status == JobState.QUEUED.value,
                JobRecord.created_at < now - queue_ttl,
            )
            .values(status=JobState.EXPIRED.value, finished_at=now)
            .execution_options(synchronize_session=False)
        )
    )
    if changed:
        logger.info("expired %d overdue jobs", changed)
    return changed


def _rowcount(result: Any) -> int:
    count = getattr(result, "rowcount", 0)
    return int(count) if count and count > 0 else 0


def is_held(row: JobRecord) -> bool:
    """True while the job is with an agent."""
    return JobState(row.status) in HELD_STATES


class JobNotifier:
    """Wakes long polls of a site in this process when a job or cancel for it is created.

    Other HQ replicas notice through the database (the long poll re-checks it every second).
    notify() may be called from any thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[int, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}

    def subscribe(self, site_id: int) -> tuple[asyncio.AbstractEventLoop, asyncio.Event]:
        """A new event set on the next notify(site_id); call from the event loop."""
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters.setdefault(site_id, set()).add(waiter)
        return waiter

    def unsubscribe(
        self, site_id: int, waiter: tuple[asyncio.AbstractEventLoop, asyncio.Event]
    ) -> None:
        """Forget a waiter."""
        with self._lock:
            waiters = self._waiters.get(site_id)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[site_id]

    def waiting(self, site_id: int) -> int:
        """How many long polls of the site wait in this process (for tests and diagnostics)."""
        with self._lock:
            return len(self._waiters.get(site_id, ()))

    def notify(self, site_id: int) -> None:
        """Wake every long poll of the site waiting in this process."""
        with self._lock:
            waiters = list(self._waiters.get(site_id, ()))
        for loop, event in waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # the loop has closed
                continue


NOTIFIER = JobNotifier()
