"""The client's address behind a reverse proxy: X-Forwarded-For / X-Real-IP, from trusted proxies
only.

The address of a call is what the login throttle counts failures by and what the audit log
records. A forwarded header is only a claim, so it is believed only when the connection comes
from a proxy listed in the `trusted_proxies` setting (none by default: a local client must not
be able to name any address it likes). X-Forwarded-For is read from the right, the entries each
proxy appended, and the first address that is not itself a trusted proxy is the client; entries
left of it were written by the client and are ignored. X-Real-IP (one address) is used when
there is no X-Forwarded-For. uvicorn's own handling of these headers is turned off (`hq serve`),
since it trusts 127.0.0.1 by default.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class TrustedProxies:
    """A set of proxy addresses and networks, and the client address they vouch for."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(entry, strict=False) for entry in entries
        )

    def trusts(self, host: str) -> bool:
        """True if `host` (an address) is one of the trusted proxies."""
        address = _address(host)
        return address is not None and any(address in net for net in self.networks)

    def client(self, peer: str, forwarded_for: Sequence[str], real_ip: str | None) -> str:
        """The client's address for a connection from `peer` with these header values."""
        if not self.networks or not self.trusts(peer):
            return peer
        hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
        hops = [hop for hop in hops if hop]
        if not hops:
            if real_ip is not None and _address(real_ip.strip()) is not None:
                return str(_address(real_ip.strip()))
            return peer
        client = peer
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:  # not written by a proxy of ours: stop at the last good hop
                logger.debug("ignoring X-Forwarded-For entry %r from %s", hop, peer)
                break
            client = str(address)
            if not self.trusts(client):
                break
        return client


def _address(text: str) -> Address | None:
    """The IP address in `text` (IPv6 possibly in brackets, an IPv4 possibly with a port)."""
    candidate = text.strip()
    if candidate.startswith("[") and "]" in candidate:
        candidate = candidate[1 : candidate.index("]")]
    elif candidate.count(":") == 1:  # "192.0.2.1:4711"
        candidate = candidate.split(":", 1)[0]
    try:
        return ipaddress.ip_address(candidate)
    except ValueError:
        return None


class ForwardedMiddleware:
    """ASGI middleware setting the scope's client address from a trusted proxy's headers."""

    def __init__(self, app: ASGIApp, trusted: Iterable[str]) -> None:
        self.app = app
        self.proxies = TrustedProxies(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Rewrite scope["client"] (in place, so outer middleware sees it too), then go on."""
        client = scope.get("client")
        if scope["type"] in ("http", "websocket") and client and self.proxies.networks:
            forwarded: list[str] = []
            real_ip: str | None = None
            for name, value in scope.get("headers", ()):
                if name == b"x-forwarded-for":
                    forwarded.append(value.decode("latin-1"))
                elif name == b"x-real-ip":
                    real_ip = value.decode("latin-1")
            host = self.proxies.client(str(client[0]), forwarded, real_ip)
            if self.proxies.trusts(str(client[0])):
                # TLS ended at the proxy: the console's cookies must still be Secure.
                for name, value in scope.get("headers", ()):
                    if name == b"x-forwarded-proto" and value.strip().lower() == b"https":
                        scope["scheme"] = "https"
            if host != client[0]:
                scope["client"] = (host, 0)
        await self.app(scope, receive, send)
