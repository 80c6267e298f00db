"""Presence and pub/sub on Redis, shared by every worker and app node.

Keys (``{summit}`` is a Redis Cluster hash tag, so one summit's keys share a slot)::

    <prefix>:presence:{<summit>}:online   ZSET  location → last heartbeat (seconds)
    <prefix>:presence:{<summit>}:country  HASH  location → country key
    <prefix>:presence:{<summit>}:counts   HASH  country → tracked locations
    <prefix>:presence:{<summit>}:peak     HASH  peak, at
    <prefix>:replay:<location>            HASH  epoch, seq (expires after replay_ttl_s)
    <prefix>:pubsub:<channel>             pub/sub channel

Every change runs as one Lua script, so ``counts`` always equals the ZSET grouped
by country, whatever the number of workers. ``accept`` touches a location's replay
key and two summits' keys in one script: fine on one Redis (or Sentinel); on Redis
Cluster those keys would first have to share a hash tag. ``counts`` covers tracked locations;
reads subtract those whose timeout passed but that expire() has not dropped yet
(a ZRANGEBYSCORE over a short range), so reads are exact at any ``now``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from functools import wraps
from typing import Any, Concatenate, ParamSpec, TypeAlias, TypeVar

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from summitcast.presence.base import Message, PresenceSnapshot, PresenceUnavailableError
from summitcast.presence.memory import LocalHub, LocalSubscription, encode_message

log = logging.getLogger(__name__)

# What the Redis client raises while the server is away (BusyLoadingError of a Redis
# restarting and MaxConnectionsError are ConnectionErrors): callers see them only as
# PresenceUnavailableError.
OUTAGE = (RedisConnectionError, RedisTimeoutError)

# redis 8 ships its own (non-generic) types; stale types-redis stubs must not be installed.
Redis: TypeAlias = aioredis.Redis
ScriptArgs = list[str | int | float]

# Shared prologue: ARGV[1] is ``now`` or "" for the server clock, ARGV[2] the timeout.
# Redis 7 replicates script effects, so reading TIME inside a script is allowed.
_CLOCK = """
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local cutoff = now - tonumber(ARGV[2])
local function add_count(country, delta)
  if redis.call('HINCRBY', KEYS[3], country, delta) <= 0 then
    redis.call('HDEL', KEYS[3], country)
  end
end
"""

# One heartbeat of one location into one summit's keys; returns 1 when it came online.
_BEAT = """
local function beat(k_online, k_country, k_counts, k_peak, loc, country)
  local function count(c, delta)
    if redis.call('HINCRBY', k_counts, c, delta) <= 0 then redis.call('HDEL', k_counts, c) end
  end
  local old = redis.call('ZSCORE', k_online, loc)
  local came = 0
  if not old then
    redis.call('ZADD', k_online, now, loc)
    redis.call('HSET', k_country, loc, country)
    count(country, 1)
    came = 1
  else
    old = tonumber(old)
    -- past its timeout but not yet expired: offline by the rule, so back online now
    if old <= cutoff then came = 1 end
    local previous = redis.call('HGET', k_country, loc)
    if previous ~= country then
      if previous then count(previous, -1) end
      redis.call('HSET', k_country, loc, country)
      count(country, 1)
    end
    -- GT: a worker whose clock lags never moves a heartbeat backwards
    redis.call('ZADD', k_online, 'GT', now, loc)
  end
  if came == 1 then
    local total = redis.call('ZCARD', k_online) - redis.call('ZCOUNT', k_online, '-inf', cutoff)
    local peak = tonumber(redis.call('HGET', k_peak, 'peak') or '0')
    if total > peak then
      redis.call('HSET', k_peak, 'peak', total, 'at', now)
    end
  end
  return came
end
"""

# KEYS: online, country, counts, peak; ARGV: now, timeout, location, country.
_HEARTBEAT = _CLOCK + _BEAT + "return beat(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[3], ARGV[4])"

# The whole of an accepted heartbeat in one script (one round trip, one reply):
# KEYS: replay, online, country, counts, peak [, the cell summit's online, country,
# counts, peak]; ARGV: now, timeout, location, country, epoch, seq, replay ttl [, cell].
# Returns -1 for a replay (nothing recorded), else 1 when the location came online.
_ACCEPT = (
    _CLOCK
    + _BEAT
    + """
