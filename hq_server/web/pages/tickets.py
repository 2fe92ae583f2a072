"""Tickets: the list with filters and paging; a ticket's page with its timeline, SLA clocks and
actions (acknowledge, assign, comment, status, resolve, close, reopen) taken through
hq_server.tickets.actions, as the API takes them.

A form's bad input is shown next to its field, in the user's language, and nothing is saved. A
form carries the ticket's version (updated_at) as it was shown; when the ticket changed since,
a state-changing action is refused and the page shown again with what was typed (a comment is
added regardless: it changes nothing someone else decided).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from math import ceil
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from hq_server.core.domain import OPEN_STATUSES, TicketStatus
from hq_server.core.errors import Conflict, InvalidTransition, NotFound
from hq_server.store.models import Notification, Ticket
from hq_server.tickets import actions, notify
from hq_server.tickets.search import TicketFilter, count_tickets, find_tickets, next_deadline
from hq_server.tickets.timeline import TimelineEntry, timeline
from hq_server.web.auth import Engineer, Refused, Viewer, Visit, app_state
from hq_server.web.i18n import N_, Translator
from hq_server.web.render import navigation, render

router = APIRouter(include_in_schema=False)
navigation("/tickets", N_("Tickets"), 20)

PAGE_SIZE = 50
MAX_TEXT = 4000
MAX_NAME = 100
MAX_MINUTES = 100_000
MAX_PAGE = 1_000_000
# Ticket ids are the database's 32-bit integers (as the API's Id).
MAX_ID = 2_147_483_647

STATUS_NAMES = {
    "new": N_("new"),
    "acknowledged": N_("acknowledged"),
    "in_progress": N_("in progress"),
    "pending_customer": N_("pending customer"),
    "resolved": N_("resolved"),
    "closed": N_("closed"),
}
# History entries (hq_server.core.domain.TicketAction), alarm event kinds, notification states.
WHAT_NAMES = {
    "opened": N_("opened"),
    "grade_changed": N_("grade changed"),
    "alarm_cleared": N_("alarm cleared"),
    "alarm_raised_again": N_("alarm raised again"),
    "acknowledged": N_("acknowledged"),
    "assigned": N_("assigned"),
    "comment": N_("comment"),
    "status_changed": N_("status changed"),
    "resolved": N_("resolved"),
    "closed": N_("closed"),
    "reopened": N_("reopened"),
    "deadlines_changed": N_("deadlines changed"),
    "escalated": N_("escalated"),
    "notification": N_("notification"),
    "flapping_started": N_("flapping started"),
    "flapping_stopped": N_("flapping stopped"),
    "alarm_grouped": N_("alarm grouped"),
    "raise": N_("alarm raised"),
    "update": N_("alarm updated"),
    "clear": N_("alarm cleared"),
    "pending": N_("notification pending"),
    "sent": N_("notification sent"),
    "failed": N_("notification failed"),
}
# Who did it, where it is not a person: HQ itself, a notification channel.
WHO_NAMES = {
    "system": N_("HQ"),
    "email": N_("e-mail"),
    "webhook": N_("webhook"),
}
# What a page or notification was about (hq_server.channels.EventKind, escalation events).
PAGE_KINDS = {
    "opened": N_("new fault"),
    "regraded": N_("grade raised"),
    "repeat": N_("still not acknowledged"),
    "escalated": N_("escalated"),
    "digest": N_("digest"),
    "undelivered": N_("page not delivered"),
    "escalation": N_("escalated"),
}
KIND_NAMES = {
    "event": N_("Alarm event"),
    "history": N_("History"),
    "notification": N_("Notification"),
}


def describe(entry: TimelineEntry, t: Translator) -> str:
    """An entry's detail in the user's language where its data says it all; else as stored."""
    data = entry.data
    if entry.kind != "history":
        return entry.detail
    if entry.what == "opened" and "grade" in data:
        return t.gettext(N_("grade %(grade)s"), grade=t.grade(int(data["grade"])))
    if entry.what == "acknowledged":
        return t.gettext(N_("after the deadline")) if data.get("late") else ""
    if entry.what == "assigned" and "assignee" in data:
        return t.gettext(N_("to %(name)s"), name=data["assignee"])
    if entry.what == "comment":
        parts = [
            t.gettext(label, text=data[key])
            for key, label in (("seen", N_("seen: %(text)s")), ("done", N_("done: %(text)s")))
            if data.get(key)
        ]
        if data.get("minutes"):
            parts.append(t.gettext(N_("%(minutes)s minutes"), minutes=data["minutes"]))
        return "; ".join(parts)
    if entry.what == "status_changed" and data.get("old") in STATUS_NAMES:
        moved = (
            f"{t.gettext(STATUS_NAMES[data['old']])} → "
            f"{t.gettext(STATUS_NAMES.get(data.get('new', ''), data.get('new', '')))}"
        )
        note = entry.detail.partition(": ")[2]
        return f"{moved}: {note}" if note else moved
    if entry.what == "resolved" and "fix" in data:
        return t.gettext(
            N_("cause: %(cause)s; fix: %(fix)s"), cause=data.get("cause", ""), fix=data["fix"]
        )
    return entry.detail


# --- the list --------------------------------------------------------------------------------


def whole(raw: str, limit: int) -> int | None:
    """`raw` as a whole number from 0 to `limit`, or None. Only ASCII digits: str.isdigit() is
    also true for "²", which int() refuses, and for numbers too long for int()."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(limit)):
        return None
    value = int(raw)
    return value if value <= limit else None


