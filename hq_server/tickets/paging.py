"""Paging: who is told when a ticket opens or its grade rises, repeated until acknowledged.

The policy of the ticket's grade (paging_policies) names whom to page: the on-duty engineer
and the backup of the team covering the site (hq_server.oncall), the team's service manager.
Pages go into the notification outbox (channel `page`, target the user name) in the
transaction that opened the ticket; the outbox sends them through the user's contact channels
in order, falling back to the next (hq_server.tickets.notify). Then:

- a policy with `repeat_minutes` pages the same people again until the ticket is acknowledged
  (`repeat_due`, run by the scheduler);
- a policy with `digest` (grade 4 by default) sends no page but a daily digest at
  `digest_time` in the team's zone;
- a contact who got `page_rate_limit` pages within `page_rate_window` gets no more: the tickets
  wait in one digest sent `page_digest_delay` later (`digests_due`), so an outage of 500
  devices sends each person a handful of pages and one digest, never 500;
- a page no channel delivered within `page_undelivered_after` pages the team's backup and
  service manager about it (`undelivered_due`).

`ticket_opened` is the one function every path that opens a ticket calls (the ticket book for
automatic tickets, and manual tickets); `grade_raised` the one for a grade made worse.
The escalation chain runs from the deadlines as before (hq_server.tickets.escalation).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hq_server.channels.base import EventKind
from hq_server.core.domain import DONE_STATUSES, SYSTEM_ACTOR, TicketAction
from hq_server.core.settings import Settings
from hq_server.oncall import teams
from hq_server.oncall.teams import TeamRota
from hq_server.store.db import insert_ignoring_conflict
from hq_server.store.models import (
    Notification,
    OncallTeam,
    PageDigestItem,
    PagingPolicy,
    Site,
    Ticket,
    TicketPaging,
)
from hq_server.tickets import notify
from hq_server.tickets.history import history

logger = logging.getLogger(__name__)

PAGE = "page"
ON_DUTY, BACKUP, SERVICE_MANAGER = "on_duty", "backup", "service_manager"
WHO = (ON_DUTY, BACKUP, SERVICE_MANAGER)
# An escalation chain's contact naming this user pages the ticket's on-duty engineer.
ON_DUTY_USER = "@on_duty"
_COUNTS = "paging_counts"
_POLICIES = "paging_policies"
# At most this many repeats, digests or undelivered pages handled per scheduler step.
BATCH = 200
# A digest lists this many tickets, the worst first, and counts the rest (chat robots refuse
# long messages: WeCom's markdown ends at 4096 bytes).
DIGEST_ITEMS = 20


@dataclass(frozen=True, slots=True)
class PagingLimits:
    """The rate limit and digest settings paging needs when it queues pages."""

    rate_limit: int = 5
    rate_window: timedelta = timedelta(minutes=10)
    digest_delay: timedelta = timedelta(minutes=2)
    digest_time: time = time(8, 0)
    undelivered_after: timedelta = timedelta(minutes=1)

    @classmethod
    def of(cls, settings: Settings) -> PagingLimits:
        """The limits configured in HQ's settings."""
        hours, minutes = (int(p) for p in settings.digest_time.split(":"))
        return cls(
            rate_limit=settings.page_rate_limit,
            rate_window=settings.page_rate_window,
            digest_delay=settings.page_digest_delay,
            digest_time=time(hours, minutes),
            undelivered_after=settings.page_undelivered_after,
        )


DEFAULT_LIMITS = PagingLimits()


# ---- policies and recipients ----------------------------------------------------------------


def policy_for(session: Session, grade: int) -> PagingPolicy | None:
    """The paging policy of a grade (cached for the transaction)."""
    cache: dict[int, PagingPolicy] | None = session.info.get(_POLICIES)
    if cache is None:
        cache = {p.grade: p for p in session.scalars(select(PagingPolicy))}
        session.info[_POLICIES] = cache
    return cache.get(grade)


def recipients(who: Iterable[str], rota: TeamRota | None, on_duty: str, at: datetime) -> list[str]:
    """The user names `who` names, in order, each once ('' and unknown roles left out)."""
    names: list[str] = []
    for role in who:
        if role == ON_DUTY:
            name = on_duty or (rota.primary.who(at) if rota else "")
        elif role == BACKUP:
            name = rota.backup.who(at) if rota else ""
        elif role == SERVICE_MANAGER:
            name = rota.service_manager if rota else ""
        else:
            name = ""
        if name and name not in names:
            names.append(name)
    return names


def _site(session: Session, ticket: Ticket) -> Site:
    site = ticket.__dict__.get("site")
    return site if isinstance(site, Site) else session.get_one(Site, ticket.site_id)


