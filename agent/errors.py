"""Errors of the agent runtime.

AgentError
 ├── ConfigError         the site config or credentials file is wrong (message names the
 │                        file, the line where known, the field path and what was expected)
 ├── UplinkError         HQ could not be reached or answered badly; retry later
 │    └── UplinkRejected HQ refused us for good (bad token, bad request); do not retry blindly
 │         └── ContentRefused  HQ refused what was sent (422 unreadable, 413 too large)
 └── EnrollError         enrollment failed
"""

from __future__ import annotations


class AgentError(Exception):
    """Base of the agent's own errors."""


class ConfigError(AgentError):
    """A configuration problem; str() is a ready-to-print list of problems, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class UplinkError(AgentError):
    """Sending to HQ failed; `retry_after` is HQ's Retry-After hint in seconds, if any."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UplinkRejected(UplinkError):
    """HQ refused the request (401/403/4xx): retrying the same thing will not help."""


class ContentRefused(UplinkRejected):
    """HQ refused the body as a whole (422: it cannot read it; 413: too large): sending the
    same thing again will not help, sending less of it may. `reason` is HQ's, made short."""

    def __init__(self, message: str, status: int, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class EnrollError(AgentError):
    """The enrollment token was refused or HQ could not be reached."""