@dataclass(slots=True)
class ListQuery:
    """The list's filters as typed, the filter they make, and the errors in them."""

    values: dict[str, str]
    wanted: TicketFilter
    page: int
    errors: dict[str, str] = field(default_factory=dict)


def _list_query(params: dict[str, str], t: Translator) -> ListQuery:
    values = {k: params.get(k, "").strip() for k in ("grade", "status", "site", "assignee", "q")}
    values["overdue"] = "1" if params.get("overdue") in ("1", "true", "on") else ""
    values["open"] = params.get("open", "")
    errors: dict[str, str] = {}
    grade: int | None = None
    if values["grade"]:
        if values["grade"] in ("1", "2", "3", "4", "5"):
            grade = int(values["grade"])
        else:
            errors["grade"] = t.gettext(N_("A grade is a number from 1 to 5."))
    status: tuple[TicketStatus, ...] = ()
    if values["status"]:
        if values["status"] in STATUS_NAMES:
            status = (TicketStatus(values["status"]),)
        else:
            errors["status"] = t.gettext(N_("Unknown status."))
    for name, limit in (("site", MAX_NAME), ("assignee", MAX_NAME), ("q", 200)):
        if len(values[name]) > limit:
            errors[name] = t.gettext(N_("At most %(count)s characters."), count=limit)
            values[name] = values[name][:limit]
        if "\x00" in values[name]:  # PostgreSQL refuses it in a query
            errors[name] = t.gettext(N_("Contains a character that cannot be stored."))
            values[name] = values[name].replace("\x00", "")
    page = whole(params.get("page", ""), MAX_PAGE) or 1
    wanted = TicketFilter(
        status=status,
        open={"true": True, "false": False}.get(values["open"]),
        site=values["site"] or None,
        grade=grade,
        assignee=values["assignee"] or None,
        overdue=True if values["overdue"] else None,
        text=values["q"] or None,
    )
    return ListQuery(values, wanted, max(1, page), errors)


@router.get("/tickets")
async def ticket_list(request: Request, visit: Viewer) -> Response:
    """Tickets, newest first, filtered and in pages."""
    query = _list_query(dict(request.query_params), visit.t)
    db, clock, _settings = app_state(request)
    now = clock.now()

    def read() -> tuple[list[tuple[Ticket, datetime | None]], int]:
        with db.session() as session:
            total = count_tickets(session, query.wanted, now)
            rows = find_tickets(
                session,
                query.wanted,
                now,
                limit=PAGE_SIZE,
                offset=(query.page - 1) * PAGE_SIZE,
            )
            return [(t, next_deadline(t)) for t in rows], total

    rows, total = await run_in_threadpool(read)
    pages = max(1, ceil(total / PAGE_SIZE))
    link = {k: v for k, v in query.values.items() if v}
    return render(
        request,
        "tickets/list.html",
        visit.t,
        visit.user,
        status_code=422 if query.errors else 200,
        rows=rows,
        total=total,
        query=query,
        page=query.page,
        pages=pages,
        link=link,
        now=now,
        status_names=STATUS_NAMES,
    )


# --- one ticket ------------------------------------------------------------------------------


def version_of(ticket: Ticket) -> str:
    """The version a form carries: when the ticket last changed."""
    return ticket.updated_at.isoformat()


@dataclass(slots=True)
class TicketView:
    """A ticket as its page shows it."""

    ticket: Ticket
    entries: list[TimelineEntry]
    version: str
    ack_due: datetime | None
    restore_due: datetime | None
    notifications: list[Notification]


def _read_ticket(session: Session, ticket_id: int) -> TicketView:
    ticket = actions.get_ticket(session, ticket_id, for_update=False)
    running = ticket.status in OPEN_STATUSES and ticket.paused_since is None
    return TicketView(
        ticket=ticket,
        entries=timeline(session, ticket),
        version=version_of(ticket),
        ack_due=ticket.ack_due_at if running and ticket.acknowledged_at is None else None,
        restore_due=ticket.restore_due_at if running else None,
        notifications=notify.of_ticket(session, ticket.id),
    )


