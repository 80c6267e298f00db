"""A subscription tried while Redis is away must not spoil later ones on that channel."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from summitcast.presence.redis import RedisPubSub
from tests.loadtest.servers import private_redis

pytestmark = pytest.mark.integration


def test_subscribe_during_an_outage_fails_then_works_once_redis_is_back() -> None:
    with private_redis() as server:

        async def scenario() -> tuple[bool, object]:
            pubsub = RedisPubSub(
                aioredis.Redis.from_url(server.url), prefix="outage", confirm_timeout_s=2
            )
            try:
                server.stop()
                failed = False
                try:
                    async with pubsub.subscribe("figures"):
                        pass
                except (RedisConnectionError, OSError, TimeoutError):
                    failed = True
                server.start()
                # Before the fix this waited for a confirmation that never came.
                async with pubsub.subscribe("figures") as subscription:
                    await pubsub.publish("figures", {"total": 7})
                    message = await subscription.get(timeout=5)
                return failed, message
            finally:
                await pubsub.close()

        failed, message = asyncio.run(scenario())

    assert failed
    assert message == {"total": 7}
