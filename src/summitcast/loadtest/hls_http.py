"""The smallest HTTP/1.1 client the viewer load tool needs: GET over a keep-alive pool per edge.

httpx costs a few hundred microseconds of Python per request, and one load process must
make thousands of requests a second on a core it shares with the edges it measures. This
client speaks only what an HLS player asks of an edge: ``GET path`` with keep-alive,
responses with Content-Length or chunked bodies, bodies read in chunks and discarded
(only counted) unless the caller needs the text (playlists).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from summitcast.errors import ValidationError

_CHUNK = 64 * 1024
_MAX_HEAD = 64 * 1024


class EdgeError(Exception):
    """A request that got no complete HTTP response; ``kind`` names why."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind  # "connect", "timeout", "reset" or "protocol"


@dataclass(frozen=True, slots=True)
class Response:
    """Status, size and (when asked for) body of one response."""

    status: int
    size: int  # body bytes received
    body: bytes  # empty unless the caller kept it


@dataclass(slots=True)
class EdgeCounters:
    """What one edge served this process."""

    requests: int = 0
    bytes: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    connections_opened: int = 0
    pool_waits: int = 0  # requests that waited for a free connection of the pool


def split_base_url(url: str) -> tuple[str, int, str]:
    """Host, port and path prefix of an http:// edge URL; ValidationError when it is not one."""
    parts = urlsplit(url.strip())
    if parts.scheme != "http" or not parts.hostname:
        raise ValidationError(f"{url!r} is not an http:// URL with a host")
    try:
        port = parts.port or 80
    except ValueError as exc:
        raise ValidationError(f"{url!r} has a bad port") from exc
    return parts.hostname, port, parts.path.rstrip("/")


class _Connection:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def abort(self) -> None:
        transport = self.writer.transport
        with contextlib.suppress(Exception):
            transport.abort()


class _StaleConnectionError(Exception):
    """A kept-alive connection the server had already closed: retry on a fresh one."""


class EdgePool:
    """Keep-alive connections to one edge, shared by every viewer using that edge."""

    def __init__(
        self, url: str, *, max_connections: int = 256, timeout_s: float = 4.0, agent: str = ""
    ) -> None:
        self.url = url.rstrip("/")
        self.host, self.port, self.prefix = split_base_url(url)
        self.timeout_s = timeout_s
        self.counters = EdgeCounters()
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(max_connections)
        self._host_header = self.host if self.port == 80 else f"{self.host}:{self.port}"
        self._agent = agent or "summitcast-viewers/1"

    async def get(self, path: str, *, keep_body: bool = False, tag: str = "") -> Response:
        """GET ``path`` (prefixed by the edge URL's path); EdgeError when no response came."""
        request = (
            f"GET {self.prefix}{path} HTTP/1.1\r\nHost: {self._host_header}\r\n"
            f"User-Agent: {self._agent}{tag}\r\nAccept: */*\r\n\r\n"
        ).encode("latin-1")
        self.counters.requests += 1
        if self._slots.locked():
            # Every connection busy: the wait is the load tool's, not the edge's, and a
            # run that waits often should raise --connections before trusting its latencies.
            self.counters.pool_waits += 1
        try:
            async with self._slots:
                async with asyncio.timeout(self.timeout_s):
                    response = await self._exchange(request, keep_body)
        except TimeoutError as exc:
            self.counters.errors["timeout"] += 1
            raise EdgeError("timeout", f"no response within {self.timeout_s:g} s") from exc
        except EdgeError as exc:
            self.counters.errors[exc.kind] += 1
            raise
        self.counters.statuses[response.status] += 1
        return response

    async def _exchange(self, request: bytes, keep_body: bool) -> Response:
        while self._idle:
            connection = self._idle.pop()
            try:
                return await self._on(connection, request, keep_body, reused=True)
            except _StaleConnectionError:
                continue
        return await self._on(await self._open(), request, keep_body, reused=False)

    async def _open(self) -> _Connection:
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port, limit=_MAX_HEAD)
        except OSError as exc:
            raise EdgeError("connect", str(exc) or type(exc).__name__) from exc
        self.counters.connections_opened += 1
        return _Connection(reader, writer)

    async def _on(
        self, connection: _Connection, request: bytes, keep_body: bool, *, reused: bool
    ) -> Response:
        done = False
        try:
            connection.writer.write(request)
            try:
                head = await connection.reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as exc:
                if reused and not exc.partial:
                    raise _StaleConnectionError from exc
                raise EdgeError("reset", "connection closed before the response") from exc
            status, length, chunked, close = _parse_head(head)
            body = await _read_body(connection.reader, length, chunked, keep_body, self.counters)
            done = not close
            return Response(status, body[0], body[1])
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            if reused and isinstance(exc, ConnectionResetError | BrokenPipeError):
                raise _StaleConnectionError from exc
            raise EdgeError("reset", str(exc) or type(exc).__name__) from exc
        except (asyncio.LimitOverrunError, ValueError) as exc:
            raise EdgeError("protocol", f"unreadable response: {exc}") from exc
        finally:
            if done:
                self._idle.append(connection)
            else:
                connection.abort()

    def close(self) -> None:
        """Close every idle connection (busy ones close when their request ends)."""
        for connection in self._idle:
            connection.abort()
        self._idle.clear()


