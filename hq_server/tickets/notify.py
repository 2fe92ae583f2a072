"""Notifications: an outbox table, filled in the transaction that decides to notify, and sent
by the scheduler. Webhooks are JSON POSTs signed with HMAC-SHA256; e-mails go through SMTP;
pages (channel `page`, target a user name; hq_server.tickets.paging) go through the user's
contact channels in order (hq_server.channels, hq_server.oncall.contacts), a failed channel
falling back to the next.

A transaction that queues a notification rings the outbox's bell when it commits
(`BELL`): the scheduler's delivery loop wakes at once instead of at its next step, so a page
leaves HQ within moments of the ticket opening. Claimed notifications are sent concurrently,
each attempt bounded by timeouts, so a slow or dead endpoint never holds back the others.

Webhook signing keys are not copied into the outbox: a row names where its key is found
(`secret_ref`: the contact's place in the ticket's escalation chain, or `url` for
settings.webhook_secrets) and the key is looked up again when the webhook is sent. A key that
has gone by then fails the attempt (retried as usual); the webhook is never sent unsigned.

Sending is at-least-once: a notification is claimed (attempt counted, lease set) and committed
before it is sent, and its outcome recorded after. A crash in between sends it again after the
lease, with the same Idempotency-Key header (webhooks) or Message-ID (e-mail), so receivers can
drop the repeat. Failures are retried with exponential backoff up to `notify_max_attempts`;
every attempt is a history entry of the ticket.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import smtplib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any, ClassVar

import httpx
from pydantic import ValidationError
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from hq_server.access.secretbox import SecretUnavailable, box_for, key_file
from hq_server.channels import Channel, ChannelError, DigestItem, EventKind, Page, Prepared
from hq_server.channels import DeliveryError as ChannelDeliveryError
from hq_server.channels import webhook as webhook_format
from hq_server.channels.base import ChannelConfig, Timeouts
from hq_server.channels.catalogue import message
from hq_server.channels.deliver import Attempt, DeliveryOutcome, attempt
from hq_server.core.domain import SYSTEM_ACTOR, TicketAction
from hq_server.core.errors import ConfigError, HQError
from hq_server.core.settings import Settings
from hq_server.oncall import contacts
from hq_server.store.db import Database, insert_ignoring_conflict
from hq_server.store.models import Notification, Ticket
from hq_server.tickets.history import history
from hq_server.tickets.webhook_targets import ALLOW_SETTING, TargetRefused, Unresolvable, pin

logger = logging.getLogger(__name__)

# The webhook format (body encoding, signature, headers) is the generic webhook channel's.
SIGNATURE_HEADER = webhook_format.SIGNATURE_HEADER
IDEMPOTENCY_HEADER = webhook_format.IDEMPOTENCY_HEADER
sign = webhook_format.sign
# A claimed notification is tried again after this long if its outcome was never recorded.
LEASE = timedelta(minutes=5)
BATCH = 20
# secret_ref values: the key of the contact at a (level, index) of the ticket's escalation chain,
# or the key of the target URL in settings.webhook_secrets.
CONTACT_REF = "contact"
URL_REF = "url"
PAGE = "page"
# Notifications sent at once (threads); each attempt bounded by the channels' timeouts.
SEND_WORKERS = 16
# Rung after a transaction that queued notifications commits (see the module doc).
BELL = threading.Event()
_RING = "notify_ring"


def _ring(session: Session) -> None:
    session.info.pop(_RING, None)
    BELL.set()


class DeliveryError(Exception):
    """A notification could not be delivered (the message says why)."""


def enqueue(
    session: Session,
    *,
    ticket_id: int | None,
    channel: str,
    target: str,
    secret_ref: str | None,
    payload: dict[str, Any],
    key: str,
    now: datetime,
    priority: int = 3,
) -> bool:
    """Add a notification to the outbox once per idempotency key; True if it is new.

    `priority`: the ticket's grade; due notifications are claimed lowest first."""
    values = {
        "ticket_id": ticket_id,
        "channel": channel,
        "target": target,
        "secret_ref": secret_ref,
        "payload": payload,
        "idempotency_key": key,
        "attempts": 0,
        "next_attempt_at": now,
        "status": "pending",
        "last_error": "",
        "created_at": now,
        "sent_at": None,
        "priority": priority,
    }
    dialect = session.get_bind().dialect.name
    stmt = insert_ignoring_conflict(dialect, Notification, values, ["idempotency_key"])
    inserted = session.execute(stmt.returning(Notification.id)).scalar_one_or_none()
    if inserted is not None and not session.info.get(_RING):
        session.info[_RING] = True
        event.listen(session, "after_commit", _ring, once=True)
    return inserted is not None


