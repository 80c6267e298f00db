"""Location screens' presence sockets, served by a callback-only WebSocket protocol.

Why not the ASGI WebSocket: at 15,000 sockets per worker, every heartbeat re-created
the socket's pending ``receive()`` (coroutines, a future, a timer) and that object
lived until the next heartbeat ~10 s later, long enough to reach the collector's
oldest generation. Full collections then rescanned ~1 M objects every 10–25 s and
paused the worker for 0.5–1.4 s each (benchmarks/README.md): the heartbeat p99. Here
nothing waits between two messages: a socket is one protocol object and its
transport, a message is handled by a short task that is gone within milliseconds,
and one sweep per worker (not a timer per socket) closes silent sockets.

uvicorn hands every WebSocket upgrade to its ``ws`` protocol class; ``summitcast
serve`` names :class:`PresenceWebSockets` there. It serves ``/live/ws`` itself and
hands every other WebSocket (dashboards, public figures) to uvicorn's own
implementation unchanged. Without it (tests, another server) the same conversation
runs in :func:`serve_screen` (the ASGI route): both call presence_protocol's ``answer``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import struct
import time
from collections import deque
from typing import Annotated, Any, cast
from urllib.parse import parse_qs

from fastapi import Depends
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket, WebSocketDisconnect

from summitcast.services.live import LiveService
from summitcast.web.on_air import OnAirScreens
from summitcast.web.transport.presence_protocol import PUSH_ON_AIR, SOCKET_PATH, answer, hello_text
from summitcast.web.transport.websocket_frames import (
    MAX_MESSAGE,
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameError,
    accept_key,
    close_frame,
    server_frame,
    take_frame,
)

# Messages a socket may have waiting while its previous one is still being answered;
# a screen sends one every ~10 s, so more means a flood, which closes it (1008).
MAX_WAITING = 8
# A client that stops reading our answers is dropped before its backlog grows.
MAX_WRITE_BUFFER = 64 * 1024


class AsgiScreen:
    """A screen on the ASGI route (serve_screen), as the on-air pushes see it."""

    __slots__ = ("_sending", "_websocket")

    def __init__(self, websocket: Any) -> None:
        self._websocket = websocket
        self._sending: set[asyncio.Task[None]] = set()  # strong references while they run

    def push(self, text: str) -> None:
        """Send one message from a task of its own (the route waits for the next heartbeat)."""
        task = asyncio.get_running_loop().create_task(self._send(text))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, text: str) -> None:
        # A screen that is gone (or going) gets nothing; its route ends by itself.
        with contextlib.suppress(Exception):
            await self._websocket.send_text(text)


class PresenceSockets:
    """The open presence sockets of one worker and the sweep that closes silent ones."""

    def __init__(self, live: LiveService) -> None:
        self.live = live
        # A screen beats every interval; silence for two whole timeouts means it is gone
        # (a half-open TCP connection would otherwise be held for hours). Counting does
        # not depend on it: a silent screen is offline after one timeout.
        self.idle_s = 2 * live.settings.heartbeat_timeout_s
        self.open: set[PresenceWebSockets] = set()
        # Strong references to the messages being answered (the loop keeps only weak ones).
        self.answering: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        # What is on air, pushed to the screens of this worker (web/on_air.py says why).
        self.on_air = OnAirScreens(live.database)

    def start(self) -> None:
        """Start sweeping silent sockets and pushing what is on air."""
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="presence-socket-sweep")
        self.on_air.start()

    def joined(self, location_id: str | None, screen: Any) -> str | None:
        """A screen's first heartbeat was accepted: push it its summit's on-air view; the key."""
        summit_key = None if location_id is None else self.live.summit_of(location_id)
        if summit_key is not None:
            self.on_air.join(summit_key, screen)
        return summit_key

    async def stop(self) -> None:
        """Stop sweeping and pushing (uvicorn closes the sockets themselves at shutdown)."""
        await self.on_air.stop()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper

    def sweep(self, now: float) -> int:
        """Close every socket silent for longer than idle_s; how many were closed."""
        silent = [s for s in self.open if now - s.last_message_at > self.idle_s]
        for socket in silent:
            socket.close(1000, "no heartbeat")
        return len(silent)

    async def _sweep_forever(self) -> None:
        # One pass over a set of 15,000 every few seconds costs ~1 ms; a timer per
        # socket would be 15,000 long-lived handles re-made at every message.
        period = max(0.05, min(5.0, self.idle_s / 4))
        while True:
            await asyncio.sleep(period)
            self.sweep(time.monotonic())


def get_presence_sockets(connection: HTTPConnection) -> PresenceSockets:
    """The open presence sockets of this worker (a dependency of the ASGI route)."""
    sockets: PresenceSockets = connection.app.state.presence_sockets
    return sockets


PresenceSocketsDep = Annotated[PresenceSockets, Depends(get_presence_sockets)]


async def serve_screen(websocket: WebSocket, live: LiveService, sockets: PresenceSockets) -> None:
    """A location screen's presence on an ASGI WebSocket: hello, then signed heartbeats."""
    # `summitcast serve` answers /live/ws before ASGI (PresenceWebSockets below); this
    # serves it under any other ASGI server and in the in-process test client.
    try:
        await websocket.accept()
        await websocket.send_text(hello_text(live))
    except (WebSocketDisconnect, RuntimeError):
        # The screen gave up while its handshake waited (a herd of reconnects on a busy
        # worker): uvicorn drops the accept of a closing connection and then refuses
        # any send with a RuntimeError. Nothing to answer; the screen retries later.
        return
    # Silence for two whole timeouts closes the socket, as PresenceSockets' sweep does.
    idle_s = sockets.idle_s
    screen = AsgiScreen(websocket)  # gets what is on air once its first heartbeat counts
    on_air = PUSH_ON_AIR in websocket.query_params.getlist("push")
    bound: str | None = None
    summit_key: str | None = None
    try:
        while True:
            try:
                async with asyncio.timeout(idle_s):
                    message = await websocket.receive()
            except TimeoutError:
                await websocket.close(code=1000, reason="no heartbeat")
                return
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            reply = await answer(live, text if isinstance(text, str) else "", bound)
            bound = reply.bound
            if on_air and summit_key is None and bound is not None:
                summit_key = sockets.joined(bound, screen)
            if reply.text is not None:
                await websocket.send_text(reply.text)
            if reply.close:
                await websocket.close(code=reply.close_code, reason=reply.close_reason)
                return
    except WebSocketDisconnect:
        return
    finally:
        if summit_key is not None:
            sockets.on_air.leave(summit_key, screen)


