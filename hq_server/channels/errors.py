"""Errors of the paging channels.

    ChannelError
    ├── ChannelConfigError   a channel's settings are wrong: names each field and what was expected
    ├── RegistryError        a kind registered twice (a programming error)
    └── DeliveryError        one attempt to send failed: retryable or not, with a reason

No message of these errors ever contains a secret (a token, key, signing secret, password, or a
URL that carries one): they end up in logs, in the outbox's last_error and in the console.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class ChannelError(Exception):
    """Base of the channel errors."""


class ChannelConfigError(ChannelError):
    """A channel's settings were refused; `problems` lists (field, what was expected)."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems: tuple[tuple[str, str], ...] = tuple(problems) or (("?", "valid settings"),)
        super().__init__("; ".join(f"{name}: {expected}" for name, expected in self.problems))

    @property
    def field(self) -> str:
        """The first field named (the one a form should focus)."""
        return self.problems[0][0]


class RegistryError(ChannelError):
    """A channel kind was registered twice, or a registered class is not a channel."""


class DeliveryError(ChannelError):
    """One attempt to send a page failed.

    `retryable` says whether sending the same message again later may work (a timeout, a
    refused connection, HTTP 5xx, a vendor's rate limit) or not (a wrong secret or token, a
    message the vendor refuses): the outbox retries the first kind and gives up on the second.
    """

    def __init__(self, reason: str, *, retryable: bool) -> None:
        self.reason = reason
        self.retryable = retryable
        super().__init__(reason)


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret in `secrets` (longest first) replaced by '***'."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
