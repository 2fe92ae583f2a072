"""Event ingest: store each event once, apply it to its alarm, pass transitions to ticket policy.

`receive` is the service the API calls with an agent's batch: it screens the batch
(hq_server.alarms.intake), then runs `ingest_batch` in a transaction of its own, and runs that
transaction again from the start (up to `max_batch_retries` attempts) when a concurrent one got
in the way (a deadlock or serialization failure, SQLite's "database is locked", a ticket
opened meanwhile for the same fingerprint).

Exactly-once in effect (docs/architecture.md): events are idempotent on event_id; a batch is
applied in seq order inside one transaction. The batch is worked in memory and written in bulk:
one query for known events, one for the alarms, one for their tickets, then one INSERT of the
events and the ticket book's bulk writes of alarms, tickets, timers and history
(hq_server.tickets.book).
Work on one fingerprint (site, fault_key) is serialized: on PostgreSQL by transaction-scoped
advisory locks taken up front in a fixed order (so concurrent batches never deadlock on each
other), on SQLite by the writer's BEGIN IMMEDIATE. What each event does to its alarm is decided
by hq_server.alarms.rules.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from hq_server.access.auth import AgentPrincipal, active_agent
from hq_server.alarms import intake
from hq_server.alarms.flapping import observe
from hq_server.alarms.rules import AlarmView, Decision, aware, decide
from hq_server.core.changes import Topic
from hq_server.core.clock import Clock
from hq_server.core.domain import TicketAction, agent_actor
from hq_server.core.settings import Settings
from hq_server.store import rows as rows_of
from hq_server.store.changes import mark
from hq_server.store.db import Database, is_retryable
from hq_server.store.models import Agent, Alarm, Event
from hq_server.tickets.book import TicketBook
from hq_server.tickets.policy import DEFAULT_POLICY, AlarmTransition, TicketPolicy, TransitionKind
from hq_server.tickets.records import ConcurrentTicket
from protocol.wire import BatchAck, EventBatch, EventKind, FaultEvent, RejectedEvent

logger = logging.getLogger(__name__)

# First keys of the two-int advisory locks on fingerprints ("SWAL") and event ids ("SWEV").
_FINGERPRINT_LOCK_SPACE = 0x5357_414C
_EVENT_LOCK_SPACE = 0x5357_4556


class RetryBatch(Exception):
    """The batch met a concurrent transaction; its transaction must be run again."""


@dataclass(slots=True)
class _Stored:
    """An event to store (and whether it changed its alarm)."""

    event: FaultEvent
    observed_at: datetime  # aware UTC
    applied: bool


@dataclass(slots=True)
class IngestResult:
    """The outcome of one batch: the ack (event ids in seq order) plus counters for logs/tests."""

    stored: list[UUID] = field(default_factory=list)
    rejected: list[RejectedEvent] = field(default_factory=list)
    new: int = 0
    duplicates: int = 0
    stale: int = 0
    transitions: int = 0
    tickets_opened: int = 0

    def ack(self) -> BatchAck:
        """The BatchAck answering the agent."""
        return BatchAck(stored=self.stored, rejected=self.rejected)


def _lock_key(text_key: str) -> int:
    return int.from_bytes(hashlib.sha256(text_key.encode()).digest()[:4], "big", signed=True)


def lock_batch(
    session: Session, site_id: int, fault_keys: Collection[str], event_ids: Collection[UUID]
) -> None:
    """Serialize work on these fingerprints and event ids across transactions (PostgreSQL;
    SQLite has one writer at a time). Holding the event ids' locks, the check for known events
    is exact, so the events need no INSERT ... ON CONFLICT ... RETURNING (3-4 times slower)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    pairs = sorted(
        {(_FINGERPRINT_LOCK_SPACE, _lock_key(f"{site_id}\0{k}")) for k in fault_keys}
        | {(_EVENT_LOCK_SPACE, _lock_key(str(e))) for e in event_ids}
    )
    # One round trip; unnest yields the pairs in array order, so they are locked in sorted
    # order (fingerprints, then events) by every transaction: no deadlock between batches.
    session.execute(
        text(
            "SELECT pg_advisory_xact_lock(s, k) "
            "FROM unnest(CAST(:spaces AS integer[]), CAST(:keys AS integer[])) AS t(s, k)"
        ),
        {"spaces": [space for space, _ in pairs], "keys": [key for _, key in pairs]},
    )


