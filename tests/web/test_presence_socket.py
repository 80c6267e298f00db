"""The callback-only presence socket under a real uvicorn: handshake, frames, answers, ends."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import json
import os
import random
import socket
import struct
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

import pytest
import uvicorn

from summitcast.app import create_app
from summitcast.config import Settings
from summitcast.loadtest.wire import client_frame
from summitcast.presence.memory import MemoryPresence, MemoryPubSub
from summitcast.services import programme
from summitcast.services.programme import SessionInput
from summitcast.storage.database import Database
from summitcast.storage.tables import Location, Session, Summit
from summitcast.web.transport.presence_socket import MAX_WAITING, PresenceWebSockets
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
    take_frame,
)
from tests.services.backends import Flaky
from tests.web.presence_helpers import hall, token

pytestmark = pytest.mark.integration

RNG = random.Random(7)
T = TypeVar("T")


# --- frames, without a server ------------------------------------------------------------


def test_accept_key_matches_rfc_6455_example() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_masked_frames_are_taken_whole_and_one_at_a_time() -> None:
    long_text = b"x" * 300  # a 16-bit extended length
    buffer = bytearray(client_frame(OP_TEXT, b"hello", RNG) + client_frame(OP_TEXT, long_text, RNG))
    partial = bytearray(buffer[:3])

    assert take_frame(partial) is None
    assert take_frame(buffer) == (True, OP_TEXT, b"hello")
    assert take_frame(buffer) == (True, OP_TEXT, long_text)
    assert buffer == bytearray()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (struct.pack("!BB", 0x81, 5) + b"hello", 1002),  # not masked
        (bytes([0xC1]) + client_frame(OP_TEXT, b"hi", RNG)[1:], 1002),  # RSV1 set
        (struct.pack("!BBH", 0x81, 0x80 | 126, MAX_MESSAGE + 1) + b"\0" * 4, 1009),
        (bytes([OP_PING]) + client_frame(OP_PING, b"", RNG)[1:], 1002),  # fragmented ping
    ],
)
def test_broken_frames_raise_with_a_close_code(frame: bytes, code: int) -> None:
    with pytest.raises(FrameError) as error:
        take_frame(bytearray(frame))

    assert error.value.code == code


# --- a real uvicorn with PresenceWebSockets -----------------------------------------------


class Held(Flaky):
    """A presence back-end that can be down (Flaky) or hold every heartbeat until released."""

    def __init__(self, inner: MemoryPresence) -> None:
        super().__init__(inner)
        self.released = threading.Event()
        self.released.set()

    async def accept(self, *args: Any) -> bool | None:
        """Wait for the release, then accept as the inner back-end does."""
        while not self.released.is_set():
            await asyncio.sleep(0.01)
        accept = self.__getattr__("accept")
        result: bool | None = await accept(*args)
        return result


@dataclass
class Served:
    """A summitcast app served by uvicorn in a thread, with PresenceWebSockets."""

    port: int
    server: uvicorn.Server
    presence: Held


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(settings: Settings, database: Database) -> Iterator[Served]:
    """The app under uvicorn (timeout 0.5 s, so a silent socket closes after ~1 s)."""
    presence, pubsub = Held(MemoryPresence(0.5)), MemoryPubSub()
    app = create_app(
        settings.model_copy(update={"heartbeat_timeout_s": 0.5}),
        database=database,
        presence=presence,
        pubsub=pubsub,
    )
    port = _free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, ws=PresenceWebSockets, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield Served(port, server, presence)
    finally:
        server.should_exit = True
        thread.join(timeout=20)


class Peer:
    """A hand-driven WebSocket client that can also break the protocol on purpose."""

    opened: ClassVar[list[Peer]] = []

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        Peer.opened.append(self)

    @classmethod
    async def open(cls, port: int, path: str = "/live/ws", **headers: str) -> tuple[Peer, bytes]:
        """Connect and send an upgrade request; the peer and the response head."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        fields = {
            "Host": f"127.0.0.1:{port}",
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
            "Sec-WebSocket-Version": "13",
        } | {name.replace("_", "-"): value for name, value in headers.items()}
        request = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
        writer.write(request.encode() + b"\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        return cls(reader, writer), head

    def send(self, opcode: int, payload: bytes, *, final: bool = True) -> None:
        """One masked frame."""
        frame = bytearray(client_frame(opcode, payload, RNG))
        if not final:
            frame[0] &= 0x7F
        self.writer.write(bytes(frame))

    def send_json(self, message: object) -> None:
        """One text frame of JSON."""
        self.send(OP_TEXT, json.dumps(message).encode())

    async def frame(self, timeout: float = 5.0) -> tuple[int, bytes]:
        """The next server frame: (opcode, payload); (-1, b"") once the connection ends."""
        try:
            head = await asyncio.wait_for(self.reader.readexactly(2), timeout)
        except asyncio.IncompleteReadError:
            return -1, b""
        assert not head[1] & 0x80, "server frames are never masked"
        length = head[1] & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        return head[0] & 0x0F, await self.reader.readexactly(length)

    async def json(self) -> dict[str, object]:
        """The next frame, which must be a text frame of JSON."""
        opcode, payload = await self.frame()
        assert opcode == OP_TEXT, (opcode, payload)
        result: dict[str, object] = json.loads(payload)
        return result

    async def closed_with(self) -> tuple[int, str]:
        """Read to the close frame: its code and reason."""
        while True:
            opcode, payload = await self.frame()
            if opcode == OP_CLOSE:
                return struct.unpack("!H", payload[:2])[0], payload[2:].decode()
            assert opcode != -1, "the connection ended without a close frame"


def run(scenario: Coroutine[Any, Any, T]) -> T:
    """Run a client scenario, then close every connection it opened."""

    async def whole() -> T:
        try:
            return await scenario
        finally:
            for peer in Peer.opened:
                peer.writer.close()
                with contextlib.suppress(ConnectionError):
                    await peer.writer.wait_closed()
            Peer.opened.clear()

    return asyncio.run(whole())


def _hb(location: Location, seq: int) -> dict[str, object]:
    return {"type": "hb", "token": token(location, seq), "ack": True}


def test_handshake_hello_and_acked_heartbeat_count_the_location(
    served: Served, database: Database
) -> None:
    location = hall(database)

    async def scenario() -> tuple[bytes, dict[str, object], dict[str, object], bool]:
        peer, head = await Peer.open(served.port)
        hello = await peer.json()
        peer.send_json(_hb(location, 0))
        ack = await peer.json()
        online = await served.presence.is_online(str(location.summit_id), location.public_id)
        return head, hello, ack, online

    head, hello, ack, online = run(scenario())

    assert head.startswith(b"HTTP/1.1 101 ")
    assert hello["type"] == "hello"
    assert hello["timeout_s"] == 0.5
    assert ack == {"type": "ack", "seq": 0}
    assert online


def test_heartbeat_split_into_fragments_and_tcp_pieces_is_one_message(
    served: Served, database: Database
) -> None:
    location = hall(database)
    body = json.dumps(_hb(location, 0)).encode()

    async def scenario() -> dict[str, object]:
        peer, _ = await Peer.open(served.port)
        await peer.json()
        frames = client_frame(OP_TEXT, body[:10], RNG)
        first = bytes([frames[0] & 0x7F]) + frames[1:]
        rest = client_frame(OP_CONTINUATION, body[10:], RNG)
        for piece in (first[:3], first[3:], rest[:7], rest[7:]):
            peer.writer.write(piece)
            await peer.writer.drain()
            await asyncio.sleep(0.02)
        return await peer.json()

    assert run(scenario()) == {"type": "ack", "seq": 0}


def test_ping_gets_a_pong_and_close_is_echoed(served: Served) -> None:
    async def scenario() -> tuple[tuple[int, bytes], tuple[int, str]]:
        peer, _ = await Peer.open(served.port)
        await peer.json()
        peer.send(OP_PING, b"are you there")
        pong = await peer.frame()
        peer.send(OP_CLOSE, struct.pack("!H", 1001))
        return pong, await peer.closed_with()

    pong, closed = run(scenario())

    assert pong == (OP_PONG, b"are you there")
    assert closed == (1001, "")


@pytest.mark.parametrize(
    ("send", "expected"),
    [
        (lambda peer: peer.send(OP_TEXT, b"\xff\xfe"), [(1007, "text messages must be UTF-8")]),
        (lambda peer: peer.writer.write(b"\x81\x02hi"), [(1002, "client frames must be masked")]),
        (
            lambda peer: peer.send(OP_TEXT, b"x" * (MAX_MESSAGE + 1)),
            [(1009, "message too big for a heartbeat")],
        ),
        (lambda peer: peer.send(0x3, b""), [(1002, "unknown opcode 3")]),
    ],
)
def test_protocol_errors_close_with_their_code(
    served: Served, send: object, expected: object
) -> None:
    async def scenario() -> list[tuple[int, str]]:
        peer, _ = await Peer.open(served.port)
        await peer.json()
        send(peer)  # type: ignore[operator]
        return [await peer.closed_with()]

    assert run(scenario()) == expected


def test_refused_heartbeats_answer_and_close_as_the_asgi_route(
    served: Served, database: Database
) -> None:
    location = hall(database)
    other = hall(database)

    async def scenario() -> list[object]:
        seen: list[object] = []
        # A forged token: refused, then the socket closes (4401: the link is not valid).
        peer, _ = await Peer.open(served.port)
        await peer.json()
        peer.send_json({"type": "hb", "token": token(location, 0, secret="not-the-secret")})
        seen += [await peer.json(), await peer.closed_with()]
        # A binary message is no heartbeat.
        peer, _ = await Peer.open(served.port)
        await peer.json()
        peer.send(OP_BINARY, b"\x00\x01")
        seen += [await peer.json(), await peer.closed_with()]
        # One socket speaks for one location.
        peer, _ = await Peer.open(served.port)
        await peer.json()
        peer.send_json(_hb(location, 1))
        seen.append(await peer.json())
        peer.send_json(_hb(other, 0))
        seen += [await peer.json(), await peer.closed_with()]
        return seen

    seen = run(scenario())

    assert seen == [
        {"type": "error", "reason": "bad_signature"},
        (4401, "bad_signature"),
        {"type": "error", "reason": "malformed"},
        (1008, "refused"),
        {"type": "ack", "seq": 1},
        {"type": "error", "reason": "wrong_location"},
        (1008, "refused"),
    ]
    assert not asyncio.run(served.presence.is_online(str(other.summit_id), other.public_id))


def test_silent_socket_is_swept_after_two_timeouts(served: Served) -> None:
    async def scenario() -> tuple[tuple[int, str], float]:
        peer, _ = await Peer.open(served.port)
        await peer.json()
        started = time.monotonic()
        return await peer.closed_with(), time.monotonic() - started

    closed, waited = run(scenario())

    assert closed == (1000, "no heartbeat")
    assert 0.9 <= waited < 5.0


def test_bad_upgrades_are_refused_with_a_reason(served: Served) -> None:
    async def scenario() -> list[bytes]:
        heads = []
        for headers in ({"Sec-WebSocket-Version": "8"}, {"Sec-WebSocket-Key": "short"}):
            _, head = await Peer.open(served.port, **headers)
            heads.append(head.split(b"\r\n")[0])
        return heads

    assert run(scenario()) == [
        b"HTTP/1.1 426 Upgrade Required",
        b"HTTP/1.1 400 Bad Request",
    ]


def test_other_sockets_are_handed_to_uvicorns_own(served: Served, database: Database) -> None:
    hall(database)  # makes the test summit

    async def scenario() -> tuple[bytes, dict[str, object]]:
        peer, head = await Peer.open(served.port, "/live/s/test-summit/public")
        return head, await peer.json()

    head, figures = run(scenario())

    assert head.startswith(b"HTTP/1.1 101 ")
    assert (figures["type"], figures["total"]) == ("presence", 0)


def test_shutdown_tells_screens_to_come_back(served: Served) -> None:
    async def scenario() -> tuple[int, str]:
        peer, _ = await Peer.open(served.port)
        await peer.json()
        served.server.should_exit = True
        return await peer.closed_with()

    assert run(scenario()) == (1012, "server restart")


def test_socket_outlives_a_backend_outage_and_counts_again_after_it(
    served: Served, database: Database
) -> None:
    location = hall(database)

    async def scenario() -> list[dict[str, object]]:
        peer, _ = await Peer.open(served.port)
        await peer.json()
        served.presence.down = True
        peer.send_json(_hb(location, 0))
        during = await peer.json()
        served.presence.down = False
        peer.send_json(_hb(location, 1))
        return [during, await peer.json()]

    assert run(scenario()) == [
        {"type": "error", "reason": "unavailable"},
        {"type": "ack", "seq": 1},
    ]


def test_counted_screen_is_pushed_what_is_on_air_and_each_change(
    served: Served, database: Database
) -> None:
    location = hall(database)
    start = datetime(2027, 7, 17, 8, 0, tzinfo=UTC)
    end = start.replace(hour=10)
    with database.session() as db:
        summit = db.get(Summit, location.summit_id)
        assert summit is not None
        session_id = programme.add_session(
            db, summit, SessionInput(title="Opening", planned_start=start, planned_end=end)
        ).id

    async def next_on_air(peer: Peer, seq: int) -> tuple[dict[str, object], int]:
        # A heartbeat every 0.2 s keeps the socket (timeout 0.5 s) while the push comes.
        while True:
            peer.send_json(_hb(location, seq))
            seq += 1
            message = await peer.json()
            if message["type"] == "on_air":
                return message, seq
            await asyncio.sleep(0.2)

    def rename() -> None:
        with database.session() as db:
            session = db.get(Session, session_id)
            assert session is not None
            programme.update_session(
                db, session, SessionInput(title="Opening day", planned_start=start, planned_end=end)
            )

    async def scenario() -> tuple[dict[str, object], dict[str, object], object, int]:
        plain, _ = await Peer.open(served.port)  # the protocol as it was: no pushes
        await plain.json()
        plain.send_json(_hb(location, 0))
        ack = await plain.json()
        peer, _ = await Peer.open(served.port, "/live/ws?push=on_air")
        await peer.json()
        first, seq = await next_on_air(peer, 1)
        await asyncio.to_thread(rename)
        second, _ = await next_on_air(peer, seq)
        # The silent plain socket's next frame closes it: no on-air message came before.
        opcode, _payload = await plain.frame()
        return first, second, ack, opcode

    first, second, ack, plain_next = run(scenario())

    assert (first["session_id"], first["session"], first["active"]) == (
        session_id,
        "Opening",
        False,
    )
    assert second["session"] == "Opening day"
    assert (ack, plain_next) == ({"type": "ack", "seq": 0}, OP_CLOSE)


def test_messages_wait_their_turn_and_a_flood_closes_the_socket(
    served: Served, database: Database
) -> None:
    location = hall(database)

    async def scenario() -> tuple[list[dict[str, object]], tuple[int, str]]:
        peer, _ = await Peer.open(served.port)
        await peer.json()
        served.presence.released.clear()
        for seq in range(3):  # answered in order once the back-end answers
            peer.send_json(_hb(location, seq))
        await asyncio.sleep(0.2)
        served.presence.released.set()
        in_order = [await peer.json() for _ in range(3)]
        served.presence.released.clear()
        for seq in range(3, 3 + 1 + MAX_WAITING + 1):  # one answered, MAX_WAITING wait, one more
            peer.send_json(_hb(location, seq))
        closed = await peer.closed_with()
        served.presence.released.set()
        return in_order, closed

    in_order, closed = run(scenario())

    assert in_order == [{"type": "ack", "seq": seq} for seq in range(3)]
    assert closed == (1008, "too many messages at once")


def test_upgrades_leave_no_http_protocol_for_the_garbage_collector(served: Served) -> None:
    async def scenario() -> None:
        for _ in range(20):
            peer, _ = await Peer.open(served.port)
            await peer.json()

    gc.collect()
    run(scenario())
    time.sleep(0.2)  # the server thread finishes its closes
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        left = [type(o).__name__ for o in gc.garbage]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()

    assert "HttpToolsProtocol" not in left
