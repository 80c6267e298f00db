"""TrustedProxies: X-Forwarded-For/-Proto believed from trusted proxies only, right to left."""

from __future__ import annotations

import asyncio
from ipaddress import ip_network

import pytest
from starlette.types import Message, Receive, Scope, Send

from summitcast.web.proxies import TrustedProxies

pytestmark = pytest.mark.unit


def _seen(
    peer: str,
    headers: list[tuple[str, str]],
    *,
    trusted: str = "127.0.0.1/32 10.0.0.0/8 ::1/128",
    kind: str = "http",
) -> tuple[str, str]:
    """(client host, scheme) as the app behind TrustedProxies sees a request."""
    seen: dict[str, Scope] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen["scope"] = scope

    async def receive() -> Message:
        return {"type": "http.request"}

    async def send(message: Message) -> None:
        return None

    middleware = TrustedProxies(app, trusted=[ip_network(n) for n in trusted.split()])
    scope = {
        "type": kind,
        "scheme": "http" if kind == "http" else "ws",
        "client": (peer, 40000),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
    }
    asyncio.run(middleware(scope, receive, send))
    return seen["scope"]["client"][0], seen["scope"]["scheme"]


def test_client_is_the_right_most_untrusted_forwarded_address() -> None:
    # The client wrote "192.0.2.66" itself; our nginx (10.0.0.5) appended the real peer.
    headers = [("X-Forwarded-For", "192.0.2.66, 198.51.100.7, 10.0.0.5")]

    assert _seen("127.0.0.1", headers) == ("198.51.100.7", "http")


def test_forwarded_headers_of_an_untrusted_peer_are_ignored() -> None:
    headers = [("X-Forwarded-For", "198.51.100.7"), ("X-Forwarded-Proto", "https")]

    assert _seen("203.0.113.9", headers) == ("203.0.113.9", "http")


def test_forwarded_proto_sets_the_scheme_for_pages_and_sockets() -> None:
    headers = [("X-Forwarded-For", "198.51.100.7"), ("X-Forwarded-Proto", "https")]

    assert _seen("127.0.0.1", headers) == ("198.51.100.7", "https")
    assert _seen("127.0.0.1", headers, kind="websocket") == ("198.51.100.7", "wss")
    assert _seen("127.0.0.1", [("X-Forwarded-Proto", "gopher")]) == ("127.0.0.1", "http")


def test_several_header_lines_and_ipv6_entries_are_read_as_one_list() -> None:
    headers = [
        ("X-Forwarded-For", "192.0.2.66"),
        ("X-Forwarded-For", "[2001:db8::7]:51000, 10.0.0.5"),
    ]

    assert _seen("::1", headers) == ("2001:db8::7", "http")


def test_only_trusted_hops_leave_the_left_most_one_as_the_client() -> None:
    assert _seen("127.0.0.1", [("X-Forwarded-For", "10.0.0.9, 10.0.0.5")])[0] == "10.0.0.9"
    assert _seen("127.0.0.1", [])[0] == "127.0.0.1"  # the proxy's own health check


def test_an_entry_that_is_not_an_address_stands_for_the_client_as_it_is() -> None:
    # Nothing left of it can be believed; it is only ever hashed into a rate-limit key.
    headers = [("X-Forwarded-For", "198.51.100.7, unknown, 10.0.0.5")]

    assert _seen("127.0.0.1", headers)[0] == "unknown"