def receive(
    db: Database, clock: Clock, settings: Settings, agent: AgentPrincipal, batch: intake.EventBatch
) -> BatchAck:
    """Screen an agent's batch, then store and apply the events fit to ingest in a transaction of
    its own, run again from the start when a concurrent transaction got in the way (see the
    module doc); the ack lists the events refused by the screening and by ingest. Raises
    intake.UnanswerableEvent for a batch HQ cannot answer, AuthError if the agent was revoked."""
    screened = intake.screen(batch, clock.now(), settings.event_max_ahead, agent=agent.agent_id)
    policy = TicketPolicy.of(settings)
    attempts = settings.max_batch_retries
    for attempt in range(1, attempts + 1):
        try:
            with db.writer() as session, session.begin():
                row = active_agent(session, agent.agent_id)
                result = ingest_batch(session, row, screened.batch, clock.now(), policy)
            return BatchAck(stored=result.stored, rejected=[*screened.rejected, *result.rejected])
        except (DBAPIError, RetryBatch, ConcurrentTicket) as exc:
            if attempt == attempts or not _retryable(exc):
                raise
            logger.warning(
                "agent=%s site=%s: batch attempt %d/%d failed (%s), retrying",
                agent.agent_id,
                agent.site_id,
                attempt,
                attempts,
                type(exc.orig if isinstance(exc, DBAPIError) else exc).__name__,
            )
    raise AssertionError("unreachable")


def _retryable(exc: Exception) -> bool:
    return isinstance(exc, (RetryBatch, ConcurrentTicket)) or is_retryable(exc)


def ingest_batch(
    session: Session,
    agent: Agent,
    batch: EventBatch,
    now: datetime,
    policy: TicketPolicy = DEFAULT_POLICY,
) -> IngestResult:
    """Store and apply a batch from `agent` in the session's transaction (the caller commits).

    Raises RetryBatch when a concurrent transaction got in the way (the caller rolls back and
    runs the batch again)."""
    result = IngestResult()
    unique: dict[UUID, FaultEvent] = {}
    for ev in batch.events:
        unique.setdefault(ev.event_id, ev)
    observed = {e.event_id: aware(e.observed_at) for e in unique.values()}
    events = sorted(unique.values(), key=lambda e: (e.seq, observed[e.event_id]))
    if not events:
        return result

    fault_keys = {e.fault_key for e in events}
    lock_batch(session, agent.site_id, fault_keys, unique.keys())
    known: dict[UUID, int] = {
        event_id: owner
        for event_id, owner in session.execute(
            select(Event.event_id, Event.agent_id).where(Event.event_id.in_(list(unique)))
        )
    }
    site = agent.site
    alarms = {
        a.fault_key: a
        for a in rows_of.load(
            session,
            Alarm,
            Alarm.site_id == site.id,
            Alarm.fault_key.in_(fault_keys),
            site=site,
        )
    }
    book = TicketBook(session, now, policy)
    book.preload(site, fault_keys)
    who = agent_actor(agent.id)
    to_store: list[_Stored] = []
    for ev in events:
        owner = known.get(ev.event_id)
        if owner is not None:
            _acknowledge_known(result, ev, owner, agent)
            continue
        alarm = alarms.get(ev.fault_key)
        decision = decide(_view(alarm), ev, agent.id)
        to_store.append(_Stored(ev, observed[ev.event_id], decision.transition is not None))
        result.new += 1
        result.stored.append(ev.event_id)
        if decision.stale:
            result.stale += 1
            continue
        old_grade = alarm.grade if alarm is not None else None
        alarm = _apply(agent, alarm, ev, observed[ev.event_id], decision)
        if alarm is None:
            continue
        alarms[ev.fault_key] = alarm
        book.alarm_changed(alarm)
        _observe_flapping(book, alarm, ev, who, policy)
        if decision.transition is None:
            continue
        result.transitions += 1
        book.apply(AlarmTransition(decision.transition, alarm, old_grade, who))

    _store(session, agent, to_store, now)
    book.settle()
    result.tickets_opened = book.opened
    max_seq = max(e.seq for e in events)
    session.execute(
        update(Agent)
        .where(Agent.id == agent.id, Agent.last_seq < max_seq)
        .values(last_seq=max_seq)
        .execution_options(synchronize_session=False)
    )
    agent.last_seen_at = now
    session.flush()
    if result.transitions:  # watchers (the console) hear of it once the batch commits
        mark(session, Topic.ALARMS, agent.site_id)
        mark(session, Topic.TICKETS)
    mark(session, Topic.SITES, agent.site_id)
    logger.info(
        "agent=%s site=%s batch: %d new, %d duplicate, %d stale, %d rejected, %d transitions, "
        "%d tickets opened",
        agent.id,
        agent.site_id,
        result.new,
        result.duplicates,
        result.stale,
        len(result.rejected),
        result.transitions,
        result.tickets_opened,
    )
    return result


def _acknowledge_known(result: IngestResult, ev: FaultEvent, owner: int, agent: Agent) -> None:
    if owner == agent.id:
        result.duplicates += 1
        result.stored.append(ev.event_id)
        return
    logger.warning(
        "agent=%s site=%s: event %s already stored for agent %s, rejected",
        agent.id,
        agent.site_id,
        ev.event_id,
        owner,
    )
    result.rejected.append(
        RejectedEvent(event_id=ev.event_id, reason="event_id already used by another agent")
    )


