"""Sending a prepared HTTP request once, bounded in time and size, errors mapped.

httpx logs every request's URL at INFO ("HTTP Request: POST https://...?access_token=...");
the robots carry their token in the URL, so a filter on the "httpx" logger replaces the
secrets of the request being sent (a context variable, so only our own requests are touched)
before the record reaches any handler.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpx

from hq_server.channels.base import Prepared, Timeouts
from hq_server.channels.errors import DeliveryError, redact

# Vendors answer a few hundred bytes; more is read no further.
MAX_ANSWER = 64 * 1024
_secrets: ContextVar[tuple[str, ...]] = ContextVar("channel_secrets", default=())


class _RedactSecrets(logging.Filter):
    """Replaces the secrets of the request being sent in records of the httpx logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = _secrets.get()
        if secrets:
            text = record.getMessage()
            clean = redact(text, secrets)
            if clean != text:
                record.msg, record.args = clean, None
        return True


_FILTER = _RedactSecrets()
logging.getLogger("httpx").addFilter(_FILTER)


@contextmanager
def secrets_hidden(secrets: tuple[str, ...]) -> Iterator[None]:
    """While inside, the httpx logger never shows `secrets`."""
    token = _secrets.set(secrets)
    try:
        yield
    finally:
        _secrets.reset(token)


@dataclass(frozen=True, slots=True)
class Answer:
    """What the endpoint answered (the body cut at MAX_ANSWER)."""

    status: int
    body: bytes

    def json(self) -> Any:
        """The body as JSON, or None if it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def snippet(self, secrets: Collection[str] = ()) -> str:
        """The start of the body as text, for an error message (secrets replaced)."""
        text = " ".join(self.body[:200].decode("utf-8", "replace").split())
        return redact(text, secrets)


def send(prepared: Prepared, timeouts: Timeouts) -> Answer:
    """Send `prepared` once and read the answer; DeliveryError if no answer came in time."""
    deadline = time.monotonic() + timeouts.total
    try:
        with (
            secrets_hidden(prepared.secrets),
            httpx.Client(timeout=timeouts.for_httpx(), follow_redirects=False) as client,
            client.stream(
                prepared.method,
                prepared.url,
                content=prepared.body,
                headers=dict(prepared.headers),
            ) as response,
        ):
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk[: MAX_ANSWER - len(body)]
                if len(body) >= MAX_ANSWER:
                    break
                if time.monotonic() > deadline:
                    raise DeliveryError(
                        f"the answer took longer than {timeouts.total:g} s", retryable=True
                    )
            answer = Answer(response.status_code, bytes(body))
    except httpx.ConnectTimeout:
        raise DeliveryError(
            f"could not connect within {timeouts.connect:g} s", retryable=True
        ) from None
    except httpx.TimeoutException:
        raise DeliveryError(f"no answer within {timeouts.read:g} s", retryable=True) from None
    except httpx.HTTPError as exc:
        reason = redact(f"{type(exc).__name__}: {exc}", prepared.secrets)
        raise DeliveryError(reason, retryable=True) from None
    if 300 <= answer.status < 400:
        raise DeliveryError(
            f"redirected (HTTP {answer.status}); redirects are not followed", retryable=False
        )
    return answer


def retryable_status(status: int) -> bool:
    """Whether an HTTP status says "try again later" (timeout, rate limit, server error)."""
    return status in (408, 425, 429) or status >= 500


def check_status(answer: Answer, secrets: Collection[str] = ()) -> None:
    """DeliveryError unless the answer is 2xx."""
    if not 200 <= answer.status < 300:
        snippet = answer.snippet(secrets)
        raise DeliveryError(
            f"HTTP {answer.status}" + (f": {snippet}" if snippet else ""),
            retryable=retryable_status(answer.status),
        )


def check_vendor_code(
    answer: Answer,
    vendor: str,
    *,
    code_keys: tuple[str, ...],
    message_keys: tuple[str, ...],
    retryable_codes: Collection[int],
    secrets: Collection[str] = (),
) -> None:
    """DeliveryError unless the vendor's JSON says code 0.

    The robots answer HTTP 200 with a non-zero code when they refuse a message (a bad
    signature, an unknown token, a rate limit): the code decides, the status only when the
    answer carries no code.
    """
    data = answer.json()
    code: Any = None
    if isinstance(data, dict):
        code = next((data[k] for k in code_keys if k in data), None)
    if not isinstance(code, int) or isinstance(code, bool):
        check_status(answer, secrets)
        raise DeliveryError(
            f"{vendor} answered HTTP {answer.status} without a result code: "
            f"{answer.snippet(secrets)}",
            retryable=True,
        )
    if code == 0 and 200 <= answer.status < 300:
        return
    assert isinstance(data, dict)
    text = next((str(data[k]) for k in message_keys if k in data), "")
    raise DeliveryError(
        redact(f"{vendor} refused the message: code {code} {text}".strip(), secrets),
        retryable=code in retryable_codes or retryable_status(answer.status),
    )