def _ticket_page(
    request: Request,
    visit: Visit,
    ticket_id: int,
    *,
    status_code: int = 200,
    form: str | None = None,
    typed: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    message: str | None = None,
) -> Response:
    db, clock, _settings = app_state(request)
    with db.session() as session:
        try:
            view = _read_ticket(session, ticket_id)
        except NotFound:
            raise Refused(visit.t, 404, N_("There is no such ticket.")) from None
        status = TicketStatus(view.ticket.status)
        return render(
            request,
            "tickets/detail.html",
            visit.t,
            visit.user,
            status_code=status_code,
            view=view,
            ticket=view.ticket,
            status=status,
            can_ack=status is TicketStatus.NEW,
            can_open_work=status in OPEN_STATUSES,
            status_moves=[
                s.value for s, sources in actions.STATUS_MOVES.items() if status in sources
            ],
            can_close=status is TicketStatus.RESOLVED,
            can_reopen=status not in OPEN_STATUSES,
            form=form,
            typed=typed or {},
            errors=errors or {},
            message=message,
            now=clock.now(),
            status_names=STATUS_NAMES,
            what_names=WHAT_NAMES,
            kind_names=KIND_NAMES,
            who_names=WHO_NAMES,
            describe=lambda e: describe(e, visit.t),
            page_kinds=PAGE_KINDS,
            kind_of=notify.kind_of,
            zone=view.ticket.site.timezone,
        )


def ticket_page_again(
    request: Request,
    visit: Visit,
    ticket_id: int,
    status_code: int,
    form: str,
    typed: dict[str, str],
    **kw: Any,
) -> Response:
    """The ticket's page again after a form of it was refused (errors or a message)."""
    return _ticket_page(
        request, visit, ticket_id, status_code=status_code, form=form, typed=typed, **kw
    )


def ticket_id_of(raw: str, t: Translator) -> int:
    """The ticket id in a path; a 404 page for anything that is not one."""
    ticket_id = whole(raw, MAX_ID)
    if not ticket_id:
        raise Refused(t, 404, N_("There is no such ticket."))
    return ticket_id


@router.get("/tickets/{ticket_id}")
async def ticket_page(request: Request, ticket_id: str, visit: Viewer) -> Response:
    """A ticket with its timeline, clocks and the actions the user may take."""
    return await run_in_threadpool(_ticket_page, request, visit, ticket_id_of(ticket_id, visit.t))


# --- actions ---------------------------------------------------------------------------------


class FormErrors(Exception):
    """Fields of a form that are wrong, with the message to show next to each."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(", ".join(errors))
        self.errors = errors


class Fields:
    """Reads a posted form's fields, collecting a translated message per bad field."""

    def __init__(self, form: dict[str, str], t: Translator) -> None:
        self.form, self.t = form, t
        self.errors: dict[str, str] = {}

    def text(self, name: str, *, required: bool = False, limit: int = MAX_TEXT) -> str:
        """A text field (stripped of surrounding blanks)."""
        value = self.form.get(name, "").strip()
        if required and not value:
            self.errors[name] = self.t.gettext(N_("Required."))
        elif len(value) > limit:
            self.errors[name] = self.t.gettext(N_("At most %(count)s characters."), count=limit)
        elif "\x00" in value:
            self.errors[name] = self.t.gettext(N_("Contains a character that cannot be stored."))
        return value

    def minutes(self, name: str) -> int:
        """A whole number of minutes, 0 when empty."""
        raw = self.form.get(name, "").strip()
        if not raw:
            return 0
        minutes = whole(raw, MAX_MINUTES)
        if minutes is None:
            self.errors[name] = self.t.gettext(
                N_("A whole number of minutes from 0 to %(max)s."), max=MAX_MINUTES
            )
            return 0
        return minutes

    def flag(self, name: str) -> bool:
        """A checkbox."""
        return self.form.get(name) in ("1", "on", "true", "yes")

    def done(self) -> None:
        """Raise FormErrors if any field was wrong."""
        if self.errors:
            raise FormErrors(self.errors)


Action = Callable[[Session, Ticket, datetime, str], None]


