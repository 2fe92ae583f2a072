"""Errors raised by collectors; pysnmp, paramiko and pyserial exceptions never leak past here.

CollectorError
 ├── DeviceUnreachable   no answer: timeout, refused, reset, port gone, hang
 ├── DeviceUnreadable    an answer we cannot use: garbage, malformed, unexpected
 ├── AuthFailed          the device refused our credentials
 └── HostKeyMismatch     an SSH host key differs from the pinned one (possible intrusion)
"""

from __future__ import annotations


class CollectorError(Exception):
    """Base of every collector failure; str() is safe to log and to send to HQ (no secrets)."""


class DeviceUnreachable(CollectorError):
    """The device did not answer in time or the connection failed."""


class DeviceUnreadable(CollectorError):
    """The device answered, but with something we cannot parse."""


class AuthFailed(CollectorError):
    """The device rejected our credentials."""


class HostKeyMismatch(CollectorError):
    """The device's SSH host key is not the one pinned in the agent's known_hosts."""
