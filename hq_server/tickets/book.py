"""Ticket policy: alarm transitions in, tickets opened/updated with deadlines and history out.

An alarm that becomes active opens a ticket unless its fingerprint (site, fault_key) already has
an open one; a grade change moves the ticket's grade and deadlines; a CLEAR marks the ticket's
alarm inactive but never resolves it (an engineer does, hq_server.tickets.actions). Before a new
ticket is opened for a raised alarm, in this order:
- a maintenance window matching the alarm holds it (the window's end opens the ticket);
- a device "unreachable" alarm joins the site's outage ticket (hq_server.tickets.outage);
- a ticket of the same fingerprint resolved within the reopen window (or any time, for a
  flapping alarm) is reopened instead.

A batch of events brings hundreds of transitions; applied one by one with their own queries
they cost some ten statements each. A TicketBook keeps what one transaction knows of the
tickets of its fingerprints and writes in bulk when it settles:
- the open and the last resolved ticket of each fingerprint (`preload`: one query per batch);
- tickets to open (inserted together, their numbers allocated as one block);
- history entries (inserted together, in the order they happened);
- tickets whose grade changed (their escalation chains loaded together, to move the
  escalations' next steps).
The book works on detached copies of alarms and tickets (hq_server.store.rows) and writes them with
Core executemany statements; it also writes the alarms ingest hands it (`alarm_changed`). The
rare paths (outage grouping, reopening) settle first and then use the ORM on fresh rows, so they
see the database as if each earlier transition had been applied alone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hq_server.core.domain import OPEN_STATUSES, TicketAction, TicketStatus
from hq_server.store import rows
from hq_server.store.models import Alarm, Site, Ticket, TicketEvent
from hq_server.tickets import actions, deadlines, escalation, maintenance, outage, paging
from hq_server.tickets.policy import AlarmTransition, TicketPolicy, TransitionKind
from hq_server.tickets.records import (
    ConcurrentTicket,
    Subject,
    TicketOutcome,
    allocate_numbers,
    new_ticket,
    opened_detail,
)
from protocol import faults

logger = logging.getLogger(__name__)

Fingerprint = tuple[int, str]


@dataclass(slots=True)
class _Opening:
    """A ticket opened in this book, inserted when the book settles."""

    ticket: Ticket
    alarm: Alarm


class TicketBook:
    """The ticket policy over many transitions of one transaction (see the module doc)."""

    def __init__(self, session: Session, now: datetime, policy: TicketPolicy) -> None:
        self.session = session
        self.now = now
        self.policy = policy
        self.opened = 0
        self._open: dict[Fingerprint, Ticket | None] = {}
        self._resolved: dict[Fingerprint, Ticket | None] = {}
        self._opening: list[_Opening] = []
        self._moved: dict[int, Ticket] = {}
        # Tickets changed by the book, with the columns it changed (only those are written: an
        # engineer may be changing others, e.g. the deadlines of a paused ticket, meanwhile).
        self._touched: dict[int, tuple[Ticket, set[str]]] = {}
        self._alarms: dict[int, Alarm] = {}
        self._history: list[tuple[Ticket, str, str, str, dict[str, Any]]] = []
        self._raised: list[tuple[int, int]] = []  # (ticket id, old grade): page when settled

    # ---- lookups ----------------------------------------------------------------------------

    def preload(self, site: Site, fault_keys: Collection[str]) -> None:
        """Look up the open and resolved tickets of these fingerprints in one query."""
        keys = [k for k in set(fault_keys) if (site.id, k) not in self._open]
        if not keys:
            return
        for key in keys:
            self._open[(site.id, key)] = None
            self._resolved[(site.id, key)] = None
        found = rows.load(
            self.session,
            Ticket,
            Ticket.site_id == site.id,
            Ticket.fault_key.in_(keys),
            or_(Ticket.status.in_(OPEN_STATUSES), Ticket.status == TicketStatus.RESOLVED.value),
            columns=_TICKET_POLICY_COLUMNS,
            site=site,
        )
        for ticket in found:
            fp = (site.id, ticket.fault_key)
            if ticket.status != TicketStatus.RESOLVED:
                self._open[fp] = ticket
                continue
            known = self._resolved[fp]
            if known is None or _resolved_at(ticket) > _resolved_at(known):
                self._resolved[fp] = ticket

    def open_ticket(self, site_id: int, fault_key: str) -> Ticket | None:
        """The open ticket of a fingerprint (opened in this book or before), if any."""
        fp = (site_id, fault_key)
        if fp not in self._open:
            self.preload(self.session.get_one(Site, site_id), [fault_key])
        return self._open[fp]

    def _recently_resolved(self, alarm: Alarm) -> Ticket | None:
        since = None if alarm.flapping else self.now - self.policy.reopen_window
        self.open_ticket(alarm.site_id, alarm.fault_key)  # loads both kinds
        ticket = self._resolved[(alarm.site_id, alarm.fault_key)]
        if ticket is None or (since is not None and _resolved_at(ticket) < since):
            return None
        return ticket

    def _forget(self) -> None:
        """Drop cached lookups after a rare path changed tickets behind the book's back."""
        self._open.clear()
        self._resolved.clear()

    # ---- the policy -------------------------------------------------------------------------

    def apply(self, t: AlarmTransition) -> TicketOutcome | None:
        """Apply the policy to one alarm transition; returns the ticket touched, if any."""
        alarm = t.alarm
        ticket = self.open_ticket(alarm.site_id, alarm.fault_key)
        if t.kind is TransitionKind.CLEARED:
            if ticket is None or not ticket.alarm_active:
                return None if ticket is None else TicketOutcome(ticket, opened=False)
            self._set(ticket, alarm_active=False)
            if not alarm.flapping:  # a flapping alarm changes the flag, not the history
                self.note(ticket, t.who, TicketAction.ALARM_CLEARED, "alarm cleared")
            return TicketOutcome(ticket, opened=False)

        if ticket is None:
            worsened = t.old_grade is not None and alarm.grade < t.old_grade
            if t.kind is TransitionKind.RAISED or worsened:
                # An active alarm with no open ticket: someone must look at it. (A grade that
                # got better on an alarm whose ticket an engineer already resolved opens nothing.)
                return self.for_active_alarm(alarm, t.who)
            return None

        if not ticket.alarm_active:
            self._set(ticket, alarm_active=True)
            if not alarm.flapping:
                self.note(
                    ticket,
                    t.who,
                    TicketAction.ALARM_RAISED_AGAIN,
                    f"alarm raised again (grade {alarm.grade})",
                    grade=alarm.grade,
                )
        # A grade a person set (a regrade, recorded with the customer's grade) stands until the
        # alarm gets worse than it.
        if alarm.grade != ticket.grade and (
            not ticket.customer_grade or alarm.grade < ticket.grade
        ):
            self.change_grade(ticket, alarm.grade, t.who)
        return TicketOutcome(ticket, opened=False)

    def for_active_alarm(self, alarm: Alarm, who: str) -> TicketOutcome | None:
        """The ticket an active alarm without an open ticket gets: held, grouped, reopened or
        new."""
        window = maintenance.active_window(self.session, alarm, self.now)
        if window is not None:
            logger.info(
                "site=%s fault=%s: held by maintenance window %s until %s",
                alarm.site_id,
                alarm.fault_key,
                window.id,
                window.ends_at.isoformat(),
            )
            return None
        if alarm.code == faults.UNREACHABLE:
            self.settle()
            grouped = outage.group(self.session, alarm, self.now, who, self.policy)
            self._forget()
            if grouped is not None:
                return grouped
        recent = self._recently_resolved(alarm)
        if recent is not None:
            self.settle()
            actions.reopen(
                self.session,
                self.session.get_one(Ticket, recent.id),
                self.now,
                who,
                reason=f"alarm raised again (grade {alarm.grade}) soon after the ticket was "
                "resolved",
            )
            self._forget()
            reopened = self.open_ticket(alarm.site_id, alarm.fault_key)
            assert reopened is not None
            if alarm.grade != reopened.grade:
                self.change_grade(reopened, alarm.grade, who)
            self._set(reopened, alarm_active=True)
            return TicketOutcome(reopened, opened=False)
        subject = Subject.of(alarm)
        ticket = new_ticket(
            self.session, subject, self.now, self.policy.on_duty, alarm_active=alarm.active
        )
        self._opening.append(_Opening(ticket, alarm))
        self._open[(alarm.site_id, alarm.fault_key)] = ticket
        self.note(
            ticket,
            who,
            TicketAction.OPENED,
            opened_detail(subject),
            grade=subject.grade,
            alarm_id=None,  # filled in when the alarm has its id (settle)
            escalation_chain=ticket.escalation["name"] if ticket.escalation else None,
        )
        if alarm.code == faults.SITE_UNREACHABLE:
            self.settle()
            persistent = self.session.get_one(Ticket, ticket.id)
            outage.after_open(self.session, alarm, persistent, self.now, who)
            self._forget()
        return TicketOutcome(ticket, opened=True)

    def change_grade(self, ticket: Ticket, grade: int, who: str) -> None:
        """Set a ticket's grade and recompute its deadlines (its escalations move when settling)."""
        old = ticket.grade
        rows.put(ticket, grade=grade)  # the deadlines follow from the new grade
        due = deadlines.compute(self.session, ticket)
        self._set(
            ticket,
            grade=grade,
            ack_due_at=due.ack_due_at,
            restore_due_at=due.restore_due_at,
        )
        if ticket.customer_grade:  # the alarm's grade again, not the one a person gave
            self._set(ticket, customer_grade="")
        if ticket.id is None:  # still opening: its escalations start from this grade
            escalation.schedule(ticket, deadlines.ticket_clock(self.session, ticket))
        else:
            self._moved[ticket.id] = ticket
            if grade < old:
                self._raised.append((ticket.id, old))
        self.note(
            ticket,
            who,
            TicketAction.GRADE_CHANGED,
            f"grade {old} -> {grade}",
            old=old,
            new=grade,
            ack_due_at=_iso(due.ack_due_at),
            restore_due_at=_iso(due.restore_due_at),
        )

    def alarm_changed(self, alarm: Alarm) -> None:
        """Have the book write this (detached or new) alarm when it settles."""
        self._alarms[id(alarm)] = alarm

    def _set(self, ticket: Ticket, **values: Any) -> None:
        """Change columns of a ticket the book holds (a detached copy or one it opens); only
        the columns changed are written when it settles."""
        rows.put(ticket, updated_at=self.now, **values)
        if ticket.id is not None:
            _, changed = self._touched.setdefault(ticket.id, (ticket, {"updated_at"}))
            changed.update(values)

    def note(
        self, ticket: Ticket, who: str, what: TicketAction, detail: str, **data: object
    ) -> None:
        """A history entry, written when the book settles."""
        self._history.append((ticket, who, what.value, detail, data))

    # ---- writing ----------------------------------------------------------------------------

    def settle(self) -> None:
        """Write what the book holds: alarms, new tickets, changed tickets, history."""
        session = self.session
        session.flush()  # what the ORM paths changed, before rows they read are overwritten
        stored = [a for a in self._alarms.values() if a.id is not None]
        new_alarms: dict[int, list[Alarm]] = {}
        for alarm in self._alarms.values():
            if alarm.id is None:
                new_alarms.setdefault(alarm.site_id, []).append(alarm)
        self._alarms.clear()
        for site_id, of_site in new_alarms.items():
            rows.insert_new(session, Alarm, of_site, "fault_key", Alarm.site_id == site_id)
        rows.update_by_id(session, Alarm, stored, _ALARM_STATE)
        opening, self._opening = self._opening, []
        if opening:
            self._insert_tickets(opening)
        if self._moved:
            self._move_steps()
        shapes: dict[tuple[str, ...], list[Ticket]] = {}
        for ticket, changed in self._touched.values():
            shapes.setdefault(tuple(sorted(changed)), []).append(ticket)
        self._touched.clear()
        for columns, tickets in shapes.items():
            rows.update_by_id(session, Ticket, tickets, columns)
        if self._history:
            entries = [
                (ticket.id, self.now, who, what, detail, _with_alarm_id(ticket, what, data))
                for ticket, who, what, detail, data in self._history
            ]
            self._history.clear()
            rows.insert_rows(session, rows.table_of(TicketEvent), _HISTORY_COLUMNS, entries)
        # ORM instances of these rows may now be stale: the next ORM read loads them afresh.
        for obj in list(session.identity_map.values()):
            if isinstance(obj, Alarm | Ticket):
                session.expire(obj)
        raised, self._raised = self._raised, []
        for ticket_id, old in raised:
            paging.grade_raised(session, session.get_one(Ticket, ticket_id), old, self.now,
                                self.policy.paging)  # fmt: skip

    def _insert_tickets(self, opening: list[_Opening]) -> None:
        session = self.session
        numbers = allocate_numbers(session, self.now.year, len(opening))
        for o, number in zip(opening, numbers, strict=True):
            rows.put(o.ticket, number=number, alarm_id=o.alarm.id)
        try:
            rows.insert_new(session, Ticket, [o.ticket for o in opening], "number")
        except IntegrityError as exc:
            # Only a path that opened a ticket without the fingerprint lock can get here
            # (ingest holds it): the transaction is spoiled on PostgreSQL, run it again.
            raise ConcurrentTicket(str(exc.orig)) from exc
        self.opened += len(opening)
        paging.ticket_opened(session, [o.ticket for o in opening], self.now, self.policy.paging)
        for o in opening:
            t = o.ticket
            logger.info(
                "site=%s fault=%s: opened ticket %s grade %s",
                t.site_id,
                t.fault_key,
                t.number,
                t.grade,
            )

    def _move_steps(self) -> None:
        """Set when the escalations of tickets whose grade changed take their next step."""
        # Read now, and locked on PostgreSQL: the scheduler may have escalated a level since
        # the batch preloaded its tickets, and the next step counts from the level reached.
        # The chain was not preloaded: a large JSON only moved tickets need. It is read as
        # text and decoded once per distinct chain (the tickets of a site mostly share one);
        # the decoded chains are only read.
        stmt = (
            select(
                Ticket.id,
                cast(Ticket.escalation, Text),
                Ticket.ack_escalation_level,
                Ticket.restore_escalation_level,
                Ticket.status,
                Ticket.acknowledged_at,
            )
            .where(Ticket.id.in_(list(self._moved)))
            .order_by(Ticket.id)
        )
        if self.session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(of=Ticket)
        decoded: dict[str, Any] = {}
        for ticket_id, text, ack_level, restore_level, status, acked in self.session.execute(stmt):
            ticket = self._moved[ticket_id]
            if "escalation" not in ticket.__dict__:
                if text and text not in decoded:
                    decoded[text] = json.loads(text)
                rows.put(ticket, escalation=decoded.get(text or ""))
            rows.put(
                ticket,
                ack_escalation_level=ack_level,
                restore_escalation_level=restore_level,
                status=status,
                acknowledged_at=acked,
            )
        for ticket in self._moved.values():
            escalation.schedule(ticket, deadlines.ticket_clock(self.session, ticket))
            self._set(
                ticket,
                ack_escalation_at=ticket.ack_escalation_at,
                restore_escalation_at=ticket.restore_escalation_at,
            )
        self._moved.clear()