def page_facts(ticket: Ticket, site: Site, kind: EventKind) -> dict[str, Any]:
    """What a page about `ticket` says (without link and language: added when sent)."""
    acknowledged = ticket.acknowledged_at is not None
    deadline = ticket.restore_due_at if acknowledged else ticket.ack_due_at
    return {
        "kind": kind.value,
        "ticket_id": ticket.id,
        "ticket_number": ticket.number,
        "grade": ticket.grade,
        "site": site.name,
        "device": ticket.device_id or None,
        "title": ticket.title or ticket.code,
        "deadline": deadline.isoformat() if deadline else None,
        "deadline_kind": "restore" if acknowledged else "ack",
        "zone": site.timezone or "UTC",
    }


# ---- queueing pages ---------------------------------------------------------------------------


def _sent_recently(session: Session, user: str, now: datetime, limits: PagingLimits) -> int:
    """Pages queued for `user` within the rate window (counted once per transaction)."""
    counts: dict[str, int] = session.info.setdefault(_COUNTS, {})
    if user not in counts:
        counts[user] = (
            session.scalar(
                select(func.count())
                .select_from(Notification)
                .where(
                    Notification.channel == PAGE,
                    Notification.target == user,
                    Notification.created_at > now - limits.rate_window,
                )
            )
            or 0
        )
    return counts[user]


def _hold(
    session: Session,
    user: str,
    ticket_id: int,
    reason: str,
    due_at: datetime,
    team_id: int | None,
    now: datetime,
) -> bool:
    """Leave a ticket for the user's next digest; True if it was not there yet."""
    values = {
        "username": user,
        "ticket_id": ticket_id,
        "reason": reason,
        "team_id": team_id,
        "due_at": due_at,
        "created_at": now,
        "sent_at": None,
    }
    dialect = session.get_bind().dialect.name
    stmt = insert_ignoring_conflict(
        dialect, PageDigestItem, values, ["username", "ticket_id", "reason"]
    )
    return session.execute(stmt.returning(PageDigestItem.id)).scalar_one_or_none() is not None


def page(
    session: Session,
    user: str,
    facts: dict[str, Any],
    key: str,
    now: datetime,
    limits: PagingLimits,
    *,
    team_id: int | None,
    policy: PagingPolicy | None = None,
) -> str:
    """Queue one page for `user` unless over the rate limit (then held for a digest).

    Returns 'paged', 'held' or 'repeat' (already queued under this key)."""
    ticket_id = facts.get("ticket_id")
    if _sent_recently(session, user, now, limits) >= limits.rate_limit and ticket_id:
        _hold(session, user, int(ticket_id), "rate_limit", now + limits.digest_delay, team_id, now)
        return "held"
    payload = {
        "page": facts,
        "user": user,
        "team_id": team_id,
        "channels": (policy.channels.get("kinds", []) if policy is not None else []),
        "all_channels": bool(policy.channels.get("all")) if policy is not None else False,
        "language": policy.language if policy is not None else "",
    }
    new = notify.enqueue(
        session,
        ticket_id=int(ticket_id) if ticket_id else None,
        channel=PAGE,
        target=user,
        secret_ref=None,
        payload=payload,
        key=key,
        now=now,
        # An undelivered page is as urgent as a major fault, whatever the ticket's grade.
        priority=1 if facts.get("kind") == EventKind.UNDELIVERED.value else int(facts["grade"]),
    )
    if new:
        counts: dict[str, int] = session.info.setdefault(_COUNTS, {})
        counts[user] = counts.get(user, 0) + 1
    return "paged" if new else "repeat"


def next_digest_at(now: datetime, zone: str, at: time) -> datetime:
    """The next daily digest time after `now` in `zone`."""
    tz = ZoneInfo(zone)
    local = now.astimezone(tz)
    candidate = datetime.combine(local.date(), at, tzinfo=tz)
    if candidate.astimezone(UTC) <= now:
        candidate = datetime.combine(local.date() + timedelta(days=1), at, tzinfo=tz)
    return candidate.astimezone(UTC)


def _page_all(
    session: Session,
    ticket: Ticket,
    site: Site,
    who: Sequence[str],
    kind: EventKind,
    key: str,
    now: datetime,
    limits: PagingLimits,
    rota: TeamRota | None,
    policy: PagingPolicy,
) -> dict[str, list[str]]:
    team_id = rota.id if rota else None
    outcome: dict[str, list[str]] = {"paged": [], "held": [], "digest": []}
    facts = page_facts(ticket, site, kind)
    for user in who:
        if policy.digest:
            zone = rota.zone if rota else (site.timezone or "UTC")
            due = next_digest_at(now, zone, limits.digest_time)
            _hold(session, user, ticket.id, "daily", due, team_id, now)
            outcome["digest"].append(user)
            continue
        result = page(
            session, user, facts, f"{key}:{user}", now, limits, team_id=team_id, policy=policy
        )
        if result in ("paged", "held"):
            outcome[result].append(user)
    return outcome