def _prepare(name: str, fields: Fields) -> tuple[str, Action]:
    """The audit summary and the action of form `name`, its fields checked."""
    if name == "acknowledge":
        return "acknowledge", lambda s, t, now, who: actions.acknowledge(s, t, now, who)
    if name == "assign":
        assignee = fields.text("assignee", required=True, limit=MAX_NAME)
        on_duty = fields.text("on_duty", limit=MAX_NAME) or None
        fields.done()
        return f"assign to {assignee}", lambda s, t, now, who: actions.assign(
            s, t, now, who, assignee, on_duty
        )
    if name == "comment":
        seen, done = fields.text("seen"), fields.text("done")
        minutes = fields.minutes("time_spent_minutes")
        if not (seen or done or fields.errors):
            fields.errors["seen"] = fields.t.gettext(N_("Say what was seen or what was done."))
        fields.done()
        return "comment on", lambda s, t, now, who: actions.comment(
            s, t, now, who, seen, done, minutes
        )
    if name == "status":
        target = fields.form.get("status", "")
        if target not in ("in_progress", "pending_customer"):
            fields.errors["status"] = fields.t.gettext(N_("Unknown status."))
        note = fields.text("note")
        fields.done()
        status = TicketStatus(target)
        return f"set status {status} on", lambda s, t, now, who: actions.change_status(
            s, t, now, who, status, note
        )
    if name == "resolve":
        resolution = actions.Resolution(
            cause=fields.text("cause", required=True),
            fix=fields.text("fix", required=True),
            tested=fields.flag("tested"),
            confirmed_by_customer=fields.flag("confirmed_by_customer"),
            faq=fields.flag("faq"),
            faq_text=fields.text("faq_text"),
            time_spent_minutes=fields.minutes("time_spent_minutes"),
        )
        if resolution.faq and not resolution.faq_text and "faq_text" not in fields.errors:
            fields.errors["faq_text"] = fields.t.gettext(
                N_("Write the FAQ entry, or leave the fault undocumented.")
            )
        fields.done()
        return "resolve", lambda s, t, now, who: actions.resolve(s, t, now, who, resolution)
    if name == "close":
        note = fields.text("note")
        fields.done()
        return "close", lambda s, t, now, who: actions.close(s, t, now, who, note)
    if name == "reopen":
        reason = fields.text("reason", required=True)
        fields.done()
        return "reopen", lambda s, t, now, who: actions.reopen(s, t, now, who, reason)
    raise KeyError(name)


FORMS = ("acknowledge", "assign", "comment", "status", "resolve", "close", "reopen")
# Forms that add to a ticket without overriding what someone else decided: no stale check.
ADDITIVE = frozenset({"comment"})


class Stale(Exception):
    """The ticket changed since the form was shown."""


def _run(
    request: Request, visit: Visit, ticket_id: int, name: str, summary: str, action: Action
) -> None:
    db, clock, _settings = app_state(request)
    with db.writer() as session, session.begin():
        try:
            ticket = actions.get_ticket(session, ticket_id)
        except NotFound:
            raise Refused(visit.t, 404, N_("There is no such ticket.")) from None
        request.state.audit_summary = f"{summary} {ticket.number}"
        request.state.audit_targets = {"ticket_number": ticket.number}
        if name not in ADDITIVE and visit.form.get("version") != version_of(ticket):
            raise Stale
        action(session, ticket, clock.now(), visit.who.username)


@router.post("/tickets/{ticket_id}/{name}")
async def ticket_action(request: Request, ticket_id: str, name: str, visit: Engineer) -> Response:
    """Take one action on a ticket; back to its page (or the page again, showing what's wrong)."""
    t = visit.t
    number = ticket_id_of(ticket_id, t)
    if name not in FORMS:
        raise Refused(t, 404, N_("There is no such action."))
    fields = Fields(visit.form, t)
    typed = {k: v for k, v in visit.form.items() if k not in ("csrf_token", "version")}

    def again(status: int, **kw: Any) -> Response:
        return _ticket_page(
            request, visit, number, status_code=status, form=name, typed=typed, **kw
        )

    try:
        summary, action = _prepare(name, fields)
        await run_in_threadpool(_run, request, visit, number, name, summary, action)
    except FormErrors as exc:
        request.state.audit_summary = f"refused {name}: bad input in {', '.join(exc.errors)}"
        return await run_in_threadpool(again, 422, errors=exc.errors)
    except Stale:
        request.state.audit_summary += ": refused, the ticket changed meanwhile"
        message = t.gettext(
            N_(
                "Someone changed this ticket after you opened it. Nothing was saved: check "
                "the ticket as it is now and send your form again."
            )
        )
        return await run_in_threadpool(again, 409, message=message)
    except InvalidTransition:
        message = t.gettext(N_("This action is not possible in the ticket's current status."))
        return await run_in_threadpool(again, 409, message=message)
    except Conflict:
        message = t.gettext(
            N_("Another ticket is open for the same fault: work on that one instead.")
        )
        return await run_in_threadpool(again, 409, message=message)
    return RedirectResponse(f"/tickets/{number}", status_code=303)
