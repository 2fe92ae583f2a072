"""Errors of the agent runtime.

AgentError
 ├── ConfigError         the site config or credentials file is wrong (message names the
 │                        file, the line where known, the field path and what was expected)
 ├── UplinkError         HQ could not be reached or answered badly; retry later
 │    └── UplinkRejected HQ refused us for good (bad token, bad request); do not retry blindly
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


class EnrollError(AgentError):
    """The enrollment token was refused or HQ could not be reached."""
