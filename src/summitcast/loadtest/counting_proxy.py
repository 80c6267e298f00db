"""A TCP proxy in front of a server that counts the presence sockets opened through it.

What a server sees of reconnecting screens, measured outside both: every connection
whose request starts ``GET /live/ws`` is one attempt. Runs its own event loop in a
thread, so a synchronous test or benchmark (Playwright) can use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

SOCKET_REQUEST = b"GET /live/ws"


@dataclass
class Counts:
    """Presence socket attempts seen so far (monotonic instants)."""

    attempts: list[float] = field(default_factory=list)

    @property
    def total(self) -> int:
        """How many presence sockets were opened."""
        return len(self.attempts)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


@contextmanager
def counting_proxy(target_host: str, target_port: int) -> Iterator[tuple[int, Counts]]:
    """Listen on a free 127.0.0.1 port forwarding to the target; yield (port, counts)."""
    counts = Counts()
    ready = threading.Event()
    state: dict[str, object] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            first = await reader.read(65536)
            if first.startswith(SOCKET_REQUEST):
                counts.attempts.append(time.monotonic())
            up_reader, up_writer = await asyncio.open_connection(target_host, target_port)
        except (ConnectionError, OSError):
            writer.close()
            return
        up_writer.write(first)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        state["port"] = server.sockets[0].getsockname()[1]
        stop = asyncio.Event()
        state["stop"] = stop
        state["loop"] = asyncio.get_running_loop()
        ready.set()
        async with server:
            await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield int(str(state["port"])), counts
    finally:
        loop = state["loop"]
        stop = state["stop"]
        assert isinstance(loop, asyncio.AbstractEventLoop)
        assert isinstance(stop, asyncio.Event)
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