def _header(lower_head: bytes, name: bytes) -> bytes | None:
    """The value of header ``name`` (lower case) in a lower-cased head, or None."""
    at = lower_head.find(b"\r\n" + name + b":")
    if at < 0:
        return None
    start = at + len(name) + 3
    end = lower_head.find(b"\r\n", start)
    return lower_head[start : end if end >= 0 else len(lower_head)].strip()


def _parse_head(head: bytes) -> tuple[int, int | None, bool, bool]:
    """Status, Content-Length, chunked?, close after? of a response head."""
    # Byte searches for the three headers that matter: splitting every header line into
    # a dict cost ~15 µs per response, a third of the tool's CPU per request.
    version, status_text = head[:8], head[9:12]
    if not version.startswith(b"HTTP/1.") or not status_text.isdigit():
        raise EdgeError("protocol", f"bad status line {head[:80]!r}")
    status = int(status_text)
    lower = head.lower()
    length_text = _header(lower, b"content-length")
    length = int(length_text) if length_text is not None else None
    chunked = b"chunked" in (_header(lower, b"transfer-encoding") or b"")
    connection = _header(lower, b"connection")
    close = b"close" in connection if connection is not None else version == b"HTTP/1.0"
    if status in (204, 304) or (100 <= status < 200):
        length, chunked = 0, False
    elif length is None and not chunked:
        close = True  # the body runs until the server closes
    return status, length, chunked, close


async def _read_body(
    reader: asyncio.StreamReader,
    length: int | None,
    chunked: bool,
    keep: bool,
    counters: EdgeCounters,
) -> tuple[int, bytes]:
    """Read a body of known length, chunked, or up to EOF; count it, keep it if asked."""
    kept = bytearray()
    size = 0
    if chunked:
        while True:
            line = await reader.readuntil(b"\r\n")
            n = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if n == 0:
                await reader.readuntil(b"\r\n")  # no trailers from an edge: the final CRLF
                break
            size += await _read_exactly(reader, n, keep, kept, counters)
            await reader.readexactly(2)
    elif length is not None:
        size = await _read_exactly(reader, length, keep, kept, counters)
    else:
        while chunk := await reader.read(_CHUNK):
            size += len(chunk)
            counters.bytes += len(chunk)
            if keep:
                kept += chunk
    return size, bytes(kept)


async def _read_exactly(
    reader: asyncio.StreamReader, n: int, keep: bool, kept: bytearray, counters: EdgeCounters
) -> int:
    remaining = n
    while remaining:
        chunk = await reader.read(min(remaining, _CHUNK))
        if not chunk:
            raise asyncio.IncompleteReadError(b"", remaining)
        remaining -= len(chunk)
        counters.bytes += len(chunk)
        if keep:
            kept += chunk
    return n
