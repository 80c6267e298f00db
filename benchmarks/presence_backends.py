"""Heartbeats per second of the presence back-ends, each against a bare reference.

memory: MemoryPresence.heartbeat vs a bare ``dict[location] = now`` in the same loop.
redis:  RedisPresence.heartbeat (one Lua script per beat; sequential, and with many
        beats in flight as concurrent WebSocket handlers would send them) vs a bare
        pipelined ZADD of the same batch size.

    .venv/bin/python benchmarks/presence_backends.py [--locations 30000] [--redis URL]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

import redis.asyncio as aioredis

from summitcast.presence.memory import MemoryPresence
from summitcast.presence.redis import RedisPresence

COUNTRIES = ["DE", "FR", "BR", "IN", "NG", "US", "JP", "ZZ"]


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


async def bench_memory(locations: int, rounds: int) -> None:
    """Memory back-end vs a bare dict update."""
    ids = [f"loc-{i}" for i in range(locations)]
    presence = MemoryPresence(timeout_s=35.0)
    start = time.perf_counter()
    for r in range(rounds):
        now = r * 10.0
        for i, loc in enumerate(ids):
            await presence.heartbeat("bench", loc, COUNTRIES[i % len(COUNTRIES)], now=now)
        await presence.expire("bench", now=now)
    ours = _rate(locations * rounds, time.perf_counter() - start)

    bare: dict[str, float] = {}
    start = time.perf_counter()
    for r in range(rounds):
        now = r * 10.0
        for loc in ids:
            bare[loc] = now
    reference = _rate(locations * rounds, time.perf_counter() - start)
    print(
        f"memory  heartbeat {ours:12,.0f}/s   bare dict {reference:12,.0f}/s   "
        f"ratio {ours / reference:.3f}"
    )


async def bench_redis(url: str, locations: int, in_flight: int) -> None:
    """Redis back-end (sequential and concurrent) vs a bare pipelined ZADD."""
    prefix = f"summitcast-bench-{uuid.uuid4().hex}"
    client = aioredis.Redis.from_url(url, max_connections=in_flight + 4)
    presence = RedisPresence(client, timeout_s=35.0, prefix=prefix)
    ids = [f"loc-{i}" for i in range(locations)]
    try:
        sequential = min(locations, 5000)
        start = time.perf_counter()
        for i in range(sequential):
            await presence.heartbeat("bench", ids[i], COUNTRIES[i % len(COUNTRIES)], now=1.0)
        seq_rate = _rate(sequential, time.perf_counter() - start)

        start = time.perf_counter()
        for lo in range(0, locations, in_flight):
            await asyncio.gather(
                *(
                    presence.heartbeat("bench", loc, COUNTRIES[i % len(COUNTRIES)], now=2.0)
                    for i, loc in enumerate(ids[lo : lo + in_flight])
                )
            )
        conc_rate = _rate(locations, time.perf_counter() - start)

        key = f"{prefix}:reference"
        start = time.perf_counter()
        for lo in range(0, locations, in_flight):
            pipe = client.pipeline(transaction=False)
            for loc in ids[lo : lo + in_flight]:
                pipe.zadd(key, {loc: 3.0})
            await pipe.execute()
        reference = _rate(locations, time.perf_counter() - start)

        start = time.perf_counter()
        snapshots = 200
        for _ in range(snapshots):
            await presence.snapshot("bench", now=3.0)
        snap_ms = (time.perf_counter() - start) / snapshots * 1000
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await presence.close()
    print(
        f"redis   heartbeat sequential {seq_rate:10,.0f}/s   "
        f"{in_flight} in flight {conc_rate:10,.0f}/s   "
        f"bare ZADD pipeline({in_flight}) {reference:10,.0f}/s   "
        f"ratio {conc_rate / reference:.3f} (sequential {seq_rate / reference:.3f})"
    )
    print(f"redis   snapshot of {locations} online locations: {snap_ms:.2f} ms")


def main() -> None:
    """Run both benchmarks and print ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--locations", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    asyncio.run(bench_memory(args.locations, args.rounds))
    asyncio.run(bench_redis(args.redis, args.locations, args.in_flight))


if __name__ == "__main__":
    main()
