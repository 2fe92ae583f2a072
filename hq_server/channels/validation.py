"""Checks shared by the channels' settings: URLs, phone numbers, e-mail addresses, secrets.

Each raises ValueError with what was expected; none puts the checked value in its message
(a URL or a token may be a secret).
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import SplitResult, urlsplit

from pydantic import AfterValidator

from hq_server.channels.base import ChannelOptions

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_CN_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def check_url(
    value: str,
    options: ChannelOptions,
    *,
    hosts: frozenset[str] = frozenset(),
    path: re.Pattern[str] | None = None,
    path_expected: str = "",
) -> SplitResult:
    """`value` split, if it is an https URL (http if allowed) of one of `hosts` (any if empty).

    `options.extra_hosts` are accepted besides `hosts`; `path`, if given, must match the whole
    path (its groups can then be read by the caller).
    """
    if any(ch.isspace() or ord(ch) < 0x20 for ch in value):
        raise ValueError("expected a URL without spaces or control characters")
    parts = urlsplit(value)
    schemes = ("https", "http") if options.allow_insecure else ("https",)
    if parts.scheme not in schemes:
        raise ValueError(
            "expected an https:// URL"
            + ("" if options.allow_insecure else " (http:// is accepted only in tests)")
        )
    try:
        parts.port  # noqa: B018 -- raises ValueError for a port out of range
    except ValueError:
        raise ValueError("expected a URL with a valid port") from None
    host = (parts.hostname or "").lower()
    if not host:
        raise ValueError("expected a URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("expected a URL without user:password@ (use the login settings)")
    if parts.fragment:
        raise ValueError("expected a URL without a #fragment")
    if hosts and host not in hosts and host not in options.extra_hosts:
        raise ValueError(
            f"expected the host {' or '.join(sorted(hosts))} (got {host}; other hosts are "
            "accepted only when HQ's operator allows them)"
        )
    if path is not None and not path.fullmatch(parts.path):
        raise ValueError(f"expected the path {path_expected}")
    return parts


def check_hostname(value: str) -> str:
    """`value` if it is a host name or an IPv4/IPv6 address."""
    host = value.strip("[]")
    if _HOSTNAME.match(host) or re.fullmatch(r"[0-9A-Fa-f:.]+", host):
        return value
    raise ValueError("expected a host name or an IP address")


def normalize_phone(value: str) -> str:
    """A phone number in E.164 (+8613800138000) from E.164 or a Chinese mobile number."""
    number = re.sub(r"[\s()-]", "", value)
    if number.startswith("0086"):
        number = "+86" + number[4:]
    if _CN_MOBILE.match(number):
        return "+86" + number
    if number.startswith("+86"):
        if _CN_MOBILE.match(number[3:]):
            return number
        raise ValueError("expected a Chinese mobile number: +86 then 1[3-9] and 9 more digits")
    if _E164.match(number):
        return number
    raise ValueError(
        "expected a phone number in E.164 form (+ country code and number, e.g. "
        "+8613800138000) or a Chinese mobile number (11 digits, 13x-19x)"
    )


def national_mobile(e164: str) -> str:
    """The number as Chinese vendors write it: 11 digits for +86, E.164 otherwise."""
    return e164[3:] if e164.startswith("+86") else e164


def check_email(value: str) -> str:
    """`value` if it is a plain e-mail address (local@domain, no display name)."""
    if _EMAIL.match(value):
        return value
    raise ValueError("expected an e-mail address such as duty@example.com")


def check_secret(value: str, pattern: str, expected: str) -> str:
    """`value` if it fully matches `pattern`; else ValueError(expected), never the value."""
    if re.fullmatch(pattern, value):
        return value
    raise ValueError(expected)


# Field types that name the item at fault in a list ("to.1", "at_mobiles.0").
EmailAddress = Annotated[str, AfterValidator(check_email)]
PhoneNumber = Annotated[str, AfterValidator(normalize_phone)]
