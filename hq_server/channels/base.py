"""The channel interface: what a page says, what a channel is, and the registry of kinds.

A page (`Page`) is one message about a ticket (or a digest of tickets) for one contact, in the
contact's language. A channel is one way of reaching the contact (an e-mail address, a DingTalk
robot, an SMS number ...): a class with a `kind`, a frozen pydantic `config_model` validated
once when the channel is saved, and two steps:

- `render(page, now)` -> `Prepared`: pure (the same page, config and `now` give the same
  bytes), so every vendor's message format and signature is testable without a network;
- `send(prepared, timeouts)`: one attempt, bounded by `timeouts`, no retries of its own (the
  notification outbox retries); raises `DeliveryError` (retryable or not) on failure.

Channels are registered explicitly in a `ChannelRegistry` (no scanning of folders); a kind
registered twice is refused. `hq_server.channels.builtin_registry()` registers the built-in ones.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal, Protocol
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from hq_server.channels.errors import ChannelConfigError, RegistryError, redact

Language = Literal["zh-CN", "en"]
LANGUAGES: tuple[Language, ...] = ("zh-CN", "en")


class EventKind(StrEnum):
    """What happened to the ticket that the page is about."""

    OPENED = "opened"
    REGRADED = "regraded"
    REPEAT = "repeat"  # the same page again: still not acknowledged
    ESCALATED = "escalated"
    DIGEST = "digest"  # several tickets in one message (`Page.items`)
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    UNDELIVERED = "undelivered"  # a page to someone else that no channel delivered


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class DigestItem(_Frozen):
    """One ticket of a digest page."""

    ticket_id: int
    ticket_number: str = Field(min_length=1, max_length=64)
    grade: int = Field(ge=1, le=5)
    site: str = Field(min_length=1, max_length=200)
    device: str | None = Field(default=None, max_length=200)
    title: str = Field(min_length=1, max_length=500)
    deadline: AwareDatetime | None = None
    link: str

    @field_validator("link")
    @classmethod
    def _link(cls, value: str) -> str:
        return _check_link(value)


class Page(_Frozen):
    """One message to one contact about a ticket (or, kind `digest`, about several)."""

    kind: EventKind
    language: Language
    idempotency_key: str = Field(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")
    ticket_id: int | None = None  # None only for a digest
    ticket_number: str | None = Field(default=None, max_length=64)
    grade: int = Field(ge=1, le=5)  # 1 (major) .. 5 (request); a digest: its worst grade
    grade_name: str | None = Field(default=None, max_length=40)  # the contract's own name
    site: str = Field(default="", max_length=200)
    device: str | None = Field(default=None, max_length=200)
    title: str = Field(min_length=1, max_length=500)
    detail: str = Field(default="", max_length=4000)
    deadline: AwareDatetime | None = None  # the next deadline of the ticket, if any
    deadline_kind: Literal["ack", "restore"] = "ack"
    zone: str  # IANA time zone the deadline is shown in, e.g. Asia/Shanghai
    link: str  # the ticket (or, for a digest, the ticket list) in the console
    items: tuple[DigestItem, ...] = ()
    total: int | None = Field(default=None, ge=1)  # a digest: tickets in all (items: the worst)

    @field_validator("zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("expected an IANA time zone name such as Asia/Shanghai") from None
        return value

    @field_validator("link")
    @classmethod
    def _link(cls, value: str) -> str:
        return _check_link(value)

    @model_validator(mode="after")
    def _shape(self) -> Page:
        if self.kind is EventKind.DIGEST:
            if not self.items:
                raise ValueError("a digest page needs at least one item")
        else:
            if self.ticket_id is None or not self.ticket_number:
                raise ValueError("a page about one ticket needs ticket_id and ticket_number")
            if not self.site:
                raise ValueError("a page about one ticket needs its site")
            if self.items:
                raise ValueError("only a digest page has items")
        return self

    @property
    def count(self) -> int:
        """A digest: how many tickets it is about (more than it lists, if `total` says so)."""
        return max(self.total or 0, len(self.items))

    @property
    def tz(self) -> ZoneInfo:
        """The zone deadlines are shown in."""
        return ZoneInfo(self.zone)


def _check_link(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL of the console")
    return value


@dataclass(frozen=True, slots=True)
class Prepared:
    """A rendered request: what `send` puts on the wire (for SMTP: the message and envelope).

    `secrets` are the values in it that must never be logged or shown (tokens, keys, signing
    secrets, passwords); the repr and every error built from it leave them out.
    """

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes
    secrets: tuple[str, ...] = field(default=(), repr=False)

    def __repr__(self) -> str:
        url = redact(self.url, self.secrets)
        return f"Prepared({self.method} {url}, {len(self.body)} bytes)"

    def json(self) -> Any:
        """The body parsed as JSON (for tests and for the console's preview)."""
        return json.loads(self.body)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """How long one attempt may take: to connect, and for each read of the answer.

    Also an upper bound for the whole answer: `connect + read` (a server trickling bytes
    cannot hold an attempt past it).
    """

    connect: float = 5.0
    read: float = 10.0

    def __post_init__(self) -> None:
        if not (self.connect > 0 and self.read > 0):
            raise ValueError("timeouts must be positive")

    @property
    def total(self) -> float:
        """The most one attempt waits for an answer in all."""
        return self.connect + self.read

    def for_httpx(self) -> httpx.Timeout:
        """The same bounds as an httpx.Timeout."""
        return httpx.Timeout(
            connect=self.connect, read=self.read, write=self.read, pool=self.connect
        )


@dataclass(frozen=True, slots=True)
class ChannelOptions:
    """How strictly channel settings are checked; set by HQ's operator, never by a contact.

    `allow_insecure`: http:// URLs and SMTP logins without TLS are accepted (tests only).
    `extra_hosts`: hosts accepted besides each vendor's own (an on-premises deployment or a
    relay; tests put 127.0.0.1 here). The vendor's path and token shape are checked still.
    """

    allow_insecure: bool = False
    extra_hosts: frozenset[str] = frozenset()


class ChannelConfig(BaseModel):
    """Base of the channels' settings: frozen, unknown fields refused, strings stripped.

    Validators read the `ChannelOptions` from the validation context (`options_of(info)`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class FieldProblem(ValueError):
    """Raised by a cross-field validator to name the field that is wrong."""

    def __init__(self, field: str, expected: str) -> None:
        self.field = field
        self.expected = expected
        super().__init__(expected)


def options_of(context: Any) -> ChannelOptions:
    """The ChannelOptions passed to validation (strict defaults when none were passed)."""
    if isinstance(context, dict):
        options = context.get("options")
        if isinstance(options, ChannelOptions):
            return options
    return ChannelOptions()


def parse_config(
    model: type[ChannelConfig], settings: Mapping[str, Any], options: ChannelOptions
) -> ChannelConfig:
    """Validate `settings` into `model`; ChannelConfigError names every wrong field.

    The messages come from our own validators and pydantic's type checks, never from the
    input: a secret that fails its check is not echoed.
    """
    try:
        return model.model_validate(dict(settings), context={"options": options})
    except ValidationError as exc:
        problems: list[tuple[str, str]] = []
        for error in exc.errors(include_input=False, include_url=False):
            names = [str(part) for part in error["loc"]]
            cause = (error.get("ctx") or {}).get("error")
            if isinstance(cause, FieldProblem):
                names.append(cause.field)
                expected = cause.expected
            else:
                expected = error["msg"].removeprefix("Value error, ")
                if error["type"] == "extra_forbidden":
                    expected = "not a setting of this channel"
                elif error["type"] == "missing":
                    expected = "required"
            problems.append((".".join(names) or "settings", expected))
        raise ChannelConfigError(problems) from None


class Channel(Protocol):
    """One configured way of reaching a contact."""

    kind: ClassVar[str]
    config_model: ClassVar[type[ChannelConfig]]

    @property
    def config(self) -> ChannelConfig:
        """The validated settings."""
        ...

    @property
    def target(self) -> str:
        """Who or where this channel reaches, without any secret (for logs and history)."""
        ...

    def render(self, page: Page, now: datetime | None = None) -> Prepared:
        """The request for `page` as sent at `now` (default: the current time); no I/O."""
        ...

    def send(self, prepared: Prepared, timeouts: Timeouts) -> None:
        """Send once; raises DeliveryError (retryable or not) unless the vendor accepted it."""
        ...


class ChannelClass(Protocol):
    """A channel class as the registry holds it: its kind, its settings, its constructor."""

    @property
    def kind(self) -> str: ...

    @property
    def config_model(self) -> type[ChannelConfig]: ...

    def __call__(self, config: Any) -> Channel: ...


_KIND = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class ChannelRegistry:
    """Channel kinds by name, registered explicitly; a kind registered twice is refused."""

    def __init__(self) -> None:
        self._classes: dict[str, ChannelClass] = {}

    def register(self, cls: ChannelClass) -> ChannelClass:
        """Add a channel class under its `kind`; RegistryError if the kind is taken."""
        kind = getattr(cls, "kind", None)
        if not isinstance(kind, str) or not _KIND.match(kind):
            raise RegistryError(f"{cls!r} has no valid kind (lower-case letters, digits, _)")
        if not (isinstance(cls.config_model, type) and issubclass(cls.config_model, ChannelConfig)):
            raise RegistryError(f"channel kind {kind!r}: config_model is not a ChannelConfig")
        if kind in self._classes:
            raise RegistryError(
                f"channel kind {kind!r} is already registered ({self._classes[kind]!r})"
            )
        self._classes[kind] = cls
        return cls

    def kinds(self) -> tuple[str, ...]:
        """The registered kinds, sorted."""
        return tuple(sorted(self._classes))

    def get(self, kind: str) -> ChannelClass:
        """The class registered for `kind`; ChannelConfigError (field `kind`) if none is."""
        try:
            return self._classes[kind]
        except KeyError:
            raise ChannelConfigError([("kind", f"one of {', '.join(self.kinds())}")]) from None

    def validate(
        self, kind: str, settings: Mapping[str, Any], options: ChannelOptions | None = None
    ) -> ChannelConfig:
        """The settings of a `kind` channel, validated; ChannelConfigError names the fields."""
        cls = self.get(kind)
        return parse_config(cls.config_model, settings, options or ChannelOptions())

    def build(
        self, kind: str, settings: Mapping[str, Any], options: ChannelOptions | None = None
    ) -> Channel:
        """A ready channel of `kind` from its settings (validated first)."""
        return self.get(kind)(self.validate(kind, settings, options))

    def build_all(
        self, entries: Sequence[Mapping[str, Any]], options: ChannelOptions | None = None
    ) -> list[Channel]:
        """Channels from [{"kind": ..., **settings}, ...]; errors name `<index>.<field>`."""
        channels = []
        for index, entry in enumerate(entries):
            settings = dict(entry)
            kind = str(settings.pop("kind", ""))
            try:
                channels.append(self.build(kind, settings, options))
            except ChannelConfigError as exc:
                raise ChannelConfigError(
                    [(f"{index}.{name}", expected) for name, expected in exc.problems]
                ) from None
        return channels
