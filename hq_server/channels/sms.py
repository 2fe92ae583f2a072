"""SMS through an HTTP gateway described by templates (any provider with an HTTP API).

There is no single vendor format: the gateway is described by a URL template, a method (GET,
or POST with a body template), optional headers and basic auth, and a success check. The
templates take these placeholders, each escaped for where it stands (percent-encoded in the
URL, JSON-escaped in a JSON body, form-encoded in a form body):

    {phone}            the contact's number (E.164, or 11 digits for +86 with phone_format
                       "national", which most Chinese gateways want)
    {text}             the message, at most `max_chars` characters
    {sign}             the SMS signature (签名) Chinese gateways require, e.g. StationWatch
    {secret}           the gateway's API key or token (also usable in a header); never logged
    {idempotency_key}  the same on every attempt of one message

Other braces (a JSON body's own) are left alone; an unknown {name} is refused when the
channel is saved. Success is the expected HTTP status and, optionally, a JSON field with an
expected value (dotted path, e.g. "code" = "0") and/or a regular expression the answer must
match (gateways answer 200 with an error code in the body, as the robots do).

Length: an SMS is 160 GSM-7 characters, or 70 characters when it holds any other character
(Chinese); a longer text goes as a concatenated SMS of 153 / 67-character segments, each
billed. `segments()` counts them; `max_chars` bounds the text (the link is kept whole).
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, ClassVar, Literal
from urllib.parse import quote, quote_plus

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from hq_server.channels import compose
from hq_server.channels.base import (
    ChannelConfig,
    FieldProblem,
    Page,
    Prepared,
    Timeouts,
    options_of,
)
from hq_server.channels.errors import DeliveryError, redact
from hq_server.channels.transport import check_status, send
from hq_server.channels.validation import check_url, national_mobile, normalize_phone

PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
PLACEHOLDERS = ("phone", "text", "sign", "secret", "idempotency_key")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_CONTENT_TYPES = {
    "json": "application/json; charset=utf-8",
    "form": "application/x-www-form-urlencoded",
    "text": "text/plain; charset=utf-8",
}
_GSM7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ ÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)


def segments(text: str) -> int:
    """How many SMS segments `text` takes: GSM-7 160/153, otherwise (Chinese) 70/67."""
    single, part = (160, 153) if set(text) <= _GSM7 else (70, 67)
    return 1 if len(text) <= single else math.ceil(len(text) / part)


def _placeholders(template: str) -> set[str]:
    names = set(PLACEHOLDER.findall(template))
    unknown = names - set(PLACEHOLDERS)
    if unknown:
        raise ValueError(
            f"unknown placeholder {{{sorted(unknown)[0]}}}; expected "
            + ", ".join(f"{{{name}}}" for name in PLACEHOLDERS)
        )
    return names


def fill(template: str, values: Mapping[str, str], escape: Callable[[str], str]) -> str:
    """`template` with each known {placeholder} replaced by its escaped value."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        return escape(values[name]) if name in values else match.group(0)

    return PLACEHOLDER.sub(one, template)


def _json_escape(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)[1:-1]


def _url_escape(value: str) -> str:
    return quote(value, safe="")


_BODY_ESCAPES: dict[str, Callable[[str], str]] = {
    "json": _json_escape,
    "form": quote_plus,
    "text": lambda value: value,
}


