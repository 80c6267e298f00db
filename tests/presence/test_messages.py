"""Public presence messages, the sweep, and choosing back-ends from Settings."""

from __future__ import annotations

import asyncio

import pytest

from summitcast.config import Settings
from summitcast.presence import MemoryPresence, MemoryPubSub, create_backends
from summitcast.presence.base import Message, PresenceSnapshot
from summitcast.presence.messages import presence_channel, public_message, sweep
from summitcast.presence.redis import RedisPresence, RedisPubSub
from tests.presence.conftest import Backend


@pytest.mark.unit
def test_public_message_folds_small_countries_into_elsewhere() -> None:
    snapshot = PresenceSnapshot(
        total=14, by_country={"DE": 6, "FR": 5, "IR": 2, "ZZ": 1}, peak=20, peak_at=5.0
    )
    assert public_message(snapshot, k=5) == {
        "type": "presence",
        "total": 14,
        "countries": {"DE": 6, "FR": 5},
        "elsewhere": 3,
        "peak": 20,
    }


@pytest.mark.integration
def test_sweep_publishes_only_when_someone_went_offline(backend: Backend) -> None:
    async def scenario(b: Backend) -> list[object]:
        presence, worker1, worker2 = b.presence(), b.pubsub(), b.pubsub()
        for i in range(6):
            await presence.heartbeat("s", f"loc-{i}", "DE", now=float(i))
        async with worker1.subscribe(presence_channel("s")) as sub:
            nothing_gone = await sweep(presence, worker2, "s", k=5, now=30.0)
            gone = await sweep(presence, worker2, "s", k=5, now=35.5)
            message: Message | None = await sub.get(timeout=5)
            silence = await sub.get(timeout=0.2)
        return [nothing_gone, gone, message, silence]

    assert backend.run(scenario) == [
        [],
        ["loc-0"],
        {"type": "presence", "total": 5, "countries": {"DE": 5}, "elsewhere": 0, "peak": 6},
        None,
    ]


@pytest.mark.unit
def test_create_backends_without_redis_url_is_in_process() -> None:
    presence, pubsub = create_backends(Settings(redis_url="", heartbeat_timeout_s=20.0))
    assert isinstance(presence, MemoryPresence)
    assert isinstance(pubsub, MemoryPubSub)
    assert presence.timeout_s == 20.0


@pytest.mark.unit
def test_create_backends_with_redis_url_uses_redis_and_prefix() -> None:
    async def scenario() -> tuple[object, object, str]:
        settings = Settings(redis_url="redis://127.0.0.1:6379/0", redis_prefix="sc-x")
        presence, pubsub = create_backends(settings)
        try:
            assert isinstance(presence, RedisPresence)
            return type(presence), type(pubsub), presence.prefix
        finally:
            await presence.close()
            await pubsub.close()

    assert asyncio.run(scenario()) == (RedisPresence, RedisPubSub, "sc-x")