# The ticket columns the policy reads (the rest, e.g. the escalation chain or the deadlines it
# only writes, stays in the table: reading one of those on a copy raises).
_TICKET_POLICY_COLUMNS = (
    "id",
    "number",
    "site_id",
    "fault_key",
    "status",
    "grade",
    "alarm_active",
    "opened_at",
    "acknowledged_at",
    "resolved_at",
    "pauses",
    "sla_started_at",
    "customer_grade",
    "ack_escalation_level",
    "restore_escalation_level",
)
_HISTORY_COLUMNS = ("ticket_id", "at", "who", "what", "detail", "data")
# The alarm columns ingest changes (hq_server.alarms.ingest).
_ALARM_STATE = (
    "last_agent_id",
    "last_event_seq",
    "last_change_at",
    "active",
    "cleared_at",
    "raise_count",
    "grade",
    "title",
    "title_zh",
    "device_class",
    "state_log",
    "flapping",
)


def _resolved_at(ticket: Ticket) -> datetime:
    assert ticket.resolved_at is not None
    return ticket.resolved_at


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _with_alarm_id(ticket: Ticket, what: str, data: dict[str, Any]) -> dict[str, Any]:
    # A ticket's alarm may get its id only when the book settles.
    return {**data, "alarm_id": ticket.alarm_id} if what == TicketAction.OPENED else data


def apply_transition(
    session: Session, t: AlarmTransition, now: datetime, policy: TicketPolicy
) -> TicketOutcome | None:
    """Apply the ticket policy to one alarm transition and write the result."""
    book = TicketBook(session, now, policy)
    outcome = book.apply(t)
    book.settle()
    return outcome


def ticket_for_active_alarm(
    session: Session, alarm: Alarm, now: datetime, who: str, policy: TicketPolicy
) -> TicketOutcome | None:
    """The ticket an active alarm without an open ticket gets (held, grouped, reopened, new)."""
    book = TicketBook(session, now, policy)
    outcome = book.for_active_alarm(alarm, who)
    book.settle()
    return outcome