def _note(
    session: Session,
    ticket: Ticket,
    now: datetime,
    what: str,
    out: dict[str, list[str]],
    **about: object,
) -> None:
    parts = []
    if out["paged"]:
        parts.append(f"paged {', '.join(out['paged'])}")
    if out["held"]:
        parts.append(f"held for a digest (rate limit): {', '.join(out['held'])}")
    if out["digest"]:
        parts.append(f"in the daily digest of {', '.join(out['digest'])}")
    detail = f"{what}: " + ("; ".join(parts) if parts else "nobody to page")
    history(session, ticket, now, SYSTEM_ACTOR, TicketAction.PAGED, detail, **out, **about)


def ticket_opened(
    session: Session, tickets: Sequence[Ticket], now: datetime, limits: PagingLimits
) -> int:
    """Page for newly opened tickets (already inserted: they have ids); returns pages queued.

    Called by every path that opens a ticket, in the transaction that opens it."""
    queued = 0
    for ticket in tickets:
        policy = policy_for(session, ticket.grade)
        if policy is None:
            continue
        site = _site(session, ticket)
        rota = teams.team_for_site(session, site, now)
        who = recipients(policy.on_open.get("who", []), rota, ticket.on_duty, now)
        out = _page_all(
            session, ticket, site, who, EventKind.OPENED, f"page:{ticket.id}:opened", now,
            limits, rota, policy,
        )  # fmt: skip
        queued += len(out["paged"])
        if not who:  # nobody to page: no paging state (installations without teams pay nothing)
            if rota is not None and policy.on_open.get("who"):
                _note(session, ticket, now, "ticket opened", out, event="opened")
            continue
        repeat = policy.repeat_minutes if not policy.digest else None
        session.add(
            TicketPaging(
                ticket_id=ticket.id,
                team_id=rota.id if rota else None,
                recipients={"users": who},
                repeat_minutes=repeat,
                next_repeat_at=now + timedelta(minutes=repeat) if repeat else None,
                repeats=0,
            )
        )
        _note(session, ticket, now, "ticket opened", out, event="opened")
    return queued


def grade_raised(
    session: Session, ticket: Ticket, old: int, now: datetime, limits: PagingLimits
) -> int:
    """Page for a ticket whose grade became worse (a lower number); returns pages queued."""
    if ticket.grade >= old or ticket.status in DONE_STATUSES:
        return 0
    policy = policy_for(session, ticket.grade)
    if policy is None:
        return 0
    site = _site(session, ticket)
    rota = teams.team_for_site(session, site, now)
    who = recipients(policy.on_raise.get("who", []), rota, ticket.on_duty, now)
    out = _page_all(
        session, ticket, site, who, EventKind.REGRADED,
        f"page:{ticket.id}:regraded:{old}:{ticket.grade}", now, limits, rota, policy,
    )  # fmt: skip
    paging = session.get(TicketPaging, ticket.id)
    if paging is None:
        paging = TicketPaging(ticket_id=ticket.id, repeats=0, recipients={"users": []})
        session.add(paging)
    paging.team_id = rota.id if rota else paging.team_id
    paging.recipients = {"users": list(dict.fromkeys([*paging.recipients["users"], *who]))}
    repeat = policy.repeat_minutes if who and not policy.digest else None
    if repeat and ticket.acknowledged_at is None:
        paging.repeat_minutes = repeat
        paging.next_repeat_at = now + timedelta(minutes=repeat)
    if who or rota is not None:
        _note(
            session, ticket, now, f"grade {old} -> {ticket.grade}", out,
            event="regraded", old=old, new=ticket.grade,
        )  # fmt: skip
    return len(out["paged"])


# ---- the scheduler's parts ------------------------------------------------------------------


