"""The server side of RFC 6455 framing that the presence socket speaks: handshake key, frames."""

from __future__ import annotations

import base64
import hashlib
import struct

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# A heartbeat message is ~150 bytes and the domain refuses more than 1 KiB; a
# larger message is not a location screen's and closes the socket (1009).
MAX_MESSAGE = 16 * 1024

OP_CONTINUATION, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA


def accept_key(key: str) -> str:
    """The Sec-WebSocket-Accept answer to a client's Sec-WebSocket-Key (RFC 6455 §4.2.2)."""
    digest = hashlib.sha1(key.encode("ascii") + _GUID, usedforsecurity=False).digest()
    return base64.b64encode(digest).decode("ascii")


def server_frame(opcode: int, payload: bytes) -> bytes:
    """One final, unmasked server frame (servers never mask, RFC 6455 §5.1)."""
    n = len(payload)
    if n < 126:
        return struct.pack("!BB", 0x80 | opcode, n) + payload
    if n < 1 << 16:
        return struct.pack("!BBH", 0x80 | opcode, 126, n) + payload
    return struct.pack("!BBQ", 0x80 | opcode, 127, n) + payload


def close_frame(code: int, reason: str = "") -> bytes:
    """A close frame with a status code and a short reason."""
    return server_frame(OP_CLOSE, struct.pack("!H", code) + reason.encode("utf-8")[:123])


def unmask(payload: bytes, key: bytes) -> bytes:
    """Undo a client's masking (XOR with the 4-byte key, repeated)."""
    n = len(payload)
    if not n:
        return payload
    # As one big integer: ~1 µs for a heartbeat, against ~20 µs byte by byte.
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(repeated, "little")).to_bytes(
        n, "little"
    )


class FrameError(Exception):
    """A client broke the WebSocket protocol; the socket closes with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def take_frame(buffer: bytearray) -> tuple[bool, int, bytes] | None:
    """Take one complete client frame off ``buffer``: (final, opcode, payload), or None."""
    if len(buffer) < 2:
        return None
    first, second = buffer[0], buffer[1]
    if first & 0x70:
        raise FrameError(1002, "reserved bits set (no extension was agreed)")
    if not second & 0x80:
        raise FrameError(1002, "client frames must be masked")
    opcode, length, at = first & 0x0F, second & 0x7F, 2
    if opcode >= OP_CLOSE and (length > 125 or not first & 0x80):
        raise FrameError(1002, "control frames are short and never fragmented")
    if length == 126:
        if len(buffer) < 4:
            return None
        (length,) = struct.unpack_from("!H", buffer, 2)
        at = 4
    elif length == 127:
        if len(buffer) < 10:
            return None
        (length,) = struct.unpack_from("!Q", buffer, 2)
        at = 10
    if length > MAX_MESSAGE:
        raise FrameError(1009, "message too big for a heartbeat")
    end = at + 4 + length
    if len(buffer) < end:
        return None
    payload = unmask(bytes(buffer[at + 4 : end]), bytes(buffer[at : at + 4]))
    del buffer[:end]
    return bool(first & 0x80), opcode, payload
