"""Notifications: an outbox table, filled in the transaction that decides to notify, and sent
by the scheduler. Webhooks are JSON POSTs signed with HMAC-SHA256; e-mails go through SMTP.

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
import smtplib
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from hq_server.access.secretbox import SecretUnavailable, box_for, key_file
from hq_server.channels import webhook as webhook_format
from hq_server.core.domain import SYSTEM_ACTOR, TicketAction
from hq_server.core.errors import ConfigError
from hq_server.core.settings import Settings
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
) -> bool:
    """Add a notification to the outbox once per idempotency key; True if it is new."""
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
    }
    dialect = session.get_bind().dialect.name
    stmt = insert_ignoring_conflict(dialect, Notification, values, ["idempotency_key"])
    inserted = session.execute(stmt.returning(Notification.id)).scalar_one_or_none()
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


def _claim(db: Database, now: datetime, settings: Settings) -> list[Claimed]:
    with db.writer() as session, session.begin():
        stmt = (
            select(Notification)
            .where(Notification.status == "pending", Notification.next_attempt_at <= now)
            .order_by(Notification.next_attempt_at, Notification.id)
            .limit(BATCH)
        )
        if db.dialect == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        claimed = []
        for row in session.scalars(stmt).all():
            row.attempts += 1
            row.next_attempt_at = now + LEASE
            secret, unsendable = None, None
            if row.secret_ref is not None:
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


def send_email(n: Claimed, settings: Settings) -> None:
    """Send the notification as a plain-text e-mail through the configured SMTP server."""
    message = EmailMessage()
    message["From"] = settings.smtp_sender
    message["To"] = n.target
    message["Subject"] = str(n.payload.get("subject", "StationWatch notification"))
    # The same Message-ID on every attempt lets mail systems drop a repeat.
    domain = settings.smtp_sender.rpartition("@")[2] or "stationwatch"
    message["Message-ID"] = make_msgid(
        idstring=hashlib.sha256(n.key.encode()).hexdigest()[:32], domain=domain
    )
    message[IDEMPOTENCY_HEADER] = n.key
    message.set_content(str(n.payload.get("text", json.dumps(n.payload, indent=2))))
    try:
        with smtplib.SMTP(
            settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout
        ) as smtp:
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from None


def _record(db: Database, n: Claimed, error: str | None, now: datetime, settings: Settings) -> str:
    with db.writer() as session, session.begin():
        row = session.get_one(Notification, n.id)
        if error is None:
            row.status, row.sent_at, row.last_error = "sent", now, ""
            outcome = "sent"
        elif n.attempt >= settings.notify_max_attempts:
            row.status, row.last_error = "failed", error[:2000]
            outcome = f"failed for good ({error})"
        else:
            delay = settings.notify_backoff * (2 ** (n.attempt - 1))
            row.next_attempt_at = now + delay
            row.last_error = error[:2000]
            outcome = f"failed ({error}), retry at {row.next_attempt_at.isoformat()}"
        if n.ticket_id is not None:
            ticket = session.get_one(Ticket, n.ticket_id)
            history(
                session,
                ticket,
                now,
                SYSTEM_ACTOR,
                TicketAction.NOTIFICATION,
                f"{n.channel} to {n.target}, attempt {n.attempt}: {outcome}",
                notification_id=n.id,
                channel=n.channel,
                target=n.target,
                attempt=n.attempt,
                ok=error is None,
            )
        return row.status


def deliver_due(db: Database, now: datetime, settings: Settings) -> int:
    """Send every notification due at `now` once; returns how many attempts were made."""
    attempts = 0
    for n in _claim(db, now, settings):
        try:
            if n.unsendable is not None:
                raise DeliveryError(n.unsendable)
            if n.channel == "webhook":
                send_webhook(
                    n, settings.webhook_timeout, allow_private=settings.allow_private_webhooks
                )
            else:
                send_email(n, settings)
            error = None
        except DeliveryError as exc:
            error = str(exc)
        status = _record(db, n, error, now, settings)
        logger.info(
            "notification %s (%s to %s) attempt %d: %s",
            n.id,
            n.channel,
            n.target,
            n.attempt,
            status if error is None else f"{status}: {error}",
        )
        attempts += 1
    return attempts
