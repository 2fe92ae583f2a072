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
    "dispatch": N_("dispatch"),
    "plan_changed": N_("plan changed"),
    "customer_confirmed": N_("confirmed by the customer"),
    "paged": N_("paged"),
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


def describe(entry: TimelineEntry, t: Translator, zone: str = "UTC") -> str:
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
    build = _DESCRIBERS.get(entry.what)
    if build is not None:
        try:
            said = build(_Said(data, t, zone))
        except (KeyError, TypeError, ValueError):  # an entry older than its fields: as stored
            said = None
        if said is not None:
            return said
    return entry.detail


# Escalation levels HQ names itself (hq_server.tickets.escalation.DEFAULT_LEVEL_NAMES); the
# names of configured levels are shown as they were given.
LEVEL_NAMES = {
    "on-duty engineer": N_("on-duty engineer"),
    "department manager": N_("department manager"),
    "customer-service centre manager": N_("customer-service centre manager"),
    "service director": N_("service director"),
}
# The step a deadline escalation records (hq_server.tickets.escalation.TimerKind).
MISSED = {
    "ack": N_("not acknowledged by %(deadline)s"),
    "restore": N_("not restored by %(deadline)s"),
    "onsite": N_("not on site by %(deadline)s"),
}
DISPATCH_STEPS = {
    "sent_at": N_("sent %(at)s"),
    "left_at": N_("left for the site %(at)s"),
    "arrived_at": N_("arrived %(at)s"),
    "left_site_at": N_("left the site %(at)s"),
}
PAGED_HOW = {
    "paged": N_("paged %(names)s"),
    "held": N_("held for a digest (rate limit): %(names)s"),
    "digest": N_("in the daily digest of %(names)s"),
}


@dataclass(frozen=True, slots=True)
class _Said:
    """What a describer reads: the entry's data, the user's language, the site's zone."""

    data: dict[str, Any]
    t: Translator
    zone: str

    def when(self, key: str) -> str:
        return self.t.when(datetime.fromisoformat(self.data[key]), self.zone)

    def grade(self, key: str) -> str:
        return self.t.grade(int(self.data[key]))

    def then(self, first: str, rest: object) -> str:
        """ "first: rest", punctuated the way the language does."""
        return self.t.gettext(N_("%(first)s: %(rest)s"), first=first, rest=rest)

    def names(self, key: str) -> str:
        return self.t.gettext(N_(", ")).join(str(n) for n in self.data[key])


def _grade_changed(s: _Said) -> str:
    moved = s.t.gettext(N_("grade %(old)s → %(new)s"), old=s.grade("old"), new=s.grade("new"))
    if "reason" not in s.data:  # the alarm's grade changed
        return moved
    return s.t.gettext(
        N_("%(moved)s (%(given)s): %(reason)s; deadlines count from %(start)s"),
        moved=moved,
        given=s.data.get("given", ""),
        reason=s.data["reason"],
        start=s.when("clock_start"),
    )


def _deadlines(s: _Said) -> str:
    return s.t.gettext(
        N_("deadlines recomputed: acknowledge by %(ack)s, restore by %(restore)s"),
        ack=s.when("ack_due_at") if s.data.get("ack_due_at") else "—",
        restore=s.when("restore_due_at") if s.data.get("restore_due_at") else "—",
    )


def _escalated(s: _Said) -> str:
    name = str(s.data.get("level_name") or "")
    contacts = s.names("contacts") if s.data.get("contacts") else s.t.gettext(N_("no contacts"))
    target = s.t.gettext(
        N_("escalated to level %(level)s (%(name)s): %(contacts)s"),
        level=s.data["level"],
        name=s.t.gettext(LEVEL_NAMES[name]) if name in LEVEL_NAMES else name,
        contacts=contacts,
    )
    if s.data.get("requested"):
        why = (
            s.t.gettext(N_("at the customer's request (%(reason)s)"), reason=s.data["reason"])
            if s.data.get("reason")
            else s.t.gettext(N_("at the customer's request"))
        )
    else:
        deadline = s.when("deadline") if s.data.get("deadline") else "?"
        why = s.t.gettext(MISSED[s.data["kind"]], deadline=deadline)
    return s.then(why, target)