def secret_ref(
    contact: dict[str, Any], url: str, contact_at: tuple[int, int], settings: Settings
) -> str | None:
    """Where the webhook key of `contact` is found again when sending; None: sent unsigned.

    The contact's own key wins over the one configured for its URL.
    """
    if contact.get("webhook_secret"):
        level, index = contact_at
        return f"{CONTACT_REF}:{level}:{index}"
    if settings.webhook_secrets.get(url):
        return URL_REF
    return None


def notify_contact(
    session: Session,
    ticket: Ticket,
    contact: dict[str, Any],
    payload: dict[str, Any],
    key: str,
    now: datetime,
    settings: Settings,
    *,
    contact_at: tuple[int, int],
) -> int:
    """Queue the e-mail and/or webhook of one contact; returns how many were new.

    `contact_at` is the contact's (level, index) in the ticket's escalation chain: where its
    webhook key is looked up again when sending.
    """
    count = 0
    if contact.get("email"):
        count += enqueue(
            session,
            ticket_id=ticket.id,
            channel="email",
            target=contact["email"],
            secret_ref=None,
            payload=payload,
            key=f"{key}:email",
            now=now,
            priority=ticket.grade,
        )
    url = contact.get("webhook_url")
    if url:
        count += enqueue(
            session,
            ticket_id=ticket.id,
            channel="webhook",
            target=url,
            secret_ref=secret_ref(contact, url, contact_at, settings),
            payload=payload,
            key=f"{key}:webhook",
            now=now,
            priority=ticket.grade,
        )
    return count


def resolve_secret(
    session: Session, ticket_id: int | None, target: str, ref: str, settings: Settings
) -> str:
    """The webhook key `ref` names, looked up now; DeliveryError if it is no longer there."""
    kind, _, position = ref.partition(":")
    if kind == URL_REF:
        secret = settings.webhook_secrets.get(target)
        if secret:
            return secret
        raise DeliveryError("no webhook key for this URL in webhook_secrets; not sent unsigned")
    if kind == CONTACT_REF and ticket_id is not None:
        ticket = session.get(Ticket, ticket_id)
        contact = _contact_at(ticket.escalation if ticket else None, position)
        # The same URL too: a key is only ever sent to the receiver it was configured for.
        if contact.get("webhook_url") == target and contact.get("webhook_secret"):
            try:
                return box_for(settings).open(str(contact["webhook_secret"]))
            except SecretUnavailable:
                raise DeliveryError(
                    f"the webhook key of {ref} does not open with HQ's key file "
                    f"({key_file(settings)}); not sent unsigned"
                ) from None
            except ConfigError as exc:
                raise DeliveryError(f"{exc}; not sent unsigned") from None
    raise DeliveryError(f"the webhook key of {ref} is gone from the ticket's chain; not sent")


def _contact_at(escalation: dict[str, Any] | None, position: str) -> dict[str, Any]:
    """The contact at "<level>:<index>" of a ticket's chain snapshot, or {}."""
    level, _, index = position.partition(":")
    try:
        contact = (escalation or {})["levels"][int(level)]["contacts"][int(index)]
    except (KeyError, IndexError, TypeError, ValueError):
        return {}
    return contact if isinstance(contact, dict) else {}


