"""Coalescer: at most one release per interval, the latest value wins."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from summitcast.presence.coalesce import Coalescer, coalesce

pytestmark = pytest.mark.unit


def test_coalescer_first_value_is_released_at_once() -> None:
    async def scenario() -> tuple[int, float]:
        c: Coalescer[int] = Coalescer(min_interval_s=10.0)
        c.put(1)
        start = time.monotonic()
        value = await anext(c)
        return value, time.monotonic() - start

    value, waited = asyncio.run(scenario())
    assert value == 1
    assert waited < 0.5


def test_coalescer_values_within_interval_keep_only_latest() -> None:
    async def scenario() -> tuple[list[int], int, float]:
        c: Coalescer[int] = Coalescer(min_interval_s=0.2)
        c.put(1)
        first = await anext(c)
        start = time.monotonic()
        for n in range(2, 6):
            c.put(n)
        second = await anext(c)
        return [first, second], c.replaced, time.monotonic() - start

    values, replaced, waited = asyncio.run(scenario())
    assert values == [1, 5]
    assert replaced == 3
    assert waited >= 0.19


def test_coalescer_value_put_while_waiting_replaces_pending() -> None:
    async def scenario() -> list[int]:
        c: Coalescer[int] = Coalescer(min_interval_s=0.2)
        c.put(1)
        await anext(c)
        c.put(2)
        later = asyncio.get_running_loop().call_later(0.1, c.put, 3)
        value = await anext(c)
        later.cancel()
        return [value]

    assert asyncio.run(scenario()) == [3]


def test_coalescer_close_releases_pending_then_stops() -> None:
    async def scenario() -> list[int]:
        c: Coalescer[int] = Coalescer(min_interval_s=0.05)
        c.put(1)
        c.close()
        return [v async for v in c]

    assert asyncio.run(scenario()) == [1]


def test_coalescer_put_after_close_raises() -> None:
    async def scenario() -> None:
        c: Coalescer[int] = Coalescer()
        c.close()
        c.put(1)

    with pytest.raises(RuntimeError, match="close"):
        asyncio.run(scenario())


def test_coalesce_ends_with_latest_value_of_finished_source() -> None:
    async def source() -> AsyncIterator[int]:
        for n in range(5):
            yield n

    async def scenario() -> list[int]:
        return [v async for v in coalesce(source(), 0.05)]

    # The pump drains the whole source before the consumer first runs.
    assert asyncio.run(scenario()) == [4]


def test_coalesce_source_error_reaches_consumer() -> None:
    async def source() -> AsyncIterator[int]:
        yield 1
        raise ConnectionError("redis went away")

    async def scenario() -> list[int]:
        return [v async for v in coalesce(source(), 0.01)]

    with pytest.raises(ConnectionError, match="redis went away"):
        asyncio.run(scenario())