def _view(alarm: Alarm | None) -> AlarmView | None:
    if alarm is None:
        return None
    return AlarmView(
        active=alarm.active,
        grade=alarm.grade,
        last_agent_id=alarm.last_agent_id,
        last_event_seq=alarm.last_event_seq,
        last_change_at=alarm.last_change_at,
    )


def _store(session: Session, agent: Agent, stored: list[_Stored], now: datetime) -> None:
    """Insert the new events with one executemany."""
    if not stored:
        return
    rows = [
        (
            s.event.event_id,
            agent.id,
            agent.site_id,
            s.event.seq,
            s.event.kind.value,
            s.event.fault_key,
            s.event.device_id,
            s.event.device_class,
            s.event.code,
            s.event.component,
            s.event.grade,
            s.event.title,
            s.event.detail,
            s.observed_at,
            now,
            dict(s.event.values),
            s.applied,
        )
        for s in stored
    ]
    try:
        # No event of the batch can have been stored since the check for known ones: SQLite
        # has one writer at a time, PostgreSQL holds the event ids' locks (lock_batch).
        rows_of.insert_rows(session, rows_of.table_of(Event), _EVENT_COLUMNS, rows)
    except IntegrityError as exc:
        # Defence in depth: should another path ever store events, run the batch again.
        raise RetryBatch(f"an event of the batch was stored meanwhile: {exc.orig}") from exc


_EVENT_COLUMNS = (
    "event_id",
    "agent_id",
    "site_id",
    "seq",
    "kind",
    "fault_key",
    "device_id",
    "device_class",
    "code",
    "component",
    "grade",
    "title",
    "detail",
    "observed_at",
    "received_at",
    "values",
    "applied",
)


def _apply(
    agent: Agent, alarm: Alarm | None, ev: FaultEvent, observed: datetime, decision: Decision
) -> Alarm | None:
    """Change the (detached) alarm as decided, creating it on a first RAISE; returns it."""
    kind = decision.transition
    if alarm is None:
        if kind is not TransitionKind.RAISED:
            return None  # a CLEAR for a fault HQ never saw raised: stored, nothing to change
        values = {
            "site_id": agent.site_id,
            "site": agent.site,
            "fault_key": ev.fault_key,
            "device_id": ev.device_id,
            "device_class": ev.device_class,
            "code": ev.code,
            "component": ev.component,
            "grade": ev.grade,
            "title": ev.title,
            "active": True,
            "first_raised_at": observed,
            "last_change_at": observed,
            "cleared_at": None,
            "raise_count": 1,
            "last_agent_id": agent.id,
            "last_event_seq": ev.seq,
            "flapping": False,
            "state_log": "",
        }
        return rows_of.detached(Alarm, values)  # inserted by the book (rows.insert_new)

    # Bookkeeping for staleness moves on with every fresh event, even one that changes nothing.
    rows_of.put(alarm, last_agent_id=agent.id, last_event_seq=ev.seq)
    if kind is None:
        return alarm
    if kind is TransitionKind.CLEARED:
        rows_of.put(alarm, last_change_at=observed, active=False, cleared_at=observed)
        return alarm
    if kind is TransitionKind.RAISED:
        rows_of.put(alarm, active=True, cleared_at=None, raise_count=alarm.raise_count + 1)
    rows_of.put(
        alarm,
        last_change_at=observed,
        grade=ev.grade,
        title=ev.title,
        device_class=ev.device_class,
    )
    return alarm


def _observe_flapping(
    book: TicketBook, alarm: Alarm, ev: FaultEvent, who: str, policy: TicketPolicy
) -> None:
    """Log the alarm's state and mark it flapping (or not); note the change on its ticket."""
    state = observe(
        alarm.state_log,
        ev.kind is not EventKind.CLEAR,
        alarm.flapping,
        window=policy.flap_window,
        high=policy.flap_high,
        low=policy.flap_low,
    )
    rows_of.put(alarm, state_log=state.log)
    if state.flapping == alarm.flapping:
        return
    rows_of.put(alarm, flapping=state.flapping)
    logger.info(
        "site=%s fault=%s: flapping %s (%.0f%% state change)",
        alarm.site_id,
        alarm.fault_key,
        "started" if state.flapping else "stopped",
        state.percent,
    )
    ticket = book.open_ticket(alarm.site_id, alarm.fault_key)
    if ticket is not None:
        what = TicketAction.FLAPPING_STARTED if state.flapping else TicketAction.FLAPPING_STOPPED
        book.note(
            ticket,
            who,
            what,
            f"alarm {'is' if state.flapping else 'stopped'} flapping "
            f"({state.percent:.0f}% state change over the last {len(state.log)} states)",
            percent=round(state.percent, 1),
        )