def presence_sockets_of(app: Any) -> PresenceSockets | None:
    """The PresenceSockets of an app under uvicorn's wrappers (each keeps the next as .app)."""
    for _ in range(8):
        found = getattr(getattr(app, "state", None), "presence_sockets", None)
        if isinstance(found, PresenceSockets):
            return found
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None


class PresenceWebSockets(asyncio.Protocol):
    """uvicorn's ws protocol class: /live/ws served here, other sockets handed to uvicorn's."""

    # Slots: one object per socket for the collector to scan, not an object and a dict.
    __slots__ = (
        "_app_state",
        "_bound",
        "_buffer",
        "_busy",
        "_config",
        "_delegate",
        "_fragments",
        "_on_air",
        "_server_state",
        "_sockets",
        "_summit",
        "_transport",
        "_waiting",
        "last_message_at",
    )

    def __init__(self, config: Any, server_state: Any, app_state: Any, **_: Any) -> None:
        self._config = config
        self._server_state = server_state
        self._app_state = app_state
        self._transport: asyncio.Transport | None = None
        self._delegate: asyncio.Protocol | None = None
        self._sockets: PresenceSockets | None = None
        self._buffer = bytearray()
        self._fragments: bytearray | None = None
        self._waiting: deque[str] | None = None
        self._busy = False
        self._bound: str | None = None
        self._on_air = False  # the screen asked for on-air pushes (?push=on_air)
        self._summit: str | None = None  # set once the screen receives on-air pushes
        self.last_message_at = time.monotonic()

    # --- uvicorn's side -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport; the upgrade request follows as the first data."""
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self._transport = cast(asyncio.Transport, transport)
        # uvicorn's HTTP protocol of this connection is still the transport's protocol
        # here, and is dropped right after. Its httptools parser holds bound methods of
        # it (a reference cycle), so every upgrade left ~14 objects for the collector:
        # 15,000 screens joining made full collections of 0.1–0.4 s (benchmarks/README.md).
        # Unlinked, reference counting frees it once its data_received returns.
        http = transport.get_protocol()
        if http is not self and getattr(http, "parser", None) is not None:
            http.parser = None  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        """The upgrade request first (from uvicorn, whole), then client frames."""
        if self._delegate is not None:
            self._delegate.data_received(data)
        elif self._sockets is None:
            self._upgrade(data)
        else:
            self._buffer += data
            self._read_frames()

    def eof_received(self) -> bool | None:
        """A client that half-closes is gone."""
        if self._delegate is not None:
            return self._delegate.eof_received()
        return None

    def pause_writing(self) -> None:
        """Flow control, for a delegate that writes much (ours write little)."""
        if self._delegate is not None:
            self._delegate.pause_writing()

    def resume_writing(self) -> None:
        """Flow control, for a delegate."""
        if self._delegate is not None:
            self._delegate.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the socket; a message being answered finds the transport gone."""
        if self._delegate is not None:
            self._delegate.connection_lost(exc)
            return
        if self._sockets is not None:
            self._sockets.open.discard(self)
            self._server_state.connections.discard(self)
            if self._summit is not None:
                self._sockets.on_air.leave(self._summit, self)
        self._transport = None

    def shutdown(self) -> None:
        """uvicorn is stopping: 1012 tells the screen to come back (to another worker)."""
        self.close(1012, "server restart")

    # --- the handshake ------------------------------------------------------------------

    def _upgrade(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        method, _, rest = lines[0].partition(" ")
        path, _, query = rest.partition(" ")[0].partition("?")
        self._on_air = PUSH_ON_AIR in parse_qs(query).get("push", [])
        sockets = presence_sockets_of(self._config.loaded_app)
        if path != SOCKET_PATH or sockets is None:
            self._hand_over(head)
            return
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if colon:
                headers[name.strip().lower()] = value.strip()
        key = headers.get("sec-websocket-key", "")
        if headers.get("sec-websocket-version") != "13":
            self._refuse(426, "Only WebSocket version 13 is spoken here.", version=True)
            return
        if method != "GET" or "upgrade" not in headers.get("connection", "").lower():
            self._refuse(400, "A WebSocket opens with GET and Connection: Upgrade.")
            return
        try:
            valid_key = len(base64.b64decode(key, validate=True)) == 16
        except binascii.Error:
            valid_key = False
        if not valid_key:
            self._refuse(400, "Sec-WebSocket-Key must be 16 bytes in base64.")
            return
        transport = self._transport
        assert transport is not None
        self._sockets = sockets
        sockets.open.add(self)
        # uvicorn closes what is in here at shutdown (calling .shutdown()).
        self._server_state.connections.add(self)
        hello = hello_text(sockets.live).encode()
        transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
            + accept_key(key).encode("ascii")
            + b"\r\n\r\n"
            + server_frame(OP_TEXT, hello)
        )

    def _hand_over(self, head: bytes) -> None:
        # Dashboards and public figure sockets: uvicorn's own implementation, as ever.
        from uvicorn.config import WS_PROTOCOLS
        from uvicorn.importer import import_from_string

        protocol_class = import_from_string(WS_PROTOCOLS["auto"])
        delegate: asyncio.Protocol = protocol_class(
            config=self._config, server_state=self._server_state, app_state=self._app_state
        )
        assert self._transport is not None
        self._delegate = delegate
        delegate.connection_made(self._transport)
        delegate.data_received(head)

    def _refuse(self, status: int, message: str, *, version: bool = False) -> None:
        transport = self._transport
        assert transport is not None
        body = message.encode()
        extra = b"Sec-WebSocket-Version: 13\r\n" if version else b""
        reason = b"Upgrade Required" if status == 426 else b"Bad Request"
        transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n%s\r\n%s"
            % (status, reason, len(body), extra, body)
        )
        transport.close()

    # --- frames and messages ------------------------------------------------------------

    def _read_frames(self) -> None:
        try:
            while self._transport is not None:
                frame = take_frame(self._buffer)
                if frame is None:
                    return
                self._frame(*frame)
        except FrameError as error:
            self.close(error.code, error.reason)

    def _frame(self, final: bool, opcode: int, payload: bytes) -> None:
        if opcode == OP_PING:
            self._write(server_frame(OP_PONG, payload))
        elif opcode == OP_PONG:
            pass
        elif opcode == OP_CLOSE:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1000
            # Echo the client's code (RFC 6455 §5.5.1), but never a reserved one.
            self.close(code if 1000 <= code < 5000 and code not in (1005, 1006) else 1000)
        elif opcode in (OP_TEXT, OP_BINARY):
            if self._fragments is not None:
                raise FrameError(1002, "a new message began inside a fragmented one")
            if final:
                self._message(opcode, payload)
            else:
                self._fragments = bytearray(payload)
                self._fragments.insert(0, opcode)  # the message's type rides in front
        elif opcode == OP_CONTINUATION:
            if self._fragments is None:
                raise FrameError(1002, "a continuation frame without a message")
            self._fragments += payload
            if len(self._fragments) > MAX_MESSAGE + 1:
                raise FrameError(1009, "message too big for a heartbeat")
            if final:
                whole, self._fragments = self._fragments, None
                self._message(whole[0], bytes(whole[1:]))
        else:
            raise FrameError(1002, f"unknown opcode {opcode}")

    def _message(self, opcode: int, payload: bytes) -> None:
        self.last_message_at = time.monotonic()
        if opcode == OP_TEXT:
            try:
                text = payload.decode("utf-8")
            except UnicodeDecodeError:
                raise FrameError(1007, "text messages must be UTF-8") from None
        else:
            text = ""  # a binary message is no heartbeat: refused as malformed, as on ASGI
        if self._busy:
            if self._waiting is None:
                self._waiting = deque()
            if len(self._waiting) >= MAX_WAITING:
                raise FrameError(1008, "too many messages at once")
            self._waiting.append(text)
            return
        sockets = self._sockets
        assert sockets is not None
        self._busy = True
        task = asyncio.get_running_loop().create_task(self._answer(text))
        sockets.answering.add(task)
        task.add_done_callback(sockets.answering.discard)

    async def _answer(self, text: str) -> None:
        sockets = self._sockets
        assert sockets is not None
        try:
            while True:
                reply = await answer(sockets.live, text, self._bound)
                self._bound = reply.bound
                if self._on_air and self._summit is None and reply.bound and self._transport:
                    self._summit = sockets.joined(reply.bound, self)
                if reply.text is not None:
                    self._write(server_frame(OP_TEXT, reply.text.encode()))
                if reply.close:
                    self.close(reply.close_code, reply.close_reason)
                    return
                if not self._waiting:
                    return
                text = self._waiting.popleft()
        finally:
            self._busy = False

    def push(self, text: str) -> None:
        """Send a server message (what is on air) between the screen's heartbeats."""
        self._write(server_frame(OP_TEXT, text.encode()))

    def _write(self, frame: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            transport.abort()  # it reads nothing we send: nothing to say a goodbye to
            return
        transport.write(frame)

    def close(self, code: int, reason: str = "") -> None:
        """Send a close frame and close the connection (its pending bytes are sent first)."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.write(close_frame(code, reason))
        transport.close()
