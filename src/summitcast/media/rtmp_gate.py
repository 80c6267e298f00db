"""The RTMP key gate: a TCP relay in front of ffmpeg's RTMP listener that checks the stream key.

ffmpeg's RTMP listener accepts any stream key (measured: a wrong key only logs
"App field don't match up"), so RTMP arrives at ``RtmpGate`` first: it reads the
client's RTMP chunk stream as it passes, and closes the connection before any media
flows unless the ``publish`` command names a key that ``check_key`` accepts. The
listener behind the gate therefore has no key in its URL (``summitcast.media.listeners``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

HANDSHAKE_BYTES = 1 + 1536 + 1536  # C0 + C1 + C2 from the client, before any chunk
MAX_COMMAND_BYTES = 64 * 1024  # a publish command is tiny; anything bigger is hostile
UPSTREAM_WAIT_S = 12.0  # longer than the listener's longest restart backoff (5 s)


class RtmpRefusedError(Exception):
    """The client sent something the gate will not pass on."""


class RtmpSniffer:
    """Reads a client→server RTMP byte stream and decides whether its publish key is right."""

    def __init__(self, check_key: Callable[[str], bool]) -> None:
        self.check_key = check_key
        self.accepted = False
        self._buffer = bytearray()
        self._seen = 0  # client bytes after the handshake, accepted or not
        self._handshake_left = HANDSHAKE_BYTES
        self._chunk_size = 128  # RTMP's initial chunk size
        # Per chunk stream: [timestamp field, length, type id, bytes so far, extended ts?]
        self._streams: dict[int, list[int]] = {}
        self._messages: dict[int, bytearray] = {}

    def feed(self, data: bytes) -> None:
        """Consume client bytes; raise RtmpRefusedError at the first wrong key or early media."""
        if self.accepted:
            return
        if self._handshake_left:
            take = min(self._handshake_left, len(data))
            self._handshake_left -= take
            data = data[take:]
        # Count every byte, not just the unparsed ones: a client can keep the buffer
        # empty with endless empty messages, or grow one message per chunk stream.
        self._seen += len(data)
        if self._seen > MAX_COMMAND_BYTES:
            raise RtmpRefusedError("too much data before publish")
        self._buffer += data
        while not self.accepted and self._chunk():
            pass

    def _chunk(self) -> bool:
        """Parse one chunk from the buffer; False when it is not complete yet."""
        buf = self._buffer
        if not buf:
            return False
        fmt, csid, at = buf[0] >> 6, buf[0] & 0x3F, 1
        if csid == 0:
            if len(buf) < 2:
                return False
            csid, at = 64 + buf[1], 2
        elif csid == 1:
            if len(buf) < 3:
                return False
            csid, at = 64 + buf[1] + buf[2] * 256, 3
        header = (11, 7, 3, 0)[fmt]
        if len(buf) < at + header:
            return False
        state = self._streams.get(csid)
        if state is None:
            if fmt != 0:
                raise RtmpRefusedError("chunk stream starts without a full header")
            state = [0, 0, 0, 0, 0]
            self._streams[csid] = state
        if fmt <= 2:
            ts = int.from_bytes(buf[at : at + 3], "big")
            state[4] = int(ts == 0xFFFFFF)
        if fmt <= 1:
            state[1] = int.from_bytes(buf[at + 3 : at + 6], "big")
            state[2] = buf[at + 6]
        at += header
        if state[4]:
            at += 4  # extended timestamp (also repeated on type-3 chunks, as ffmpeg reads it)
            if len(buf) < at:
                return False
        message = self._messages.setdefault(csid, bytearray())
        take = min(self._chunk_size, state[1] - len(message))
        if len(buf) < at + take:
            return False
        message += buf[at : at + take]
        del buf[: at + take]
        if len(message) >= state[1]:
            self._message(state[2], bytes(message))
            self._messages[csid] = bytearray()
        return True

    def _message(self, type_id: int, payload: bytes) -> None:
        """Act on one complete client message."""
        if type_id == 1 and len(payload) >= 4:  # Set Chunk Size
            self._chunk_size = struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF
            if not 1 <= self._chunk_size <= 0xFFFFFF:
                raise RtmpRefusedError("bad chunk size")
        elif type_id in (8, 9, 18, 15, 22):  # audio, video, data: media before publish
            raise RtmpRefusedError("media before an accepted publish")
        elif type_id in (17, 20):  # AMF3 / AMF0 command
            values = _amf0_values(payload[1:] if type_id == 17 else payload, 4)
            if values and values[0] == "publish":
                name = values[3] if len(values) > 3 and isinstance(values[3], str) else ""
                if not self.check_key(name.split("?", 1)[0]):
                    raise RtmpRefusedError("wrong stream key")
                self.accepted = True


def _amf0_values(data: bytes, limit: int) -> list[object]:
    """Read up to limit AMF0 values (strings, numbers, null; objects skipped)."""
    values: list[object] = []
    at = 0
    while at < len(data) and len(values) < limit:
        marker = data[at]
        at += 1
        if marker == 0x02:  # string
            size = int.from_bytes(data[at : at + 2], "big")
            values.append(data[at + 2 : at + 2 + size].decode("utf-8", "replace"))
            at += 2 + size
        elif marker == 0x00:  # number
            values.append(struct.unpack(">d", data[at : at + 8])[0])
            at += 8
        elif marker in (0x05, 0x06):  # null, undefined
            values.append(None)
        elif marker == 0x01:  # boolean
            values.append(bool(data[at]))
            at += 1
        elif marker == 0x03:  # object: skip properties up to the 00 00 09 end marker
            end = data.find(b"\x00\x00\x09", at)
            if end < 0:
                break
            values.append({})
            at = end + 3
        else:
            break
    return values


class RtmpGate:
    """A TCP relay in front of ffmpeg's RTMP listener that refuses wrong stream keys."""

    def __init__(
        self, host: str, port: int, upstream_port: int, check_key: Callable[[str], bool]
    ) -> None:
        self.host = host
        self.port = port
        self.upstream_port = upstream_port
        self.check_key = check_key
        self.refused = 0
        self.busy = False
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen for studios."""
        self._server = await asyncio.start_server(self._client, self.host, self.port)

    async def stop(self) -> None:
        """Stop listening and drop connections."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _connect_upstream(
        self,
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """Reach ffmpeg's listener, which may be restarting after the last publisher left."""
        deadline = time.monotonic() + UPSTREAM_WAIT_S
        while True:
            try:
                return await asyncio.open_connection("127.0.0.1", self.upstream_port)
            except OSError:
                if time.monotonic() > deadline:
                    return None
                await asyncio.sleep(0.1)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.busy:  # one studio at a time; a second would tear down the first
            writer.close()
            return
        self.busy = True
        sniffer = RtmpSniffer(self.check_key)
        upstream = await self._connect_upstream()
        if upstream is None:
            self.busy = False
            writer.close()
            return
        up_reader, up_writer = upstream

        async def downstream() -> None:
            while data := await up_reader.read(65536):
                writer.write(data)
                await writer.drain()

        back = asyncio.create_task(downstream())
        try:
            while data := await reader.read(65536):
                sniffer.feed(data)  # raises before a refused byte reaches ffmpeg
                up_writer.write(data)
                await up_writer.drain()
        except RtmpRefusedError as exc:
            self.refused += 1
            # The reason, never the key: keys must not reach any log.
            logger.warning("RTMP ingest refused a publisher on port %d: %s", self.port, exc)
        except (ConnectionError, OSError):
            pass
        finally:
            back.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await back
            for w in (writer, up_writer):
                w.close()
            self.busy = False
