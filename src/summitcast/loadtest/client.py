"""One client process of the load tool: many location screens speaking the real protocol.

Each simulated screen does what frontend/src/live.js does: open ``/live/ws``, read
the hello, send a signed heartbeat at once and then every announced interval
(shortened by up to 20 % of jitter), reconnect with full-jitter backoff and a new
epoch when the socket drops. It adds ``"ack": true`` so that the server answers
each counted heartbeat and the latency can be measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
import time
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, WebSocketException

from summitcast.domain.presence import (
    backoff_delay,
    encode_heartbeat,
    next_interval,
    sign_heartbeat,
)
from summitcast.loadtest.stats import ClientStats

TICK_S = 1.0  # how often counters go to the orchestrator
# Handshakes one process runs at once. Without a cap, 15,000 screens starting within
# seconds each start a handshake, the process's one core serves them all a little,
# every one of them hits its open timeout and retries: nobody ever gets online.
MAX_CONNECTING = 200


@dataclass(frozen=True, slots=True)
class SimulatedLocation:
    """A location the tool speaks for: its public id and secret."""

    location_id: str
    secret: str


@dataclass(frozen=True, slots=True)
class ClientPlan:
    """What one client process does (picklable: it crosses the process boundary)."""

    index: int
    ws_url: str
    source: str | None  # local address to bind, e.g. 127.0.0.2; None: the default
    locations: tuple[SimulatedLocation, ...]
    start_at: float  # wall-clock instant shared by all processes
    ramp_s: float  # connections start spread over this many seconds (0: all at once)
    duration_s: float  # from start_at until every socket closes
    seed: int


class _Screen:
    """The state of one simulated screen."""

    __slots__ = ("ever_online", "location", "online", "pending")

    def __init__(self, location: SimulatedLocation) -> None:
        self.location = location
        self.online = False
        self.ever_online = False
        self.pending: dict[int, float] = {}  # seq → perf_counter at send


class ClientProcess:
    """Runs the screens of one plan and reports counters through ``report``."""

    def __init__(self, plan: ClientPlan, report: Any) -> None:
        self.plan = plan
        self.report = report  # a multiprocessing queue (put only)
        self.stats = ClientStats(locations=len(plan.locations))
        self.rng = random.Random(plan.seed)  # noqa: S311 - jitter, not cryptography
        self.stop_at = plan.start_at + plan.duration_s
        self._mono_offset = time.monotonic() - time.time()
        self._connecting = asyncio.Semaphore(MAX_CONNECTING)

    def _mono(self, wall: float) -> float:
        return wall + self._mono_offset

    def _stopping(self) -> bool:
        return time.time() >= self.stop_at

    def _mark_online(self, screen: _Screen) -> None:
        if not screen.online:
            screen.online = True
            self.stats.online += 1
        if not screen.ever_online:
            screen.ever_online = True
            self.stats.ever_online += 1
            if self.stats.ever_online == self.stats.locations:
                self.stats.all_online_at = time.time() - self.plan.start_at

    def _mark_offline(self, screen: _Screen) -> None:
        if screen.online:
            screen.online = False
            self.stats.online -= 1

    def _receive(self, screen: _Screen, text: str | bytes) -> None:
        message = json.loads(text)
        kind = message.get("type")
        if kind == "ack":
            sent = screen.pending.pop(int(message["seq"]), None)
            if sent is not None:
                self.stats.acked += 1
                self.stats.latencies_ms.append((time.perf_counter() - sent) * 1000)
                self._mark_online(screen)
        elif kind == "error":
            # A refusal answers the oldest pending heartbeat (the socket is ordered).
            if screen.pending:
                screen.pending.pop(min(screen.pending))
            self.stats.refused[str(message.get("reason"))] += 1
            self._mark_offline(screen)

    async def _session(self, screen: _Screen, ws: ClientConnection) -> None:
        hello = json.loads(await asyncio.wait_for(ws.recv(), 30))
        interval = float(hello.get("interval_s") or 10.0)
        location = screen.location
        secret = location.secret.encode()
        epoch = secrets.token_urlsafe(12)  # a new epoch per connection, as a page load
        seq = 0
        while not self._stopping():
            token = encode_heartbeat(
                sign_heartbeat(secret, location.location_id, epoch, seq, int(time.time()))
            )
            screen.pending[seq] = time.perf_counter()
            await ws.send(json.dumps({"type": "hb", "token": token, "ack": True}))
            self.stats.sent += 1
            seq += 1
            next_at = min(
                time.monotonic() + next_interval(interval, self.rng), self._mono(self.stop_at)
            )
            while (left := next_at - time.monotonic()) > 0:
                try:
                    async with asyncio.timeout(left):
                        self._receive(screen, await ws.recv())
                except TimeoutError:
                    break

    async def _screen(self, screen: _Screen, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        attempt = 0
        connected_before = False
        local_addr = (self.plan.source, 0) if self.plan.source else None
        while not self._stopping():
            ws: ClientConnection | None = None
            try:
                async with asyncio.timeout(max(0.1, self.stop_at - time.time())):
                    async with self._connecting:
                        ws = await connect(
                            self.plan.ws_url,
                            compression=None,  # as the server: no per-message deflate
                            ping_interval=None,  # the server pings; pongs are automatic
                            open_timeout=30,
                            close_timeout=2,
                            max_size=64 * 1024,
                            local_addr=local_addr,
                        )
                    if connected_before:
                        self.stats.reconnects += 1
                    connected_before = True
                    self.stats.connected += 1
                    attempt = 0
                    try:
                        await self._session(screen, ws)
                    finally:
                        self.stats.connected -= 1
            except TimeoutError:
                if ws is None and not self._stopping():
                    self.stats.connect_errors += 1
                    self.stats.error_kinds["connect timeout"] += 1
            except (OSError, InvalidHandshake, WebSocketException, ValueError) as error:
                self.stats.error_kinds[type(error).__name__] += 1
                if ws is None:
                    self.stats.connect_errors += 1
            finally:
                self._mark_offline(screen)
                if ws is not None:
                    # Heartbeats in flight when the run ends are not lost, only unanswered.
                    if not self._stopping():
                        self.stats.lost += len(screen.pending)
                    screen.pending.clear()
                    with contextlib.suppress(Exception):
                        await ws.close()
            if self._stopping():
                return
            # Never gives up before the end of the run: the herd test counts on it.
            await asyncio.sleep(backoff_delay(attempt, self.rng, base=0.5, cap=10.0))
            attempt += 1

    async def _ticker(self) -> None:
        while not self._stopping():
            self.report.put(("tick", self.plan.index, self.stats.tick()))
            await asyncio.sleep(TICK_S)

    async def run(self) -> None:
        """Run every screen until the end of the plan, then send the final counters."""
        await asyncio.sleep(max(0.0, self.plan.start_at - time.time()))
        count = len(self.plan.locations)
        tasks = [
            asyncio.create_task(
                self._screen(_Screen(location), self.plan.ramp_s * i / max(1, count))
            )
            for i, location in enumerate(self.plan.locations)
        ]
        ticker = asyncio.create_task(self._ticker())
        await asyncio.gather(*tasks)
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        self.report.put(("tick", self.plan.index, self.stats.tick()))
        self.report.put(("done", self.plan.index, self.stats.latencies_ms))


def run_client(plan: ClientPlan, report: Any) -> None:
    """Entry point of a client process (multiprocessing target)."""
    try:
        import uvloop  # ~2x less CPU per socket than the default loop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        runner = asyncio.run
    try:
        runner(ClientProcess(plan, report).run())
    except BaseException as error:
        report.put(("failed", plan.index, repr(error)))
        raise