@dataclass(frozen=True, slots=True)
class Claimed:
    """A notification claimed for one attempt (a detached copy of what sending needs)."""

    id: int
    ticket_id: int | None
    channel: str
    target: str
    secret: str | None  # the webhook key, looked up at claim time; held in memory only
    payload: dict[str, Any]
    key: str
    attempt: int
    unsendable: str | None = None  # why this attempt fails without sending (a missing key)
    page: Page | None = None  # a page: what it says, in the contact's language
    channels: tuple[Channel, ...] = field(default=(), repr=False)  # a page: the contact's
    user_id: int | None = None  # a page: the contact's user id


def _claim(db: Database, now: datetime, settings: Settings) -> list[Claimed]:
    with db.writer() as session, session.begin():
        stmt = (
            select(Notification)
            .where(Notification.status == "pending", Notification.next_attempt_at <= now)
            .order_by(Notification.priority, Notification.next_attempt_at, Notification.id)
            .limit(BATCH)
        )
        if db.dialect == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        claimed = []
        for row in session.scalars(stmt).all():
            row.attempts += 1
            row.next_attempt_at = now + LEASE
            secret, unsendable = None, None
            page: Page | None = None
            channels: tuple[Channel, ...] = ()
            user_id: int | None = None
            if row.channel == PAGE:
                try:
                    page, channels, user_id = _page_of(session, row, settings)
                except (
                    DeliveryError,
                    ChannelError,
                    HQError,
                    SecretUnavailable,
                    ValidationError,
                ) as exc:
                    unsendable = f"{type(exc).__name__}: {exc}"
            elif row.secret_ref is not None:
                try:
                    secret = resolve_secret(
                        session, row.ticket_id, row.target, row.secret_ref, settings
                    )
                except DeliveryError as exc:
                    unsendable = str(exc)
            claimed.append(
                Claimed(
                    id=row.id,
                    ticket_id=row.ticket_id,
                    channel=row.channel,
                    target=row.target,
                    secret=secret,
                    payload=row.payload,
                    key=row.idempotency_key,
                    attempt=row.attempts,
                    unsendable=unsendable,
                    page=page,
                    channels=channels,
                    user_id=user_id,
                )
            )
        return claimed


def send_webhook(n: Claimed, timeout: float, *, allow_private: bool = False) -> None:
    """POST the payload as JSON with signature and idempotency headers; 2xx is success.

    The target's name is resolved first and the POST goes to the address checked (a public
    one, unless allow_private; see hq_server.tickets.webhook_targets); anything else is not sent.
    """
    prepared = webhook_format.prepare(n.target, n.payload, n.key, n.secret)
    try:
        target = pin(n.target, allow_private=allow_private)
    except TargetRefused as exc:
        why = f"not sent: {exc}"
        if not allow_private and not isinstance(exc, Unresolvable):
            why += (
                "; HQ does not send webhooks to its own machine or to private networks "
                f"(set {ALLOW_SETTING} to allow it)"
            )
        raise DeliveryError(why) from None
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            for i, url in enumerate(target.urls):
                try:
                    response = client.post(
                        url,
                        content=prepared.body,
                        headers=dict(prepared.headers) | target.headers,
                        extensions=target.extensions,
                    )
                    break
                except httpx.ConnectError:
                    if i == len(target.urls) - 1:
                        raise  # no address of the name took the connection
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"HTTP {response.status_code}")


def stable_message_id(key: str, domain: str) -> str:
    """The Message-ID of a notification: the same for every attempt (email.utils.make_msgid
    adds the time and a random number, so a repeat would not be recognised)."""
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}.stationwatch@{domain}>"


