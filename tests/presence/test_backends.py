"""What each back-end adds to the contract: its own clock, memory bounds, key layout."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
import redis.asyncio as aioredis

from summitcast.presence.base import Message
from summitcast.presence.memory import MemoryPresence
from summitcast.presence.redis import RedisPresence, RedisPubSub
from tests.presence.conftest import REDIS_URL, TIMEOUT_S, Backend


@pytest.mark.unit
def test_memory_presence_uses_its_clock_when_now_is_none() -> None:
    clock = [1000.0]

    async def scenario() -> list[object]:
        p = MemoryPresence(TIMEOUT_S, clock=lambda: clock[0])
        came = await p.heartbeat("s", "loc-a", "DE")
        clock[0] += TIMEOUT_S
        return [came, await p.peak("s"), await p.is_online("s", "loc-a"), await p.expire("s")]

    assert asyncio.run(scenario()) == [True, (1, 1000.0), False, ["loc-a"]]


@pytest.mark.unit
def test_memory_presence_heap_stays_bounded_when_expired() -> None:
    async def scenario() -> tuple[int, int]:
        p = MemoryPresence(TIMEOUT_S)
        for t in range(0, 1000, 10):
            for i in range(100):
                await p.heartbeat("s", f"loc-{i}", "DE", now=float(t))
            await p.expire("s", now=float(t))
        # 100 locations, one beat each per 10 s, entries older than 35 s popped.
        return len(p._summits["s"].heap), await p.online_count("s", now=990.0)

    heap_size, online = asyncio.run(scenario())
    assert heap_size <= 100 * 4
    assert online == 100


@pytest.mark.unit
def test_memory_presence_bad_timeout_raises() -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        MemoryPresence(0)


@pytest.mark.integration
def test_redis_presence_uses_server_clock_when_now_is_none(redis_backend: Backend) -> None:
    async def scenario(b: Backend) -> list[object]:
        worker1, worker2 = b.presence(), b.presence()
        came = await worker1.heartbeat("s", "loc-a", "DE")
        peak, at = await worker2.peak("s")
        return [came, peak, at, await worker2.is_online("s", "loc-a")]

    came, peak, at, online = redis_backend.run(scenario)
    assert [came, peak, online] == [True, 1, True]
    assert isinstance(at, float)
    assert abs(at - time.time()) < 5  # Redis TIME is the server's wall clock


@pytest.mark.integration
def test_redis_presence_keeps_every_key_under_its_prefix(redis_backend: Backend) -> None:
    async def scenario(b: Backend) -> None:
        p = b.presence()
        await p.heartbeat("s-1", "loc-a", "DE", now=1.0)
        await p.check_and_store_seq("loc-a", "epoch-one", 1)

    redis_backend.run(scenario)
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        keys = sorted(client.scan_iter(match=f"{redis_backend.prefix}:*"))
        replay_ttl = client.ttl(f"{redis_backend.prefix}:replay:loc-a")
    finally:
        client.close()
    base = f"{redis_backend.prefix}:presence:{{s-1}}"
    assert keys == [
        f"{base}:country",
        f"{base}:counts",
        f"{base}:online",
        f"{base}:peak",
        f"{redis_backend.prefix}:replay:loc-a",
    ]
    assert 0 < replay_ttl <= 24 * 3600


@pytest.mark.integration
def test_redis_presence_accepts_a_decoding_client(redis_backend: Backend) -> None:
    async def scenario() -> list[object]:
        client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
        p = RedisPresence(client, timeout_s=TIMEOUT_S, prefix=redis_backend.prefix)
        try:
            await p.heartbeat("s", "loc-a", "DE", now=1.0)
            return [await p.snapshot("s", now=2.0), await p.expire("s", now=100.0)]
        finally:
            await p.close()

    snapshot, gone = asyncio.run(scenario())
    assert (snapshot.total, snapshot.by_country, gone) == (1, {"DE": 1}, ["loc-a"])


@pytest.mark.integration
def test_redis_pubsub_survives_a_killed_connection(redis_backend: Backend) -> None:
    name = f"{redis_backend.prefix}-sub"

    async def scenario() -> Message | None:
        listener = RedisPubSub(
            aioredis.Redis.from_url(REDIS_URL, client_name=name), prefix=redis_backend.prefix
        )
        sender = RedisPubSub(aioredis.Redis.from_url(REDIS_URL), prefix=redis_backend.prefix)
        admin = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
        try:
            async with listener.subscribe("summit-1") as sub:
                # Kill only our own subscriber connection (other people share this Redis).
                clients = await admin.client_list()
                ids = [c["id"] for c in clients if c.get("name") == name]
                assert len(ids) == 1
                await admin.execute_command("CLIENT", "KILL", "ID", ids[0])
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    await sender.publish("summit-1", {"n": 1})
                    message = await sub.get(timeout=0.2)
                    if message is not None:
                        return message
                return None
        finally:
            await listener.close()
            await sender.close()
            await admin.aclose()

    assert asyncio.run(scenario()) == {"n": 1}
