"""Where HQ may send webhooks: public addresses only, unless `allow_private_webhooks` is set.

A webhook URL is typed in by an admin, and HQ POSTs to it from inside the integrator's
network: pointed at HQ's own machine or at a private address, it reaches services that were
never meant to be reachable from outside (a database, a device's web page, a cloud metadata
service). So the URL's host is checked when a chain is saved (an address written in the URL,
or a localhost name) and again when each webhook is sent, after resolving the name, on every
address it resolves to; the request then goes to the checked address, so a name that
resolves differently a moment later (DNS rebinding) changes nothing.

SMTP is not checked: an SMTP relay on a private address is the normal case, and its address
is HQ's own setting, not something typed into a chain.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")
ALLOW_SETTING = "allow_private_webhooks"


class TargetRefused(Exception):
    """A webhook target that is not a public address (the message says which and why)."""


class Unresolvable(TargetRefused):
    """A webhook target whose name does not resolve (now): not sent, as an address refused."""


def refusal(address: IpAddress) -> str | None:
    """Why HQ does not send webhooks to `address` ("a loopback address", ...), or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if address.is_loopback:
        return "a loopback address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address in _UNIQUE_LOCAL:
        return "a unique-local address"
    if address.is_private:
        return "a private address"
    if address.is_reserved or not address.is_global:
        return "not a public address"
    return None


def _literal(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def check_saved(url: str) -> None:
    """Raise TargetRefused for a URL whose host is, as written, not a public address: an IP
    address of a private range, or a localhost name. Other names are checked when sending."""
    host = (urlsplit(url).hostname or "").rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        raise TargetRefused(f"{host} is this machine")
    address = _literal(host)
    reason = refusal(address) if address is not None else None
    if reason is not None:
        raise TargetRefused(f"{host} is {reason}")


@dataclass(frozen=True)
class PinnedRequest:
    """Where to send a webhook: the URL with its host replaced by each checked address, to try
    in turn (as a connect to a name would), the Host header, and httpx extensions (the TLS
    server name, so the certificate is checked against the name in the URL)."""

    urls: tuple[str, ...]
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, str] = field(default_factory=dict)


def pin(url: str, *, allow_private: bool = False) -> PinnedRequest:
    """Resolve the URL's host and check every address (unless allow_private); the request to
    send to them. TargetRefused if an address is refused or the name does not resolve."""
    parsed = httpx.URL(url)
    host = parsed.host
    if _literal(host) is not None:
        if not allow_private:
            check_saved(url)
        return PinnedRequest((url,))
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Unresolvable(f"{host} does not resolve: {exc}") from None
    addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    if not addresses:
        raise Unresolvable(f"{host} does not resolve to any address")
    for address in addresses if not allow_private else []:
        reason = refusal(address)
        if reason is not None:
            # Any of them: a client may be handed any one of the addresses.
            raise TargetRefused(f"{host} resolves to {address}, {reason}")
    extensions = {"sni_hostname": host} if parsed.scheme == "https" else {}
    return PinnedRequest(
        urls=tuple(str(parsed.copy_with(host=str(a))) for a in addresses),
        headers={"Host": parsed.netloc.decode("ascii")},
        extensions=extensions,
    )
