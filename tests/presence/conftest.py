"""One fixture, two back-ends: every contract test runs on in-process and Redis presence."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from summitcast.presence.base import Presence, PubSub
from summitcast.presence.memory import MemoryPresence, MemoryPubSub
from summitcast.presence.redis import RedisPresence, RedisPubSub

REDIS_URL = os.environ.get("SUMMITCAST_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TIMEOUT_S = 35.0


def redis_or_skip() -> None:
    """Skip when Redis is down, but fail on CI where it must be there."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as error:
        message = f"Redis at {REDIS_URL} is unreachable: {error}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (CI=true: Redis is required)")
        pytest.skip(message)


@dataclass
class Backend:
    """Makes handles on one shared presence state, as several workers would hold."""

    name: str
    prefix: str = ""
    _memory_presence: MemoryPresence | None = None
    _memory_pubsub: MemoryPubSub | None = None
    _opened: list[Presence | PubSub] = field(default_factory=list)

    def presence(self) -> Presence:
        """A new worker's presence handle (in-process: the one shared object)."""
        if self.name == "memory":
            if self._memory_presence is None:
                self._memory_presence = MemoryPresence(TIMEOUT_S)
            return self._memory_presence
        handle = RedisPresence(
            aioredis.Redis.from_url(REDIS_URL), timeout_s=TIMEOUT_S, prefix=self.prefix
        )
        self._opened.append(handle)
        return handle

    def pubsub(self) -> PubSub:
        """A new worker's pub/sub handle (in-process: the one shared object)."""
        if self.name == "memory":
            if self._memory_pubsub is None:
                self._memory_pubsub = MemoryPubSub()
            return self._memory_pubsub
        handle = RedisPubSub(aioredis.Redis.from_url(REDIS_URL), prefix=self.prefix)
        self._opened.append(handle)
        return handle

    def run(self, scenario: Callable[[Backend], Awaitable[Any]]) -> Any:
        """Run one async scenario on a fresh event loop, closing every handle after it."""

        async def main() -> Any:
            try:
                return await scenario(self)
            finally:
                for handle in self._opened:
                    await handle.close()
                for memory in (self._memory_presence, self._memory_pubsub):
                    if memory is not None:
                        await memory.close()
                self._opened.clear()
                self._memory_presence = self._memory_pubsub = None

        return asyncio.run(main())


def _redis_backend() -> Iterator[Backend]:
    redis_or_skip()
    prefix = f"summitcast-test-{uuid.uuid4().hex}"
    yield Backend("redis", prefix=prefix)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """Each back-end in turn; Redis keys live under a random prefix deleted afterwards."""
    if request.param == "memory":
        yield Backend("memory")
    else:
        yield from _redis_backend()


@pytest.fixture
def redis_backend() -> Iterator[Backend]:
    """The Redis back-end alone, for what only it does."""
    yield from _redis_backend()