local current = redis.call('HMGET', KEYS[1], 'epoch', 'seq')
if current[1] == ARGV[5] and tonumber(ARGV[6]) <= tonumber(current[2]) then return -1 end
redis.call('HSET', KEYS[1], 'epoch', ARGV[5], 'seq', ARGV[6])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[7]))
local came = beat(KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[3], ARGV[4])
if #KEYS == 9 then beat(KEYS[6], KEYS[7], KEYS[8], KEYS[9], ARGV[3], ARGV[8]) end
return came
"""
)

# KEYS: online, country, counts; ARGV: now, timeout, batch size.
_EXPIRE = (
    _CLOCK
    + """
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff, 'LIMIT', 0, tonumber(ARGV[3]))
for _, loc in ipairs(gone) do
  redis.call('ZREM', KEYS[1], loc)
  local country = redis.call('HGET', KEYS[2], loc)
  if country then
    add_count(country, -1)
    redis.call('HDEL', KEYS[2], loc)
  end
end
return gone
"""
)

# KEYS: online, country, counts, peak; ARGV: now, timeout.
# Returns {total, {country, count, ...}, peak, peak_at}; numbers as strings because
# Lua numbers come back from Redis truncated to integers.
_SNAPSHOT = (
    _CLOCK
    + """
local counts = {}
local flat = redis.call('HGETALL', KEYS[3])
for i = 1, #flat, 2 do counts[flat[i]] = tonumber(flat[i + 1]) end
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff)
for _, loc in ipairs(stale) do
  local country = redis.call('HGET', KEYS[2], loc)
  if country and counts[country] then counts[country] = counts[country] - 1 end
