"""Choosing presence back-ends from Settings."""

from __future__ import annotations

import asyncio

import pytest

from summitcast.config import Settings
from summitcast.presence import MemoryPresence, MemoryPubSub, create_backends
from summitcast.presence.redis import RedisPresence, RedisPubSub


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