def _notification(s: _Said) -> str:
    channel = s.data["channel"]
    what = (
        s.t.gettext(N_("page"))
        if channel == "page"
        else s.t.gettext(WHO_NAMES.get(channel, channel))
    )
    head = s.t.gettext(
        N_("%(channel)s to %(target)s, attempt %(attempt)s"),
        channel=what,
        target=s.data["target"],
        attempt=s.data["attempt"],
    )
    if s.data.get("delivered_by"):
        outcome = s.t.gettext(N_("sent by %(target)s"), target=s.data["delivered_by"])
    elif s.data["ok"]:
        outcome = s.t.gettext(N_("delivered"))
    elif "status" not in s.data:  # recorded before the outcome's fields were
        raise KeyError("status")
    elif s.data["status"] == "failed":
        outcome = s.t.gettext(N_("failed for good (%(error)s)"), error=s.data.get("error", ""))
    else:
        outcome = s.t.gettext(
            N_("failed (%(error)s), retry at %(at)s"),
            error=s.data.get("error", ""),
            at=s.when("retry_at") if s.data.get("retry_at") else "—",
        )
    return s.then(head, outcome)


def _dispatch(s: _Said) -> str:
    said = s.t.gettext(N_("on site: %(engineer)s"), engineer=s.data["engineer"])
    steps = [
        s.t.gettext(label, at=s.when(step))
        for step, label in DISPATCH_STEPS.items()
        if s.data.get(step)
    ]
    if s.data.get("late"):
        steps.append(s.t.gettext(N_("after the on-site deadline")))
    return s.then(said, s.t.gettext(N_("; ")).join(steps)) if steps else said


def _plan(s: _Said) -> str:
    said = (
        s.t.gettext(N_("fix promised for %(at)s"), at=s.when("promised_fix_at"))
        if s.data.get("promised_fix_at")
        else s.t.gettext(N_("no fix date promised"))
    )
    return s.then(said, s.data["plan"]) if s.data.get("plan") else said


def _confirmed(s: _Said) -> str:
    said = s.t.gettext(
        N_("fix confirmed by %(name)s at %(at)s"),
        name=s.data["confirmed_by"],
        at=s.when("confirmed_at"),
    )
    opinion = s.data.get("customer_opinion")
    return s.then(said, opinion) if opinion else said


def _paged(s: _Said) -> str | None:
    if "repeat" in s.data:
        if not s.data["paged"]:
            return s.t.gettext(
                N_("not acknowledged: paged again (%(count)s): nobody"), count=s.data["repeat"]
            )
        return s.t.gettext(
            N_("not acknowledged: paged again (%(count)s): %(names)s"),
            count=s.data["repeat"],
            names=s.names("paged"),
        )
    event = s.data.get("event")
    if event == "opened":
        about = s.t.gettext(N_("ticket opened"))
    elif event == "regraded":
        about = s.t.gettext(N_("grade %(old)s → %(new)s"), old=s.grade("old"), new=s.grade("new"))
    else:
        return None  # recorded before the event was: as stored
    parts = [
        s.t.gettext(label, names=s.names(key))
        for key, label in PAGED_HOW.items()
        if s.data.get(key)
    ]
    return s.then(
        about, s.t.gettext(N_("; ")).join(parts) if parts else s.t.gettext(N_("nobody to page"))
    )


def _grouped(s: _Said) -> str:
    return s.t.gettext(
        N_("%(device)s: %(title)s (grouped under this outage)"),
        device=s.data["device_id"],
        title=s.data["title"],
    )


def _flapping(s: _Said) -> str:
    return s.t.gettext(N_("%(percent)s%% of the last states changed"), percent=s.data["percent"])


def _reopened(s: _Said) -> str:
    old, new = s.data["old"], s.data["new"]
    moved = f"{s.t.gettext(STATUS_NAMES.get(old, old))} → {s.t.gettext(STATUS_NAMES.get(new, new))}"
    return s.then(moved, s.data["reason"]) if s.data.get("reason") else moved


_DESCRIBERS: dict[str, Callable[[_Said], str | None]] = {
    "grade_changed": _grade_changed,
    "alarm_cleared": lambda s: "",
    "alarm_raised_again": lambda s: s.t.gettext(N_("grade %(grade)s"), grade=s.grade("grade")),
    "closed": lambda s: str(s.data["note"]),
    "reopened": _reopened,
    "deadlines_changed": _deadlines,
    "escalated": _escalated,
    "notification": _notification,
    "flapping_started": _flapping,
    "flapping_stopped": _flapping,
    "alarm_grouped": _grouped,
    "dispatch": _dispatch,
    "plan_changed": _plan,
    "customer_confirmed": _confirmed,
    "paged": _paged,
}


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
            describe=lambda e: describe(e, visit.t, view.ticket.site.timezone),
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
