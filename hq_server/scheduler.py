"""HQ's scheduler loop: one step every few seconds, run by exactly one HQ process.

A step, in order: release ended maintenance windows, check heartbeats (dead man's switch),
fire due escalation timers, page again for unacknowledged tickets, send due digests, raise
alarms about undelivered pages, send due notifications. Besides the steps, a delivery loop
sends notifications the moment a transaction that queued them commits (the outbox's bell,
hq_server.tickets.notify): pages do not wait for the next step. It runs in every process
(claims are exclusive: SKIP LOCKED on PostgreSQL, the writers' queue on SQLite).

Each piece of work is one transaction, so a restart between two never loses or repeats a step:
an escalation step is claimed (the ticket's level advanced) in the same transaction that
writes its history entry and its notifications.

Several replicas on PostgreSQL: only the holder of a session advisory lock (pg_try_advisory_lock
on a dedicated connection) runs the steps; the others keep trying to become leader. SQLite: a
single HQ process, always the leader. Tests call `step()` directly under a ManualClock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from hq_server.alarms import deadman
from hq_server.core.clock import Clock
from hq_server.core.domain import SYSTEM_ACTOR
from hq_server.core.settings import Settings
from hq_server.store.db import Database
from hq_server.store.models import Ticket
from hq_server.tickets import escalation, maintenance, notify, paging
from hq_server.tickets.book import ticket_for_active_alarm
from hq_server.tickets.deadlines import ticket_clock
from hq_server.tickets.escalation import TimerKind, TimerOutcome
from hq_server.tickets.policy import TicketPolicy
from hq_server.tickets.records import find_open_ticket

logger = logging.getLogger(__name__)

LEADER_LOCK_KEY = 0x5357_5343  # "SWSC"
# The lock is per HQ schema: replicas of one HQ share it, HQs in other schemas of the same
# database (e.g. parallel test runs) do not block each other.
_SCHEMA_KEY = "hashtext(current_schema())"
# At most this many escalation steps per scheduler step, so one never runs for long.
MAX_TIMERS_PER_STEP = 500
# Delivery rounds running at once in the delivery loop.
MAX_DELIVERY_ROUNDS = 4


@dataclass(slots=True)
class StepReport:
    """What one step did (for logs and tests)."""

    leader: bool
    released_windows: int = 0
    raised_sites: list[int] = field(default_factory=list)
    cleared_sites: list[int] = field(default_factory=list)
    escalated: int = 0
    cancelled: int = 0
    deferred: int = 0
    notification_attempts: int = 0
    repeated_pages: int = 0
    digests: int = 0
    undelivered_alarms: int = 0


class Scheduler:
    """The scheduler of one HQ process (leader election included)."""

    def __init__(self, db: Database, clock: Clock, settings: Settings) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings
        self.policy = TicketPolicy.of(settings)
        self._lock_conn: Connection | None = None
        self._stopping: asyncio.Event | None = None

    # ---- leadership ----------------------------------------------------------------------

    def is_leader(self) -> bool:
        """True if this process runs the steps (tries to take the PostgreSQL lock if needed)."""
        if self.db.dialect != "postgresql":
            return True
        if self._lock_conn is not None:
            try:
                self._lock_conn.execute(text("SELECT 1"))
                return True
            except SQLAlchemyError:
                logger.warning("scheduler: lost the leader connection")
                self._drop_lock_conn()
        conn = self.db.engine.connect()
        try:
            got = conn.execute(
                text(f"SELECT pg_try_advisory_lock(:key, {_SCHEMA_KEY})"), {"key": LEADER_LOCK_KEY}
            ).scalar_one()
            conn.commit()
        except SQLAlchemyError:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        logger.info("scheduler: this process is the leader")
        self._lock_conn = conn
        return True

    def _drop_lock_conn(self) -> None:
        if self._lock_conn is not None:
            try:
                self._lock_conn.invalidate()
                self._lock_conn.close()
            except SQLAlchemyError:
                pass
            self._lock_conn = None

    def close(self) -> None:
        """Give up leadership (the lock goes with its connection)."""
        if self._lock_conn is not None:
            try:
                self._lock_conn.execute(
                    text(f"SELECT pg_advisory_unlock(:key, {_SCHEMA_KEY})"),
                    {"key": LEADER_LOCK_KEY},
                )
                self._lock_conn.commit()
                self._lock_conn.close()
            except SQLAlchemyError:
                self._drop_lock_conn()
            self._lock_conn = None

    # ---- the step ------------------------------------------------------------------------

    def step(self) -> StepReport:
        """Do everything that is due now (when leader)."""
        if not self.is_leader():
            return StepReport(leader=False)
        now = self.clock.now()
        report = StepReport(leader=True)
        report.released_windows = self._release_windows(now)
        with self.db.writer() as session, session.begin():
            dead = deadman.check(session, now, self.settings.heartbeat_timeout, self.policy)
        report.raised_sites, report.cleared_sites = dead.raised, dead.cleared
        for _ in range(MAX_TIMERS_PER_STEP):
            outcome = self.fire_one_timer(now)
            if outcome is None:
                break
            if outcome == TimerOutcome.ESCALATED:
                report.escalated += 1
            elif outcome == TimerOutcome.CANCELLED:
                report.cancelled += 1
            else:
                report.deferred += 1
        limits = self.policy.paging
        with self.db.writer() as session, session.begin():
            report.repeated_pages = paging.repeat_due(session, now, limits)
        with self.db.writer() as session, session.begin():
            report.digests = paging.digests_due(session, now)
        with self.db.writer() as session, session.begin():
            report.undelivered_alarms = paging.undelivered_due(session, now, limits)
        report.notification_attempts = notify.deliver_due(
            self.db, now, self.settings, clock=self.clock.now
        )
        return report

    def deliver_now(self) -> int:
        """Send the notifications due now (the delivery loop's work, in any process)."""
        return notify.deliver_due(self.db, self.clock.now(), self.settings, clock=self.clock.now)

    def _release_windows(self, now: datetime) -> int:
        count = 0
        with self.db.writer() as session, session.begin():
            for window in maintenance.ended_windows(session, now):
                for alarm in maintenance.held_alarms(session, window):
                    if find_open_ticket(session, alarm.site_id, alarm.fault_key) is not None:
                        continue
                    if maintenance.active_window(session, alarm, now) is not None:
                        continue  # another window still holds it
                    ticket_for_active_alarm(session, alarm, now, SYSTEM_ACTOR, self.policy)
                window.released_at = now
                count += 1
        return count

    def fire_one_timer(self, now: datetime) -> TimerOutcome | None:
        """Take the next due escalation step and escalate (or cancel/defer) it in one
        transaction; None when no step is due."""
        with self.db.writer() as session, session.begin():
            due = self._next_due(session, now)
            if due is None:
                return None
            ticket, kind = due
            if not escalation.runs(ticket, kind):
                escalation.stop(ticket, kind)
                return TimerOutcome.CANCELLED
            window = maintenance.holding_window(session, ticket, now)
            if window is not None:
                escalation.defer(ticket, kind, window.ends_at)
                return TimerOutcome.DEFERRED
            self._escalate(session, ticket, kind, escalation.level(ticket, kind), now)
            escalation.advance(ticket, kind, ticket_clock(session, ticket))
            return TimerOutcome.ESCALATED

    def _next_due(self, session: Session, now: datetime) -> tuple[Ticket, TimerKind] | None:
        """The ticket and escalation whose step is due first, locked (paused tickets wait:
        pending the customer, the clock stands still)."""
        candidates = []
        for kind in TimerKind:
            at = escalation.at_column(kind)
            stmt = (
                select(Ticket)
                .where(at <= now, Ticket.paused_since.is_(None))
                .order_by(at, Ticket.id)
                .limit(1)
            )
            if self.db.dialect == "postgresql":
                # A ticket another transaction holds (ingest, an engineer) is passed over for
                # the next due one; a later step takes it.
                stmt = stmt.with_for_update(of=Ticket, skip_locked=True)
            ticket = session.scalars(stmt).first()
            if ticket is not None:
                due = escalation.next_at(ticket, kind)
                assert due is not None
                candidates.append((due, ticket.id, kind, ticket))
        if not candidates:
            return None
        _, _, kind, ticket = min(candidates, key=lambda c: c[:3])
        return ticket, kind

    def _escalate(
        self, session: Session, ticket: Ticket, kind: TimerKind, level_index: int, now: datetime
    ) -> None:
        """Record one escalation step on the ticket and queue its notifications."""
        escalation.escalate_step(session, ticket, kind, level_index, now, self.settings)

    # ---- the loop ------------------------------------------------------------------------

    def _deliver_loop(self, stopping: threading.Event) -> None:
        """Send notifications as soon as the bell rings (or every interval), in a thread of its
        own; up to MAX_DELIVERY_ROUNDS rounds run at once, so a round held by a slow endpoint
        does not hold back the next."""
        interval = self.settings.scheduler_interval
        running = threading.BoundedSemaphore(MAX_DELIVERY_ROUNDS)
        with ThreadPoolExecutor(MAX_DELIVERY_ROUNDS, thread_name_prefix="deliver") as pool:
            while not stopping.is_set():
                notify.BELL.wait(interval)
                if stopping.is_set():
                    break
                # A ring while every round is busy is kept for the first round to finish.
                if not running.acquire(timeout=interval):
                    continue
                notify.BELL.clear()
                future = pool.submit(self._deliver_round)
                future.add_done_callback(lambda _f: running.release())

    def _deliver_round(self) -> int:
        try:
            return self.deliver_now()
        except Exception:  # one failed round must not stop the loop
            logger.exception("delivering notifications failed; trying again")
            return 0

    async def run(self) -> None:
        """Step every `scheduler_interval` seconds until `stop()`; then give up leadership."""
        interval = self.settings.scheduler_interval
        self._stopping = asyncio.Event()
        stop_delivery = threading.Event()
        delivery = threading.Thread(
            target=self._deliver_loop, args=(stop_delivery,), name="delivery", daemon=True
        )
        delivery.start()
        try:
            while not self._stopping.is_set():
                try:
                    report = await asyncio.to_thread(self.step)
                    if report.escalated or report.raised_sites or report.notification_attempts:
                        logger.info("scheduler step: %s", report)
                except Exception:  # one failed step must not stop the loop
                    logger.exception("scheduler step failed; trying again in %.0f s", interval)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=interval)
        finally:
            stop_delivery.set()
            notify.BELL.set()  # wakes the delivery loop to see it is stopping
            await asyncio.to_thread(delivery.join)
            # Not cancelled mid-step (stop() lets the step finish), so no thread is left
            # holding a connection when the leader lock is released.
            await asyncio.to_thread(self.close)

    def stop(self) -> None:
        """Ask `run()` to finish after the current step."""
        if self._stopping is not None:
            self._stopping.set()