def repeat_due(session: Session, now: datetime, limits: PagingLimits) -> int:
    """Page again for unacknowledged tickets whose repeat is due; returns pages queued."""
    rows = session.execute(
        select(TicketPaging, Ticket)
        .join(Ticket, Ticket.id == TicketPaging.ticket_id)
        .where(TicketPaging.next_repeat_at <= now)
        .order_by(TicketPaging.next_repeat_at)
        .limit(BATCH)
    ).all()
    queued = 0
    for paging, ticket in rows:
        if ticket.acknowledged_at is not None or ticket.status in DONE_STATUSES:
            paging.next_repeat_at = None
            continue
        paging.repeats += 1
        minutes = paging.repeat_minutes or 0
        paging.next_repeat_at = now + timedelta(minutes=minutes) if minutes else None
        policy = policy_for(session, ticket.grade)
        facts = page_facts(ticket, ticket.site, EventKind.REPEAT)
        paged = []
        for user in paging.recipients.get("users", []):
            key = f"page:{ticket.id}:repeat:{paging.repeats}:{user}"
            if page(session, user, facts, key, now, limits, team_id=paging.team_id,
                    policy=policy) == "paged":  # fmt: skip
                paged.append(user)
        queued += len(paged)
        history(
            session, ticket, now, SYSTEM_ACTOR, TicketAction.PAGED,
            f"not acknowledged: paged again ({paging.repeats}): {', '.join(paged) or 'nobody'}",
            repeat=paging.repeats, paged=paged,
        )  # fmt: skip
    return queued


def digests_due(session: Session, now: datetime) -> int:
    """Send each contact with a digest item due one digest of everything held for them."""
    users = session.scalars(
        select(PageDigestItem.username)
        .where(PageDigestItem.sent_at.is_(None), PageDigestItem.due_at <= now)
        .distinct()
        .limit(BATCH)
    ).all()
    sent = 0
    for user in users:
        items = session.execute(
            select(PageDigestItem, Ticket)
            .join(Ticket, Ticket.id == PageDigestItem.ticket_id)
            .where(
                PageDigestItem.username == user,
                PageDigestItem.sent_at.is_(None),
                (PageDigestItem.due_at <= now) | (PageDigestItem.reason == "rate_limit"),
            )
            .order_by(Ticket.grade, Ticket.id)
        ).all()
        if not items:
            continue
        first, _ = items[0]
        tickets = list(dict.fromkeys(t for _, t in items))
        for item, _ in items:
            item.sent_at = now
        worst = min(t.grade for t in tickets)
        facts = {
            "kind": EventKind.DIGEST.value,
            "grade": worst,
            "zone": tickets[0].site.timezone or "UTC",
            "sites": sorted({t.site.name for t in tickets})[:20],
            "items": [
                {
                    **page_facts(t, t.site, EventKind.DIGEST),
                    "kind": None,
                }
                for t in tickets[:DIGEST_ITEMS]
            ],
            "count": len(tickets),
        }
        notify.enqueue(
            session,
            ticket_id=None,
            channel=PAGE,
            target=user,
            secret_ref=None,
            payload={"page": facts, "user": user, "team_id": first.team_id, "channels": [],
                     "language": ""},
            key=f"digest:{user}:{first.id}",
            now=now,
            priority=worst,
        )  # fmt: skip
        sent += 1
        logger.info("digest of %d tickets queued for %s", len(tickets), user)
    return sent


def undelivered_due(session: Session, now: datetime, limits: PagingLimits) -> int:
    """Page the team's backup and service manager about pages no channel delivered in time."""
    since = now - limits.undelivered_after
    rows = session.scalars(
        select(Notification)
        .where(
            Notification.channel == PAGE,
            Notification.status.in_(("pending", "failed")),
            Notification.created_at <= since,
            Notification.created_at > since - timedelta(days=1),
        )
        .order_by(Notification.id)
        .limit(BATCH)
    ).all()
    queued = 0
    for row in rows:
        facts = dict(row.payload.get("page", {}))
        if facts.get("kind") == EventKind.UNDELIVERED.value:
            continue  # no alarm about an alarm
        team_id = row.payload.get("team_id")
        rota = _team(session, team_id, now)
        if rota is None:
            continue
        who = [n for n in recipients((BACKUP, SERVICE_MANAGER), rota, "", now) if n != row.target]
        facts["kind"] = EventKind.UNDELIVERED.value
        facts["undelivered_to"] = row.target
        facts["error"] = row.last_error[:300]
        if facts.get("items") is not None or not facts.get("ticket_id"):
            continue  # a digest: its tickets were paged or held on their own
        for user in who:
            key = f"undelivered:{row.id}:{user}"
            if page(session, user, facts, key, now, limits, team_id=team_id) == "paged":
                queued += 1
                logger.warning(
                    "page %s to %s undelivered since %s: told %s",
                    row.id, row.target, row.created_at.isoformat(), user,
                )  # fmt: skip
    return queued


def _team(session: Session, team_id: Any, now: datetime) -> TeamRota | None:
    if not isinstance(team_id, int):
        return None
    team = session.get(OncallTeam, team_id)
    return teams.load_team(session, team, now) if team is not None else None
