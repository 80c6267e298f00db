"""Rate-limit pushes to one subscriber: at most one value per interval, the latest wins.

Feed it whole-state messages (snapshots): values replaced while waiting are
dropped, so per-event messages would be lost.

    async with pubsub.subscribe(channel) as sub:
        async for message in coalesce(sub, 1.0):
            await websocket.send_json(message)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Coalescer(Generic[T]):
    """Holds the latest value and releases at most one per ``min_interval_s``."""

    def __init__(
        self, min_interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if min_interval_s < 0:
            raise ValueError("min_interval_s must be >= 0")
        self.min_interval_s = min_interval_s
        self._clock = clock
        self._value: T | None = None
        self._has_value = False
        self._closed = False
        self._last_release: float | None = None
        self._changed = asyncio.Event()
        self.replaced = 0  # values dropped because a newer one arrived first

    def put(self, value: T) -> None:
        """Offer a value; it replaces any value not yet released."""
        if self._closed:
            raise RuntimeError("put() after close()")
        if self._has_value:
            self.replaced += 1
        self._value, self._has_value = value, True
        self._changed.set()

    def close(self) -> None:
        """No more values: iteration ends once the pending value (if any) is released."""
        self._closed = True
        self._changed.set()

    def __aiter__(self) -> Coalescer[T]:
        """Iterate over released values."""
        return self

    async def __anext__(self) -> T:
        """Wait for a value and for the interval since the previous release, then release."""
        while True:
            if self._has_value:
                if self._last_release is not None:
                    delay = self._last_release + self.min_interval_s - self._clock()
                    if delay > 0:
                        # Newer values may replace the pending one while we sleep.
                        await asyncio.sleep(delay)
                        continue
                value = self._value
                self._value, self._has_value = None, False
                self._last_release = self._clock()
                return value  # type: ignore[return-value]  # _has_value guarantees a T
            if self._closed:
                raise StopAsyncIteration
            self._changed.clear()
            await self._changed.wait()


async def coalesce(source: AsyncIterable[T], min_interval_s: float = 1.0) -> AsyncIterator[T]:
    """Yield from ``source`` at most once per interval, always the newest value."""
    coalescer: Coalescer[T] = Coalescer(min_interval_s)
    failure: list[BaseException] = []

    async def pump() -> None:
        try:
            async for value in source:
                coalescer.put(value)
        except Exception as error:  # re-raised to the consumer below
            failure.append(error)
        finally:
            coalescer.close()

    task = asyncio.create_task(pump())
    try:
        async for value in coalescer:
            yield value
        if failure:
            raise failure[0]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