end
local out, total = {}, 0
for country, n in pairs(counts) do
  if n > 0 then
    out[#out + 1] = country
    out[#out + 1] = tostring(n)
    total = total + n
  end
end
local peak = redis.call('HMGET', KEYS[4], 'peak', 'at')
return {tostring(total), out, peak[1] or '0', peak[2] or ''}
"""
)

# KEYS: online; ARGV: now, timeout; returns the online total only.
_ONLINE_COUNT = (
    _CLOCK
    + """
return redis.call('ZCARD', KEYS[1]) - redis.call('ZCOUNT', KEYS[1], '-inf', cutoff)
"""
)

# KEYS: online; ARGV: now, timeout, location.
_IS_ONLINE = (
    _CLOCK
    + """
local last = redis.call('ZSCORE', KEYS[1], ARGV[3])
if last and tonumber(last) > cutoff then return 1 end
return 0
"""
)

# KEYS: online, country, counts; ARGV: location.
_FORGET = """
local country = redis.call('HGET', KEYS[2], ARGV[1])
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
if country then
  redis.call('HDEL', KEYS[2], ARGV[1])
  if redis.call('HINCRBY', KEYS[3], country, -1) <= 0 then redis.call('HDEL', KEYS[3], country) end
end
return removed
"""

# KEYS: replay; ARGV: epoch, seq, ttl. Same rule as domain.presence.is_replay.
_REPLAY = """
local current = redis.call('HMGET', KEYS[1], 'epoch', 'seq')
if current[1] == ARGV[1] and tonumber(ARGV[2]) <= tonumber(current[2]) then return 0 end
redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'seq', ARGV[2])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""


P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")


def unavailable(error: BaseException) -> PresenceUnavailableError:
    """The back-end's own outage error for one of the Redis client's."""
    translated = PresenceUnavailableError(f"redis: {error}")
    translated.__cause__ = error
    return translated


def _translated(
    method: Callable[Concatenate[S, P], Awaitable[R]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
    """Raise PresenceUnavailableError for the Redis client's outage errors."""

    @wraps(method)
    async def call(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(self, *args, **kwargs)
        except OUTAGE as error:
            raise unavailable(error) from error

    return call


def _pooled_client(url: str, max_connections: int = 64) -> Redis:
    """A client whose pool waits for a free connection instead of failing."""
    # redis-py's default pool raises MaxConnectionsError past 100 connections: a burst of
    # a few thousand heartbeats in one worker hit that (loadtest, 2,000 screens).
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=10
    )
    return aioredis.Redis.from_pool(pool)  # owns the pool: aclose() closes it


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _now_arg(now: float | None) -> str:
    # repr() keeps every bit of the float; "" asks the script for the server clock.
    return "" if now is None else repr(float(now))


class _ScriptBatcher:
    """Sends the script calls made in one turn of the event loop as one pipeline."""

    # Each redis-py call costs ~50-80 µs of the worker's CPU (pool checkout, encoding,
    # a coroutine per reply): 170 µs per heartbeat against 13 µs in memory. Thousands
    # of screens beat concurrently, so calls of the same loop turn share one round trip.

    def __init__(self, client: Redis, max_batch: int = 512) -> None:
        self._client = client
        self._max_batch = max_batch
        self._pending: list[tuple[AsyncScript, list[str], ScriptArgs, asyncio.Future[Any]]] = []
        self._scheduled = False
        self._sending: set[asyncio.Task[None]] = set()

    def call(self, script: AsyncScript, keys: list[str], args: ScriptArgs) -> asyncio.Future[Any]:
        """Queue one EVALSHA; the future resolves with its reply."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((script, keys, args, future))
        if len(self._pending) >= self._max_batch:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.create_task(self._send(batch))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(
        self, batch: list[tuple[AsyncScript, list[str], ScriptArgs, asyncio.Future[Any]]]
    ) -> None:
        try:
            results = await self._pipeline(batch)
            missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
            if missing:
                # Redis restarted and lost its scripts: load them again, retry those calls.
                for script in {id(batch[i][0]): batch[i][0] for i in missing}.values():
                    script.sha = await self._client.script_load(script.script)
                retried = await self._pipeline([batch[i] for i in missing])
                for i, result in zip(missing, retried, strict=True):
                    results[i] = result
        except Exception as error:
            # Translated here, once per batch: the heartbeat's own path adds no handler.
            failure = unavailable(error) if isinstance(error, OUTAGE) else error
            for *_, future in batch:
                if not future.done():
                    future.set_exception(failure)
            return
        for (*_, future), result in zip(batch, results, strict=True):
            if future.done():  # its caller was cancelled
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _pipeline(
        self, batch: list[tuple[AsyncScript, list[str], ScriptArgs, asyncio.Future[Any]]]
    ) -> list[Any]:
        # Plain EVALSHA, not Script calls: those make the pipeline run SCRIPT EXISTS first,
        # a second round trip per batch.
        async with self._client.pipeline(transaction=False) as pipe:
            for script, keys, args, _ in batch:
                pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
            results: list[Any] = await pipe.execute(raise_on_error=False)
            return results

    async def close(self) -> None:
        """Wait for batches in flight (their callers are waiting for them)."""
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)


class RedisPresence:
    """Presence shared by several workers through one Redis."""

    def __init__(
        self,
        client: Redis,
        *,
        timeout_s: float,
        prefix: str = "summitcast",
        replay_ttl_s: int = 24 * 3600,
        expire_batch: int = 1000,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        self.timeout_s = timeout_s
        self.prefix = prefix
        self._client = client
        self._replay_ttl_s = replay_ttl_s
        self._expire_batch = expire_batch
        self._heartbeat = client.register_script(_HEARTBEAT)
        self._expire = client.register_script(_EXPIRE)
        self._snapshot = client.register_script(_SNAPSHOT)
        self._online_count = client.register_script(_ONLINE_COUNT)
        self._is_online = client.register_script(_IS_ONLINE)
        self._forget = client.register_script(_FORGET)
        self._replay = client.register_script(_REPLAY)
        self._accept = client.register_script(_ACCEPT)
        # The two scripts of every heartbeat go out batched: see _ScriptBatcher.
        self._batch = _ScriptBatcher(client)

    @classmethod
    def from_url(cls, url: str, *, timeout_s: float, prefix: str = "summitcast") -> RedisPresence:
        """Connect lazily to the Redis at ``url``."""
        return cls(_pooled_client(url), timeout_s=timeout_s, prefix=prefix)

    def _keys(self, summit_id: str) -> list[str]:
        base = f"{self.prefix}:presence:{{{summit_id}}}"
        return [f"{base}:online", f"{base}:country", f"{base}:counts", f"{base}:peak"]

    async def heartbeat(
        self, summit_id: str, location_id: str, country: str, now: float | None = None
    ) -> bool:
        """Record a valid heartbeat; True when the location just came online."""
        args: ScriptArgs = [_now_arg(now), self.timeout_s, location_id, country]
        return bool(await self._batch.call(self._heartbeat, self._keys(summit_id), args))

    @_translated
    async def expire(self, summit_id: str, now: float | None = None) -> list[str]:
        """Drop locations whose timeout has passed; return them (each reported once)."""
        keys = self._keys(summit_id)[:3]
        gone: list[str] = []
        # Batches keep each script short, so a mass disconnect does not stall Redis.
        while True:
            args: ScriptArgs = [_now_arg(now), self.timeout_s, self._expire_batch]
            batch = [_text(loc) for loc in await self._expire(keys=keys, args=args)]
            gone.extend(batch)
            if len(batch) < self._expire_batch:
                return gone

    @_translated
    async def online_count(self, summit_id: str, now: float | None = None) -> int:
        """How many locations are online at ``now`` (exact even if expire() lags)."""
        keys = self._keys(summit_id)[:1]
        return int(await self._online_count(keys=keys, args=[_now_arg(now), self.timeout_s]))

    async def counts_by_country(self, summit_id: str, now: float | None = None) -> dict[str, int]:
        """Online locations per country at ``now``; countries with none are left out."""
        return (await self.snapshot(summit_id, now)).by_country

    @_translated
    async def peak(self, summit_id: str) -> tuple[int, float | None]:
        """The highest online count seen and the ``now`` at which it was first reached."""
        peak, at = await self._client.hmget(self._keys(summit_id)[3], ["peak", "at"])
        return (int(peak), float(_text(at))) if peak is not None else (0, None)

    @_translated
    async def is_online(self, summit_id: str, location_id: str, now: float | None = None) -> bool:
        """True while the location's last heartbeat is younger than the timeout."""
        keys = self._keys(summit_id)[:1]
        args: ScriptArgs = [_now_arg(now), self.timeout_s, location_id]
        return bool(await self._is_online(keys=keys, args=args))

    @_translated
    async def forget(self, summit_id: str, location_id: str) -> bool:
        """Take a location out at once (revoked); True when it was being tracked."""
        return bool(await self._forget(keys=self._keys(summit_id)[:3], args=[location_id]))

    @_translated
    async def snapshot(self, summit_id: str, now: float | None = None) -> PresenceSnapshot:
        """Total, per-country counts and peak read together (one script, one instant)."""
        total, flat, peak, at = await self._snapshot(
            keys=self._keys(summit_id), args=[_now_arg(now), self.timeout_s]
        )
        pairs = [_text(x) for x in flat]
        by_country = dict(sorted(zip(pairs[::2], map(int, pairs[1::2]), strict=True)))
        at_text = _text(at)
        return PresenceSnapshot(
            int(_text(total)), by_country, int(_text(peak)), float(at_text) if at_text else None
        )

    async def check_and_store_seq(self, location_id: str, epoch: str, seq: int) -> bool:
        """Atomically refuse a replayed (epoch, seq) and otherwise remember it; True if fresh."""
        key = f"{self.prefix}:replay:{location_id}"
        return bool(await self._batch.call(self._replay, [key], [epoch, seq, self._replay_ttl_s]))

    async def accept(
        self,
        summit_id: str,
        location_id: str,
        country: str,
        epoch: str,
        seq: int,
        cell: tuple[str, str] | None = None,
    ) -> bool | None:
        """Replay check, heartbeat and map cell as one script; None for a replay."""
        # One EVALSHA instead of three awaited one after the other: a third of the
        # round trips, replies and futures per heartbeat (benchmarks/presence_load.py).
        replay = f"{self.prefix}:replay:{location_id}"
        keys = [replay, *self._keys(summit_id)]
        args: ScriptArgs = ["", self.timeout_s, location_id, country, epoch, seq]
        args.append(self._replay_ttl_s)
        if cell is not None:
            keys += self._keys(cell[0])
            args.append(cell[1])
        result = int(await self._batch.call(self._accept, keys, args))
        return None if result < 0 else bool(result)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._batch.close()
        await self._client.aclose()  # type: ignore[attr-defined,unused-ignore]


class RedisPubSub:
    """Pub/sub across workers: ONE Redis subscription per channel per process, fanned out locally.

    Thousands of WebSockets in a worker share one Redis connection instead of
    holding one each; messages published while Redis is unreachable are lost (the
    next snapshot repairs the picture).
    """

    def __init__(
        self, client: Redis, *, prefix: str = "summitcast", confirm_timeout_s: float = 5.0
    ) -> None:
        self._client = client
        self._channel_prefix = f"{prefix}:pubsub:"
        self._confirm_timeout_s = confirm_timeout_s
        self._pubsub = client.pubsub()
        self._hub = LocalHub()
        self._refs: dict[str, int] = {}
        self._confirmed: dict[str, asyncio.Event] = {}
        self._lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "summitcast") -> RedisPubSub:
        """Connect lazily to the Redis at ``url``."""
        return cls(_pooled_client(url), prefix=prefix)

    @_translated
    async def publish(self, channel: str, message: Message) -> None:
        """Send a JSON-serialisable dict to every subscriber of ``channel`` in every worker."""
        await self._client.publish(self._channel_prefix + channel, encode_message(message))

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[LocalSubscription]:
        """Subscribe; messages published after entering the context are delivered."""
        sub = self._hub.add(channel)
        try:
            await self._acquire(channel)
            try:
                yield sub
            finally:
                await self._release(channel)
        finally:
            self._hub.remove(channel, sub)

    async def _acquire(self, channel: str) -> None:
        async with self._lock:
            self._refs[channel] = self._refs.get(channel, 0) + 1
            if self._refs[channel] == 1:
                self._confirmed[channel] = asyncio.Event()
                try:
                    await self._pubsub.subscribe(self._channel_prefix + channel)
                except BaseException as error:
                    # Redis is away: forget the attempt, or every later subscriber of
                    # this channel would count on a subscription that never happened.
                    del self._refs[channel], self._confirmed[channel]
                    if isinstance(error, OUTAGE):
                        raise unavailable(error) from error
                    raise
                if self._reader is None:
                    self._reader = asyncio.create_task(self._read(), name="redis-pubsub-reader")
            confirmed = self._confirmed[channel]
        # SUBSCRIBE is asynchronous: wait for Redis to confirm it, or a message
        # published right after subscribe() returns could be missed.
        try:
            await asyncio.wait_for(confirmed.wait(), self._confirm_timeout_s)
        except TimeoutError as error:
            await self._release(channel)
            raise PresenceUnavailableError("redis did not confirm a subscription") from error

    async def _release(self, channel: str) -> None:
        async with self._lock:
            self._refs[channel] -= 1
            if self._refs[channel] == 0:
                del self._refs[channel]
                del self._confirmed[channel]
                with contextlib.suppress(*OUTAGE):
                    await self._pubsub.unsubscribe(self._channel_prefix + channel)

    async def _read(self) -> None:
        failures = 0
        while True:
            try:
                raw = await self._pubsub.get_message(timeout=1.0)
                if failures:
                    log.warning("redis pub/sub reading again after %d failed reads", failures)
                failures = 0
            except (*OUTAGE, OSError) as error:
                # redis-py reconnects and re-subscribes on the next read; wait a little
                # longer each time so a Redis outage does not become a busy loop.
                failures += 1
                if failures == 1:  # one line an outage, however long it lasts
                    log.warning("redis pub/sub read failed (%s); retrying", error)
                await asyncio.sleep(min(5.0, 0.1 * 2**failures))
                continue
            except Exception:
                # Anything else would silently end every subscription of this worker.
                failures += 1
                log.exception("redis pub/sub reader error; retrying")
                await asyncio.sleep(min(5.0, 0.1 * 2**failures))
                continue
            if raw is None:
                continue
            kind = _text(raw["type"])
            channel = _text(raw["channel"]).removeprefix(self._channel_prefix)
            if kind == "message":
                self._hub.deliver(channel, _text(raw["data"]))
            elif kind == "subscribe" and channel in self._confirmed:
                self._confirmed[channel].set()

    async def close(self) -> None:
        """Stop the reader, end every subscription and close connections."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        self._hub.close()
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis 8.1
        await self._client.aclose()