class SmsConfig(ChannelConfig):
    """The contact's number and how the gateway is called."""

    phone: str
    phone_format: Literal["e164", "national"] = "e164"
    url_template: str
    method: Literal["GET", "POST"] = "POST"
    body_template: str | None = None
    body_encoding: Literal["json", "form", "text"] = "json"
    headers: dict[str, str] = Field(default_factory=dict)
    secret: SecretStr | None = None
    basic_auth_user: str | None = Field(default=None, min_length=1, max_length=200)
    basic_auth_password: SecretStr | None = None
    sign: str | None = Field(default=None, min_length=1, max_length=20)
    max_chars: int = Field(default=300, ge=70, le=1000)
    success_status: tuple[int, ...] = (200,)
    success_json_field: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$"
    )
    success_json_value: str | None = None
    success_regex: str | None = None

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str) -> str:
        return normalize_phone(value)

    @field_validator("url_template")
    @classmethod
    def _url(cls, value: str, info: ValidationInfo) -> str:
        _placeholders(value)
        sample = {name: "0" for name in PLACEHOLDERS}
        check_url(fill(value, sample, _url_escape), options_of(info.context))
        return value

    @field_validator("body_template")
    @classmethod
    def _body(cls, value: str | None) -> str | None:
        if value is not None:
            _placeholders(value)
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _HEADER_NAME.match(name):
                raise ValueError("expected header names of letters, digits and -")
            if any(ord(ch) < 0x20 for ch in text):
                raise ValueError(f"expected the value of header {name} on one line")
            # Headers are ASCII: the text, the number and the sign stay in the URL or body.
            if _placeholders(text) - {"secret", "idempotency_key"}:
                raise ValueError("expected only {secret} and {idempotency_key} in headers")
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(r"[\x21-\x7e]{1,500}", value.get_secret_value()):
            raise ValueError("expected 1 to 500 printable ASCII characters without spaces")
        return value

    @field_validator("basic_auth_password")
    @classmethod
    def _password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            secret = value.get_secret_value()
            if not secret or len(secret) > 500 or any(ord(ch) < 0x20 for ch in secret):
                raise ValueError("expected 1 to 500 characters on one line")
        return value

    @field_validator("sign")
    @classmethod
    def _sign(cls, value: str | None) -> str | None:
        if value is not None and any(ord(ch) < 0x20 or ch in "{}" for ch in value):
            raise ValueError("expected the SMS signature on one line, without braces")
        return value

    @field_validator("success_status")
    @classmethod
    def _statuses(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or not all(200 <= status <= 299 for status in value):
            raise ValueError("expected one or more HTTP statuses from 200 to 299")
        return value

    @field_validator("success_regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"expected a regular expression ({exc.msg})") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SmsConfig:
        used = set(PLACEHOLDER.findall(self.url_template))
        if self.body_template is not None:
            if self.method != "POST":
                raise FieldProblem("body_template", "only with method POST")
            used |= set(PLACEHOLDER.findall(self.body_template))
        for text in self.headers.values():
            used |= set(PLACEHOLDER.findall(text))
        for name in ("phone", "text"):
            if name not in used:
                raise FieldProblem(
                    "url_template", f"expected {{{name}}} in url_template or body_template"
                )
        if "secret" in used and self.secret is None:
            raise FieldProblem("secret", "required: a template uses {secret}")
        if self.secret is not None and "secret" not in used:
            raise FieldProblem("secret", "not used: put {secret} in a template or a header")
        if "sign" in used and self.sign is None:
            raise FieldProblem("sign", "required: a template uses {sign}")
        if (self.basic_auth_user is None) != (self.basic_auth_password is None):
            raise FieldProblem("basic_auth_password", "basic_auth_user and _password together")
        if (self.success_json_field is None) != (self.success_json_value is None):
            raise FieldProblem("success_json_value", "success_json_field and _value together")
        return self


class SmsChannel:
    """A short text to one phone number through an HTTP SMS gateway."""

    kind: ClassVar[str] = "sms"
    config_model: ClassVar[type[ChannelConfig]] = SmsConfig

    def __init__(self, config: SmsConfig) -> None:
        self.config = config

    @property
    def target(self) -> str:
        """The phone number (not a secret) and the gateway's host."""
        host = self.config.url_template.split("/")[2]
        return f"SMS to {self.config.phone} via {host}"

    def _secrets(self, values: Mapping[str, str]) -> tuple[str, ...]:
        found: list[str] = []
        for secret in (values["secret"], self._password()):
            if secret:
                found += [secret, _url_escape(secret), _json_escape(secret), quote_plus(secret)]
        return tuple(found)

    def _password(self) -> str:
        password = self.config.basic_auth_password
        return password.get_secret_value() if password is not None else ""

    def render(self, page: Page, now: datetime | None = None) -> Prepared:
        """The gateway request for the page's short text."""
        config = self.config
        phone = national_mobile(config.phone) if config.phone_format == "national" else config.phone
        values = {
            "phone": phone,
            "text": compose.short_text(page, config.max_chars),
            "sign": config.sign or "",
            "secret": config.secret.get_secret_value() if config.secret else "",
            "idempotency_key": page.idempotency_key,
        }
        url = fill(config.url_template, values, _url_escape)
        headers = {name: fill(text, values, lambda v: v) for name, text in config.headers.items()}
        headers.setdefault("Idempotency-Key", page.idempotency_key)
        body = b""
        if config.method == "POST" and config.body_template is not None:
            escape = _BODY_ESCAPES[config.body_encoding]
            body = fill(config.body_template, values, escape).encode("utf-8")
            headers.setdefault("Content-Type", _CONTENT_TYPES[config.body_encoding])
        secrets = list(self._secrets(values))
        if config.basic_auth_user is not None:
            login = f"{config.basic_auth_user}:{self._password()}".encode()
            token = base64.b64encode(login).decode("ascii")
            headers["Authorization"] = f"Basic {token}"
            secrets.append(token)
        return Prepared(config.method, url, headers, body, secrets=tuple(secrets))

    def send(self, prepared: Prepared, timeouts: Timeouts) -> None:
        """Call the gateway once; success is the expected status and answer."""
        config = self.config
        answer = send(prepared, timeouts)
        if answer.status not in config.success_status:
            check_status(answer, prepared.secrets)  # not 2xx: retryable or not by status
            raise DeliveryError(
                f"SMS gateway answered HTTP {answer.status}, expected "
                + " or ".join(map(str, config.success_status)),
                retryable=False,
            )
        if config.success_json_field is not None:
            value: Any = answer.json()
            for part in config.success_json_field.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if value is None or str(value) != config.success_json_value:
                reason = (
                    f"SMS gateway refused the message: {config.success_json_field}="
                    f"{value!r}: {answer.snippet()}"
                )
                raise DeliveryError(redact(reason, prepared.secrets), retryable=False)
        if config.success_regex is not None:
            text = answer.body.decode("utf-8", "replace")
            if not re.search(config.success_regex, text):
                raise DeliveryError(
                    "SMS gateway's answer does not match success_regex: "
                    + answer.snippet(prepared.secrets),
                    retryable=False,
                )
