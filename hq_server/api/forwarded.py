"""The client's address behind a reverse proxy: X-Forwarded-For / X-Real-IP, from trusted proxies
only.

The address of a call is what the login throttle counts failures by and what the audit log
records. A forwarded header is only a claim, so it is believed only when the connection comes
from a proxy listed in the `trusted_proxies` setting (none by default: a local client must not
be able to name any address it likes). From a trusted proxy, in this order:

1. X-Forwarded-For, when the request has one: read from the right, the entries each proxy
   appended, and the first address that is not itself a trusted proxy is the client; entries
   left of it were written by the client and are ignored (an entry that is no address stops the
   walk at the last good one; none good: the proxy itself).
2. X-Real-IP, only without any X-Forwarded-For, and only when it comes once: twice means the
   proxy passed a client's own header on beside its own, and neither can be told apart.
3. Otherwise the proxy's own address.

Configure the proxy to append to X-Forwarded-For (nginx: `$proxy_add_x_forwarded_for`) or to
set X-Real-IP and drop the client's X-Forwarded-For. uvicorn's own handling of these headers is
turned off (`hq serve`), since it trusts 127.0.0.1 by default.
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

    def client(
        self, peer: str, forwarded_for: Sequence[str], real_ip: str | Sequence[str] | None
    ) -> str:
        """The client's address for a connection from `peer` with these header values (every
        X-Forwarded-For and X-Real-IP header of the request; see the module for the order)."""
        if not self.networks or not self.trusts(peer):
            return peer
        hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
        hops = [hop for hop in hops if hop]
        if not hops:
            real_ips = [real_ip] if isinstance(real_ip, str) else list(real_ip or ())
            named = _address(real_ips[0]) if len(real_ips) == 1 else None
            return peer if named is None else str(named)
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
            real_ips: list[str] = []
            for name, value in scope.get("headers", ()):
                if name == b"x-forwarded-for":
                    forwarded.append(value.decode("latin-1"))
                elif name == b"x-real-ip":
                    real_ips.append(value.decode("latin-1"))
            host = self.proxies.client(str(client[0]), forwarded, real_ips)
            if self.proxies.trusts(str(client[0])):
                # TLS ended at the proxy: the console's cookies must still be Secure.
                for name, value in scope.get("headers", ()):
                    if name == b"x-forwarded-proto" and value.strip().lower() == b"https":
                        scope["scheme"] = "https"
            if host != client[0]:
                scope["client"] = (host, 0)
        await self.app(scope, receive, send)
