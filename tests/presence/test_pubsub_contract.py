"""The PubSub contract and coalescing, run against both back-ends."""

from __future__ import annotations

import asyncio
import time

import pytest

from summitcast.presence.base import Message
from summitcast.presence.coalesce import coalesce
from tests.presence.conftest import Backend

pytestmark = pytest.mark.integration


def test_pubsub_delivers_between_workers(backend: Backend) -> None:
    async def scenario(b: Backend) -> list[Message | None]:
        worker1, worker2 = b.pubsub(), b.pubsub()
        async with worker1.subscribe("summit-1") as sub:
            await worker2.publish("summit-1", {"total": 3, "by_country": {"DE": 3}})
            await worker2.publish("summit-1", {"total": 4, "by_country": {"DE": 4}})
            return [await sub.get(timeout=5), await sub.get(timeout=5)]

    assert backend.run(scenario) == [
        {"total": 3, "by_country": {"DE": 3}},
        {"total": 4, "by_country": {"DE": 4}},
    ]


def test_pubsub_every_subscriber_gets_every_message(backend: Backend) -> None:
    async def scenario(b: Backend) -> list[list[Message | None]]:
        worker1, worker2 = b.pubsub(), b.pubsub()
        async with (
            worker1.subscribe("summit-1") as a,
            worker1.subscribe("summit-1") as b1,
            worker2.subscribe("summit-1") as c,
        ):
            await worker1.publish("summit-1", {"n": 1})
            return [[await s.get(timeout=5)] for s in (a, b1, c)]

    assert backend.run(scenario) == [[{"n": 1}], [{"n": 1}], [{"n": 1}]]


def test_pubsub_channels_are_separate(backend: Backend) -> None:
    async def scenario(b: Backend) -> list[Message | None]:
        worker1, worker2 = b.pubsub(), b.pubsub()
        async with worker1.subscribe("summit-1") as one, worker1.subscribe("summit-2") as two:
            await worker2.publish("summit-2", {"to": 2})
            await worker2.publish("summit-1", {"to": 1})
            return [await one.get(timeout=5), await two.get(timeout=5), await two.get(0.2)]

    assert backend.run(scenario) == [{"to": 1}, {"to": 2}, None]


def test_pubsub_resubscribe_after_leaving_receives_again(backend: Backend) -> None:
    async def scenario(b: Backend) -> list[Message | None]:
        worker1, worker2 = b.pubsub(), b.pubsub()
        async with worker1.subscribe("summit-1") as sub:
            await worker2.publish("summit-1", {"n": 1})
            first = await sub.get(timeout=5)
        await worker2.publish("summit-1", {"n": 2})  # nobody listens: dropped
        async with worker1.subscribe("summit-1") as sub:
            await worker2.publish("summit-1", {"n": 3})
            return [first, await sub.get(timeout=5)]

    assert backend.run(scenario) == [{"n": 1}, {"n": 3}]


def test_coalesce_burst_yields_first_then_only_latest(backend: Backend) -> None:
    interval = 0.3

    async def scenario(b: Backend) -> tuple[list[Message], float]:
        worker1, worker2 = b.pubsub(), b.pubsub()
        async with worker1.subscribe("summit-1") as sub:
            pushes = coalesce(sub, interval)
            await worker2.publish("summit-1", {"n": 0})
            first = await anext(pushes)
            released_at = time.monotonic()
            for n in range(1, 11):
                await worker2.publish("summit-1", {"n": n})
            second = await anext(pushes)
            gap = time.monotonic() - released_at
            await pushes.aclose()
            return [first, second], gap

    messages, gap = backend.run(scenario)
    assert messages == [{"n": 0}, {"n": 10}]
    assert gap >= interval - 0.01  # sleep granularity


def test_pubsub_publish_during_subscribe_of_other_task_is_not_lost(backend: Backend) -> None:
    async def scenario(b: Backend) -> list[Message | None]:
        worker1, worker2 = b.pubsub(), b.pubsub()
        entered = asyncio.Event()
        got: list[Message | None] = []

        async def listener() -> None:
            async with worker1.subscribe("summit-1") as sub:
                entered.set()
                got.append(await sub.get(timeout=5))

        task = asyncio.create_task(listener())
        await entered.wait()
        await worker2.publish("summit-1", {"n": 1})
        await task
        return got

    assert backend.run(scenario) == [{"n": 1}]