def send_email(n: Claimed, settings: Settings) -> None:
    """Send the notification as a plain-text e-mail through the configured SMTP server."""
    message = EmailMessage()
    message["From"] = settings.smtp_sender
    message["To"] = n.target
    message["Subject"] = str(n.payload.get("subject", "StationWatch notification"))
    # The same Message-ID on every attempt lets mail systems drop a repeat.
    domain = settings.smtp_sender.rpartition("@")[2] or "stationwatch"
    message["Message-ID"] = stable_message_id(n.key, domain)
    message[IDEMPOTENCY_HEADER] = n.key
    message.set_content(str(n.payload.get("text", json.dumps(n.payload, indent=2))))
    try:
        with smtplib.SMTP(
            settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout
        ) as smtp:
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from None


def _record(
    session: Session,
    n: Claimed,
    error: str | None,
    now: datetime,
    settings: Settings,
    *,
    retryable: bool = True,
    pages: DeliveryOutcome | None = None,
) -> str:
    row = session.get_one(Notification, n.id)
    if error is None:
        row.status, row.sent_at, row.last_error = "sent", now, ""
        outcome = "sent"
    elif n.attempt >= settings.notify_max_attempts or not retryable:
        row.status, row.last_error = "failed", error[:2000]
        outcome = f"failed for good ({error})"
    else:
        delay = settings.notify_backoff * (2 ** (n.attempt - 1))
        row.next_attempt_at = now + delay
        row.last_error = error[:2000]
        outcome = f"failed ({error}), retry at {row.next_attempt_at.isoformat()}"
    if pages is not None and n.user_id is not None:
        contacts.record(session, n.user_id, pages.attempts, now)
    if n.ticket_id is not None:
        ticket = session.get_one(Ticket, n.ticket_id)
        what = "page" if n.channel == PAGE else n.channel
        detail = f"{what} to {n.target}, attempt {n.attempt}: " + (
            f"sent by {pages.delivered_by.target}" if pages and pages.delivered_by else outcome
        )
        history(
            session,
            ticket,
            now,
            SYSTEM_ACTOR,
            TicketAction.NOTIFICATION,
            detail,
            notification_id=n.id,
            channel=n.channel,
            target=n.target,
            attempt=n.attempt,
            ok=error is None,
            status=row.status,
            error=error,
            retry_at=(
                row.next_attempt_at.isoformat()
                if row.status == "pending" and row.next_attempt_at
                else None
            ),
            delivered_by=pages.delivered_by.target if pages and pages.delivered_by else None,
            kind=n.page.kind.value if n.page else None,
            attempts=[
                {
                    "kind": a.kind,
                    "target": a.target,
                    "ok": a.ok,
                    "error": a.error,
                    "seconds": round(a.seconds, 3),
                }
                for a in (pages.attempts if pages else ())
            ],
        )
    return row.status


class _Guarded:
    """A contact's channel whose HTTP requests go only where HQ's webhooks may go (no
    loopback or private networks unless allowed; see hq_server.tickets.webhook_targets)."""

    kind: ClassVar[str] = "guarded"
    config_model: ClassVar[type[ChannelConfig]] = ChannelConfig

    def __init__(self, channel: Channel, allow_private: bool) -> None:
        self.channel = channel
        self.allow_private = allow_private

    @property
    def config(self) -> ChannelConfig:
        return self.channel.config

    @property
    def target(self) -> str:
        return self.channel.target

    def render(self, page: Page, now: datetime | None = None) -> Prepared:
        return self.channel.render(page, now)

    def send(self, prepared: Prepared, timeouts: Timeouts) -> None:
        if prepared.url.startswith(("http://", "https://")):
            try:
                pin(prepared.url, allow_private=self.allow_private)
            except TargetRefused as exc:
                raise ChannelDeliveryError(
                    f"not sent: {exc} (set {ALLOW_SETTING} to allow it)", retryable=False
                ) from None
        self.channel.send(prepared, timeouts)


