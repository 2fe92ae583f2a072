"""Generic webhook: a JSON POST signed with HMAC-SHA256, StationWatch's own format.

The format HQ's notification outbox has always sent (hq_server/tickets/notify.py uses `sign`,
`encode` and the header names from here):

    POST <url>
    Content-Type: application/json
    Idempotency-Key: <key>                       the same on every attempt of one message
    X-StationWatch-Signature: sha256=<hex>       HMAC-SHA256(key=secret, msg=raw body);
                                                 absent when the channel has no secret
    <body: json.dumps(payload, sort_keys=True), UTF-8>

A receiver recomputes the HMAC over the raw body bytes and compares in constant time; it
drops a repeated Idempotency-Key. Any 2xx answer is success; 408/429/5xx are retried.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import SecretStr, ValidationInfo, field_validator

from hq_server.channels import compose
from hq_server.channels.base import (
    ChannelConfig,
    EventKind,
    Page,
    Prepared,
    Timeouts,
    options_of,
)
from hq_server.channels.transport import check_status, send
from hq_server.channels.validation import check_url

SIGNATURE_HEADER = "X-StationWatch-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def sign(secret: str, body: bytes) -> str:
    """The signature header value of a webhook body: sha256=<hex HMAC-SHA256>."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def encode(payload: Mapping[str, Any]) -> bytes:
    """The body of a webhook: the payload as JSON with sorted keys, UTF-8."""
    return json.dumps(payload, sort_keys=True).encode("utf-8")


def prepare(url: str, payload: Mapping[str, Any], key: str, secret: str | None) -> Prepared:
    """The signed POST of `payload` to `url` (unsigned when `secret` is None)."""
    body = encode(payload)
    headers = {"Content-Type": "application/json", IDEMPOTENCY_HEADER: key}
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, body)
    return Prepared("POST", url, headers, body, secrets=(secret,) if secret else ())


def page_payload(page: Page) -> dict[str, Any]:
    """The JSON payload of a page: the subject, the text and the ticket's facts."""
    payload: dict[str, Any] = {
        "event": page.kind.value,
        "language": page.language,
        "subject": compose.subject(page),
        "text": compose.plain_text(page),
        "link": page.link,
        "zone": page.zone,
    }
    if page.kind is EventKind.DIGEST:
        payload["items"] = [
            {
                "id": item.ticket_id,
                "number": item.ticket_number,
                "grade": item.grade,
                "site": item.site,
                "device": item.device,
                "title": item.title,
                "deadline": item.deadline.isoformat() if item.deadline else None,
                "link": item.link,
            }
            for item in page.items
        ]
    else:
        payload["ticket"] = {
            "id": page.ticket_id,
            "number": page.ticket_number,
            "grade": page.grade,
            "grade_name": page.grade_name,
            "site": page.site,
            "device": page.device,
            "title": page.title,
            "detail": page.detail,
            "deadline": page.deadline.isoformat() if page.deadline else None,
            "deadline_kind": page.deadline_kind,
        }
    return payload


class WebhookConfig(ChannelConfig):
    """Where the webhook goes and the key it is signed with."""

    url: str
    secret: SecretStr | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str, info: ValidationInfo) -> str:
        check_url(value, options_of(info.context))
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not 8 <= len(value.get_secret_value()) <= 200:
            raise ValueError("expected a signing key of 8 to 200 characters")
        return value


class WebhookChannel:
    """A JSON POST to any https URL, signed with the contact's key."""

    kind: ClassVar[str] = "webhook"
    config_model: ClassVar[type[ChannelConfig]] = WebhookConfig

    def __init__(self, config: WebhookConfig) -> None:
        self.config = config

    @property
    def target(self) -> str:
        """The URL without its query (which may carry a token)."""
        parts = urlsplit(self.config.url)
        return f"webhook {parts.scheme}://{parts.netloc}{parts.path}"

    def render(self, page: Page, now: datetime | None = None) -> Prepared:
        """The signed JSON POST of the page."""
        secret = self.config.secret.get_secret_value() if self.config.secret else None
        prepared = prepare(self.config.url, page_payload(page), page.idempotency_key, secret)
        query = urlsplit(self.config.url).query
        if query:  # a token in the query string is kept out of logs too
            return Prepared(
                prepared.method,
                prepared.url,
                prepared.headers,
                prepared.body,
                secrets=(*prepared.secrets, query),
            )
        return prepared

    def send(self, prepared: Prepared, timeouts: Timeouts) -> None:
        """POST once; any 2xx is success."""
        check_status(send(prepared, timeouts), prepared.secrets)
