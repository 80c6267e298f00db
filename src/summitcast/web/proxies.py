"""TrustedProxies: the client's address and scheme from X-Forwarded-* of trusted proxies only."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from starlette.types import ASGIApp, Receive, Scope, Send

Network = IPv4Network | IPv6Network

# Longest X-Forwarded-For entry looked at: an IPv6 address with brackets and a port fits.
_MAX_ENTRY = 64


def _address(entry: str) -> IPv4Address | IPv6Address | None:
    """The address in one X-Forwarded-For entry ("1.2.3.4", "[2001:db8::1]:443"), else None."""
    text = entry.strip()[:_MAX_ENTRY]
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]  # IPv4 with a port
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class TrustedProxies:
    """Rewrites scope["client"] and scheme from forwarded headers when the peer is trusted."""

    # Done in the app, not by the server (`summitcast serve` keeps uvicorn's proxy_headers
    # off), so it holds under any ASGI server and in tests. The client is the right-most
    # X-Forwarded-For entry that is not itself a trusted proxy: entries to its left were
    # written by the client and may be anything; entries to its right were added by our
    # own proxies. Rate limits key on it (hashed); it is never stored or logged.

    def __init__(self, app: ASGIApp, *, trusted: Iterable[Network]) -> None:
        self.app = app
        self.trusted = tuple(trusted)

    def is_trusted(self, address: IPv4Address | IPv6Address | None) -> bool:
        """Whether the address lies in one of the trusted networks."""
        return address is not None and any(address in network for network in self.trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on with the forwarded client and scheme, if its peer is trusted."""
        if scope["type"] in ("http", "websocket"):
            peer = scope.get("client")
            if peer and self.is_trusted(_address(peer[0])):
                scope = self._forwarded(scope)
        await self.app(scope, receive, send)

    def _forwarded(self, scope: Scope) -> Scope:
        forwarded_for: list[str] = []
        proto = b""
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                forwarded_for += value.decode("latin-1").split(",")
            elif name == b"x-forwarded-proto":
                proto = value  # the last one, written by the proxy nearest to us
        scope = dict(scope)
        client = None
        for entry in reversed(forwarded_for):
            address = _address(entry)
            if address is None:
                # Not an address (a client's "unknown", a proxy's obfuscated id): nothing
                # left of it can be believed, so it stands for the client as it is.
                client = entry.strip()[:_MAX_ENTRY] or None
                break
            client = str(address)
            if not self.is_trusted(address):
                break
        if client is not None:
            scope["client"] = (client, 0)
        scheme = proto.decode("latin-1").rsplit(",", 1)[-1].strip().lower()
        if scheme in ("http", "https"):
            if scope["type"] == "websocket":
                scheme = "wss" if scheme == "https" else "ws"
            scope["scheme"] = scheme
        return scope