def send_page(
    n: Claimed, settings: Settings, now: datetime, *, every: bool = False
) -> DeliveryOutcome:
    """Try the contact's channels in order until one delivers the page; `every`: send on
    all of them at once (a policy asking for every channel), delivered if one accepted it."""
    page = n.page
    assert page is not None
    timeouts = Timeouts(settings.page_connect_timeout, settings.page_read_timeout)

    def one(channel: Channel) -> Attempt:
        guarded = _Guarded(channel, settings.allow_private_webhooks)
        return replace(attempt(guarded, page, timeouts, now), kind=channel.kind)

    if every and len(n.channels) > 1:
        with ThreadPoolExecutor(max_workers=len(n.channels)) as pool:
            return DeliveryOutcome(tuple(pool.map(one, n.channels)))
    attempts: list[Attempt] = []
    for channel in n.channels:
        result = one(channel)
        attempts.append(result)
        if result.ok:
            break
    return DeliveryOutcome(tuple(attempts))


@dataclass(slots=True)
class _Outcome:
    n: Claimed
    error: str | None
    at: datetime
    retryable: bool
    pages: DeliveryOutcome | None


class _Recorder:
    """Records outcomes as sends finish, several in one transaction (group commit): while one
    thread waits for the database writer (behind an ingest batch, say), the outcomes finishing
    meanwhile pile up and go into its next transaction, not one transaction each."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self._pending: list[_Outcome] = []
        self._pending_lock = threading.Lock()
        self._writing = threading.Lock()

    def add(self, outcome: _Outcome) -> None:
        with self._pending_lock:
            self._pending.append(outcome)
        with self._writing:
            with self._pending_lock:
                batch, self._pending = self._pending, []
            if not batch:
                return  # another thread recorded it with its own
            with self.db.writer() as session, session.begin():
                statuses = [
                    _record(
                        session,
                        o.n,
                        o.error,
                        o.at,
                        self.settings,
                        retryable=o.retryable,
                        pages=o.pages,
                    )
                    for o in batch
                ]
        for o, status in zip(batch, statuses, strict=True):
            logger.info(
                "notification %s (%s to %s) attempt %d: %s",
                o.n.id,
                o.n.channel,
                o.n.target,
                o.n.attempt,
                status if o.error is None else f"{status}: {o.error}",
            )


def _send_one(
    recorder: _Recorder, n: Claimed, settings: Settings, now: Callable[[], datetime]
) -> None:
    pages: DeliveryOutcome | None = None
    retryable = True
    try:
        if n.unsendable is not None:
            raise DeliveryError(n.unsendable)
        if n.channel == PAGE:
            # Vendors check a signed request's timestamp against their own clock: the wall
            # clock, whatever clock HQ runs on.
            pages = send_page(n, settings, now_utc(), every=bool(n.payload.get("all_channels")))
            if not n.channels:
                raise DeliveryError("the contact has no channel")
            if not pages.delivered:
                retryable = pages.retryable
                raise DeliveryError(pages.summary())
        elif n.channel == "webhook":
            send_webhook(n, settings.webhook_timeout, allow_private=settings.allow_private_webhooks)
        else:
            send_email(n, settings)
        error = None
    except DeliveryError as exc:
        error = str(exc)
    recorder.add(_Outcome(n, error, now(), retryable, pages))


def deliver_due(
    db: Database,
    now: datetime,
    settings: Settings,
    *,
    clock: Callable[[], datetime] | None = None,
) -> int:
    """Send every notification due at `now` once, at the same time in threads; returns how
    many attempts were made. `clock` gives the time outcomes are recorded at (default `now`)."""
    attempts = 0
    while True:
        claimed = _claim(db, now, settings)
        if not claimed:
            return attempts
        when = clock or (lambda: now)
        recorder = _Recorder(db, settings)
        with ThreadPoolExecutor(max_workers=min(SEND_WORKERS, len(claimed))) as pool:
            for future in [pool.submit(_send_one, recorder, n, settings, when) for n in claimed]:
                future.result()
        attempts += len(claimed)
        if len(claimed) < BATCH:
            return attempts


# ---- pages ----------------------------------------------------------------------------------

_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")


def page_language(payload: dict[str, Any], contact_language: str) -> str:
    """The language of a page: the policy's, else the contact's."""
    language = payload.get("language") or contact_language
    return language if language in ("zh-CN", "en") else "zh-CN"


def _when(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def ticket_link(settings: Settings, ticket_id: int | None) -> str:
    """The ticket (or, without one, the ticket list) in the console."""
    base = settings.console_url.rstrip("/")
    return f"{base}/tickets/{ticket_id}" if ticket_id is not None else f"{base}/tickets"


def build_page(payload: dict[str, Any], language: str, key: str, settings: Settings) -> Page:
    """The Page a stored page notification describes, in `language`."""
    facts = payload.get("page", {})
    kind = EventKind(facts.get("kind", "opened"))
    idem = key if _KEY.match(key) else "sw-" + hashlib.sha256(key.encode()).hexdigest()[:40]
    zone = facts.get("zone") or "UTC"
    if kind is EventKind.DIGEST:
        items = tuple(
            DigestItem(
                ticket_id=i["ticket_id"],
                ticket_number=i["ticket_number"],
                grade=i["grade"],
                site=i["site"],
                device=i.get("device"),
                title=i["title"],
                deadline=_when(i.get("deadline")),
                link=ticket_link(settings, i["ticket_id"]),
            )
            for i in facts.get("items", [])
        )
        sites = ", ".join(facts.get("sites", []))[:300] or "-"
        count = int(facts.get("count", len(items)))
        more = count > len(items)
        return Page(
            kind=kind,
            language=language,
            idempotency_key=idem,
            grade=facts.get("grade", 5),
            title=sites,
            detail=message(language, "digest.more", shown=len(items)) if more else "",
            total=count,
            zone=zone,
            link=ticket_link(settings, None),
            items=items,
        )  # fmt: skip
    detail = ""
    if kind is EventKind.UNDELIVERED:
        detail = message(
            language,
            "undelivered.detail",
            user=facts.get("undelivered_to", "?"),
            error=facts.get("error", ""),
        )
    return Page(
        kind=kind,
        language=language,
        idempotency_key=idem,
        ticket_id=facts.get("ticket_id"),
        ticket_number=facts.get("ticket_number"),
        grade=facts.get("grade", 1),
        site=facts.get("site", ""),
        device=facts.get("device"),
        title=(facts.get("title") or "?")[:500],
        detail=detail[:4000],
        deadline=_when(facts.get("deadline")),
        deadline_kind=facts.get("deadline_kind", "ack"),
        zone=zone,
        link=ticket_link(settings, facts.get("ticket_id")),
    )


def _page_of(
    session: Session, row: Notification, settings: Settings
) -> tuple[Page, tuple[Channel, ...], int | None]:
    """A claimed page's message and the contact's channels (the policy's kinds, if named)."""
    reach = contacts.reach(session, row.target, settings)
    if reach is None:
        raise DeliveryError(f"user {row.target!r} has no contact methods")
    language = page_language(row.payload, reach.language)
    channels = reach.channels
    kinds = row.payload.get("channels") or []
    if kinds:
        channels = tuple(c for c in channels if c.kind in kinds)
    return build_page(row.payload, language, row.idempotency_key, settings), channels, reach.user_id


def now_utc() -> datetime:
    """The wall clock (the time pages' outcomes are recorded at by the delivery loop)."""
    return datetime.now(UTC)


def of_ticket(session: Session, ticket_id: int) -> list[Notification]:
    """A ticket's notifications (pages, escalation e-mails and webhooks), oldest first."""
    return list(
        session.scalars(
            select(Notification)
            .where(Notification.ticket_id == ticket_id)
            .order_by(Notification.id)
        )
    )


def kind_of(notification: Notification) -> str | None:
    """What a notification was about: a page's kind (opened, repeat, ...) or the event of an
    escalation notification."""
    page = notification.payload.get("page") or {}
    kind = page.get("kind") or notification.payload.get("event")
    return str(kind) if kind else None
