"""The smallest WebSocket client the load tool needs (RFC 6455), as an asyncio protocol.

A load generator that costs more CPU than the server it measures measures itself:
the ``websockets`` client spent ~100 µs of Python per heartbeat (a task per screen,
``asyncio.timeout`` per receive, its own keepalive machinery), which on a 2-core
machine took the cores the server needed. This one is callbacks only: no task per
socket, frames built and parsed by hand, pongs answered inline. It speaks only what
a location screen needs: one upgrade, masked text frames out, unmasked text, ping and
close frames in. Anything else closes the connection.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import random
import struct
from collections.abc import Callable
from typing import cast
from urllib.parse import urlsplit

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_HEAD = 16 * 1024  # response headers larger than this are not a summitcast server
_MAX_FRAME = 64 * 1024  # no server message of the protocol comes near this

OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA


class HandshakeError(Exception):
    """The server did not upgrade the connection to a WebSocket."""


def accept_key(key: bytes) -> bytes:
    """The Sec-WebSocket-Accept a server must answer to ``key``."""
    return base64.b64encode(hashlib.sha1(key + _GUID, usedforsecurity=False).digest())


def _mask(payload: bytes, key: bytes) -> bytes:
    # XOR as one big integer: ~1 µs for a heartbeat, against ~20 µs byte by byte.
    n = len(payload)
    if not n:
        return payload
    repeated = (key * (n // 4 + 1))[:n]
    masked = int.from_bytes(payload, "little") ^ int.from_bytes(repeated, "little")
    return masked.to_bytes(n, "little")


def client_frame(opcode: int, payload: bytes, rng: random.Random) -> bytes:
    """One final, masked client frame (clients must mask, RFC 6455 §5.3)."""
    key = rng.getrandbits(32).to_bytes(4, "little")
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + key + _mask(payload, key)


def parse_frames(buffer: bytearray) -> list[tuple[int, bytes]]:
    """Take every complete server frame off the front of ``buffer``: (opcode, payload)."""
    frames: list[tuple[int, bytes]] = []
    while len(buffer) >= 2:
        first, second = buffer[0], buffer[1]
        if second & 0x80:
            raise ValueError("a server frame must not be masked")
        if not first & 0x80:
            raise ValueError("fragmented frames are not part of the presence protocol")
        length, at = second & 0x7F, 2
        if length == 126:
            if len(buffer) < 4:
                break
            (length,) = struct.unpack_from("!H", buffer, 2)
            at = 4
        elif length == 127:
            if len(buffer) < 10:
                break
            (length,) = struct.unpack_from("!Q", buffer, 2)
            at = 10
        if length > _MAX_FRAME:
            raise ValueError(f"server frame of {length} bytes")
        if len(buffer) < at + length:
            break
        frames.append((first & 0x0F, bytes(buffer[at : at + length])))
        del buffer[: at + length]
    return frames


class ScreenSocket(asyncio.Protocol):
    """One client WebSocket; text messages go to ``on_text``, the end to ``on_close``."""

    def __init__(
        self,
        url: str,
        on_text: Callable[[str], None],
        on_close: Callable[[], None],
        rng: random.Random,
    ) -> None:
        parts = urlsplit(url)
        self._host = parts.netloc
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._on_text = on_text
        self._on_close = on_close
        self._rng = rng
        self._key = base64.b64encode(os.urandom(16))
        self._head = bytearray()
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self.upgraded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.open = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Send the upgrade request."""
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self._transport = cast(asyncio.Transport, transport)
        request = (
            f"GET {self._path} HTTP/1.1\r\nHost: {self._host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {self._key.decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        )
        self._transport.write(request.encode("ascii"))

    def data_received(self, data: bytes) -> None:
        """Finish the handshake, then hand complete frames on."""
        if not self.open:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                if len(self._head) > _MAX_HEAD:
                    self._fail(HandshakeError("response headers too large"))
                return
            head, rest = bytes(self._head[:end]), self._head[end + 4 :]
            self._head = bytearray()
            error = self._check_upgrade(head)
            if error is not None:
                self._fail(HandshakeError(error))
                return
            self.open = True
            if not self.upgraded.done():
                self.upgraded.set_result(None)
            data = bytes(rest)
        self._buffer += data
        try:
            frames = parse_frames(self._buffer)
        except ValueError as error:
            self._fail(error)
            return
        for opcode, payload in frames:
            if opcode == OP_TEXT:
                self._on_text(payload.decode("utf-8"))
            elif opcode == OP_PING:
                self._write(OP_PONG, payload)
            elif opcode == OP_CLOSE:
                self.close(payload[:2] or b"\x03\xe8")
                return
            elif opcode != OP_PONG:
                self._fail(ValueError(f"unexpected opcode {opcode}"))
                return

    def _check_upgrade(self, head: bytes) -> str | None:
        lines = head.decode("latin-1").split("\r\n")
        status = lines[0].split(" ", 2)
        if len(status) < 2 or status[1] != "101":
            return f"server answered {lines[0]!r}"
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:])
        }
        if headers.get("sec-websocket-accept", "").encode() != accept_key(self._key):
            return "wrong Sec-WebSocket-Accept"
        return None

    def _write(self, opcode: int, payload: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(client_frame(opcode, payload, self._rng))

    def send_text(self, text: str) -> None:
        """Send one text message (dropped silently once the socket is closing)."""
        self._write(OP_TEXT, text.encode("utf-8"))

    def close(self, code: bytes = b"\x03\xe8") -> None:
        """Send a close frame and close the transport (no closing handshake wait)."""
        self._write(OP_CLOSE, code)
        if self._transport is not None:
            self._transport.close()

    def _fail(self, error: Exception) -> None:
        if not self.upgraded.done():
            self.upgraded.set_exception(error)
        if self._transport is not None:
            self._transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        """Report the end once; a handshake still waiting learns it failed."""
        if not self.upgraded.done():
            self.upgraded.set_exception(exc or ConnectionError("closed during the handshake"))
        was_open, self.open = self.open, False
        self._transport = None
        if was_open:
            self._on_close()
