"""Engineers' contact methods: per HQ user, channels in order and a language.

Channels are validated by hq_server.channels when saved (a malformed URL, secret or phone
number is refused with the field named: `channels.<index>.<field>`), stored sealed with HQ's
key (their settings hold robot tokens and signing keys) beside what may be shown of them
(kind and target), and built again when a page is sent. An e-mail channel names only the
addresses; HQ's SMTP settings are filled in.

Each page's attempts are counted per channel: a channel failing `unreachable_after` times in a
row marks the contact unreachable (shown by the API) until it delivers again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hq_server.access.secretbox import box_for
from hq_server.access.users import find_user
from hq_server.channels import (
    Channel,
    ChannelConfigError,
    ChannelOptions,
    ChannelRegistry,
    builtin_registry,
)
from hq_server.channels.base import LANGUAGES
from hq_server.channels.deliver import Attempt
from hq_server.core.errors import InvalidInput, NotFound
from hq_server.core.settings import Settings
from hq_server.store.models import EngineerContact, User

REGISTRY: ChannelRegistry = builtin_registry()


def options(settings: Settings) -> ChannelOptions:
    """How strictly channel settings are checked, from HQ's settings."""
    return ChannelOptions(
        allow_insecure=settings.channel_allow_insecure,
        extra_hosts=frozenset(settings.channel_extra_hosts),
    )


def _with_smtp(entry: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """An e-mail entry with HQ's SMTP server filled in where the contact named none."""
    filled = dict(entry)
    if filled.get("kind") == "email":
        filled.setdefault("host", settings.smtp_host)
        filled.setdefault("port", settings.smtp_port)
        filled.setdefault("security", settings.smtp_security)
        filled.setdefault("sender", settings.smtp_sender)
    return filled


def build_channels(entries: Sequence[Mapping[str, Any]], settings: Settings) -> list[Channel]:
    """Channels from stored or submitted entries; InvalidInput names `channels.<i>.<field>`."""
    try:
        return REGISTRY.build_all([_with_smtp(e, settings) for e in entries], options(settings))
    except ChannelConfigError as exc:
        name = exc.problems[0][0]
        index, _, field = name.partition(".")
        loc: tuple[str | int, ...] = (
            ("channels", int(index), *field.split(".")) if (index.isdigit()) else ("channels",)
        )
        detail = "; ".join(f"channels.{n}: {e}" for n, e in exc.problems)
        raise InvalidInput(detail, loc=loc) from None


def save(
    session: Session,
    user: User,
    language: str,
    entries: Sequence[Mapping[str, Any]],
    settings: Settings,
    now: datetime,
) -> EngineerContact:
    """Validate and store a user's contact methods (replacing earlier ones)."""
    if language not in LANGUAGES:
        raise InvalidInput(f"language: one of {', '.join(LANGUAGES)}", field="language")
    channels = build_channels(entries, settings)
    plain = [dict(e) for e in entries]
    row = session.get(EngineerContact, user.id)
    if row is None:
        row = EngineerContact(user_id=user.id)
        session.add(row)
    row.language = language
    row.channels_sealed = box_for(settings).seal(json.dumps(plain))
    row.channels_shown = {"channels": [{"kind": c.kind, "target": c.target} for c in channels]}
    row.failures = {}
    row.last_error = ""
    row.updated_at = now
    return row


@dataclass(frozen=True, slots=True)
class Reach:
    """How to reach one user now: their language and channels, in order."""

    user_id: int
    username: str
    language: str
    channels: tuple[Channel, ...]


def reach(session: Session, username: str, settings: Settings) -> Reach | None:
    """The channels of `username` built from the stored settings; None without contact
    methods (or no such user)."""
    user = find_user(session, username)
    if user is None or user.disabled:
        return None
    row = session.get(EngineerContact, user.id)
    if row is None:
        return None
    entries = json.loads(box_for(settings).open(row.channels_sealed))
    return Reach(user.id, user.username, row.language, tuple(build_channels(entries, settings)))


def record(session: Session, user_id: int, attempts: Sequence[Attempt], now: datetime) -> None:
    """Count one page's attempts per channel: a success resets that channel's count."""
    row = session.get(EngineerContact, user_id)
    if row is None:
        return
    failures = dict(row.failures)
    shown = row.channels_shown.get("channels", [])
    targets = [c.get("target") for c in shown]
    for attempt in attempts:
        if attempt.target not in targets:
            continue
        index = str(targets.index(attempt.target))
        if attempt.ok:
            failures.pop(index, None)
        else:
            failures[index] = int(failures.get(index, 0)) + 1
            row.last_error = f"{attempt.kind}: {attempt.error}"[:2000]
    row.failures = failures
    row.updated_at = now


@dataclass(frozen=True, slots=True)
class ContactView:
    """A contact as shown: channels without secrets, failures, unreachable or not."""

    user_id: int
    username: str
    language: str
    channels: list[dict[str, Any]]
    unreachable: bool
    last_error: str
    updated_at: datetime


def view(row: EngineerContact, username: str, unreachable_after: int) -> ContactView:
    """What the API shows of a contact."""
    channels = []
    any_failing = False
    for index, shown in enumerate(row.channels_shown.get("channels", [])):
        failures = int(row.failures.get(str(index), 0))
        failing = failures >= unreachable_after
        any_failing = any_failing or failing
        channels.append({**shown, "failures_in_a_row": failures, "failing": failing})
    return ContactView(
        user_id=row.user_id,
        username=username,
        language=row.language,
        channels=channels,
        unreachable=any_failing,
        last_error=row.last_error,
        updated_at=row.updated_at,
    )


def list_views(session: Session, unreachable_after: int) -> list[ContactView]:
    """Every contact, by user name."""
    rows = session.execute(
        select(EngineerContact, User.username)
        .join(User, User.id == EngineerContact.user_id)
        .order_by(User.username)
    ).all()
    return [view(row, name, unreachable_after) for row, name in rows]


def get_view(session: Session, username: str, unreachable_after: int) -> ContactView:
    """One user's contact; NotFound if the user or their contact methods are missing."""
    user = find_user(session, username)
    row = session.get(EngineerContact, user.id) if user is not None else None
    if user is None or row is None:
        raise NotFound(f"no contact methods for user {username!r}")
    return view(row, user.username, unreachable_after)
