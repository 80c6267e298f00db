"""The heartbeat fast path: the heartbeat POST and the presence socket, before the framework."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from summitcast.services.live import LiveService
from summitcast.web.security import SECURITY_HEADERS
from summitcast.web.transport.presence_protocol import (
    HEARTBEAT_PATH,
    HEARTBEAT_TOO_LARGE,
    MAX_BODY,
    SOCKET_PATH,
    answer_heartbeat,
)
from summitcast.web.transport.presence_socket import PresenceSockets, serve_screen


class HeartbeatFastPath:
    """Hands the heartbeat POST and the presence socket straight to their protocol."""

    # Route matching over ~80 routes, dependency solving, the exit stack and three
    # middleware cost ~300 µs per request; the heartbeat itself ~10 µs
    # (benchmarks/heartbeat_path.py). A socket pays that once, at its handshake, but
    # 30,000 screens reconnecting at once pay it 30,000 times, and each socket's task
    # would keep every frame of that stack alive while the screen stays connected.

    def __init__(
        self,
        app: ASGIApp,
        *,
        live: LiveService,
        sockets: PresenceSockets,
        headers: tuple[tuple[bytes, bytes], ...] = SECURITY_HEADERS,
    ) -> None:
        self.app = app
        self.live = live
        self.sockets = sockets
        self.headers = ((b"content-type", b"application/json"), *headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a heartbeat POST or a presence socket here; pass everything else on."""
        if scope["type"] == "websocket" and scope["path"] == SOCKET_PATH:
            await serve_screen(WebSocket(scope, receive, send), self.live, self.sockets)
            return
        if scope["type"] != "http" or scope["path"] != HEARTBEAT_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body = await self._body(receive)
        extra: list[tuple[str, str]] = []
        if body is None:
            status, answer = 413, HEARTBEAT_TOO_LARGE
        else:
            status, answer, extra = await answer_heartbeat(self.live, body)
        headers = [*self.headers, (b"content-length", str(len(answer)).encode())]
        headers += [(k.encode(), v.encode()) for k, v in extra]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    async def _body(self, receive: Receive) -> bytes | None:
        """The request body, or None once it grows past MAX_BODY."""
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b""  # the client left; its empty heartbeat is refused as malformed
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                return None
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts)
