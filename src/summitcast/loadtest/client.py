"""One client process of the load tool: many location screens speaking the real protocol.

Each simulated screen does what frontend/src/live.js does: open ``/live/ws``, read
the hello, send a signed heartbeat at once, the next at a random phase of the
announced interval and then every interval (shortened by up to 20 % of jitter),
reconnect with full-jitter backoff and a new epoch when the socket drops, and after a
reconnect send the first beat at a random phase too (so a herd does not stay a herd).
It adds ``"ack": true`` so that the server answers each counted heartbeat and the
latency can be measured.

Screens are callbacks and timers on one event loop over ``wire.ScreenSocket``, not
a task each: the tool must spend far less CPU per heartbeat than the server it
measures, on the same 2 cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from summitcast.domain.presence import (
    backoff_delay,
    encode_heartbeat,
    next_interval,
    sign_heartbeat,
)
from summitcast.loadtest.stats import ClientStats
from summitcast.loadtest.wire import HandshakeError, ScreenSocket

TICK_S = 1.0  # how often counters go to the orchestrator
# Handshakes one process runs at once. Without a cap, 15,000 screens starting within
# seconds each start a handshake, the process's one core serves them all a little,
# every one of them hits its open timeout and retries: nobody ever gets online.
MAX_CONNECTING = 200
OPEN_TIMEOUT_S = 30.0  # connect + upgrade + hello


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
    """The state of one simulated screen and its current socket."""

    __slots__ = (
        "attempt",
        "connected_before",
        "epoch",
        "ever_online",
        "hello",
        "interval",
        "location",
        "online",
        "pending",
        "secret",
        "seq",
        "socket",
        "timer",
    )

    def __init__(self, location: SimulatedLocation) -> None:
        self.location = location
        self.secret = location.secret.encode()
        self.online = False
        self.ever_online = False
        self.connected_before = False
        self.attempt = 0
        self.pending: dict[int, float] = {}  # seq → perf_counter at send
        self.socket: ScreenSocket | None = None
        self.hello: asyncio.Future[float] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.interval = 10.0
        self.epoch = ""
        self.seq = 0


class ClientProcess:
    """Runs the screens of one plan and reports counters through ``report``."""

    def __init__(self, plan: ClientPlan, report: Any) -> None:
        self.plan = plan
        self.report = report  # a multiprocessing queue (put only)
        self.stats = ClientStats(locations=len(plan.locations))
        self.rng = random.Random(plan.seed)  # noqa: S311 - jitter, not cryptography
        self.stop_at = plan.start_at + plan.duration_s
        self._connecting = asyncio.Semaphore(MAX_CONNECTING)
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopped = False
        parts = urlsplit(plan.ws_url)
        self._host = parts.hostname or "127.0.0.1"
        secure = parts.scheme == "wss"
        self._port = parts.port or (443 if secure else 80)
        self._ssl = ssl.create_default_context() if secure else None

    def _stopping(self) -> bool:
        return self._stopped or time.time() >= self.stop_at

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

    def _receive(self, screen: _Screen, text: str) -> None:
        message = json.loads(text)
        kind = message.get("type")
        if kind == "ack":
            sent = screen.pending.pop(int(message["seq"]), None)
            if sent is not None:
                self.stats.acked += 1
                self.stats.record_latency(time.time(), (time.perf_counter() - sent) * 1000)
                self._mark_online(screen)
        elif kind == "error":
            # A refusal answers the oldest pending heartbeat (the socket is ordered).
            if screen.pending:
                screen.pending.pop(min(screen.pending))
            self.stats.refused[str(message.get("reason"))] += 1
            self._mark_offline(screen)
        elif kind == "hello" and screen.hello is not None and not screen.hello.done():
            screen.hello.set_result(float(message.get("interval_s") or 10.0))

    def _beat(self, screen: _Screen, next_in: float | None = None) -> None:
        screen.timer = None
        socket = screen.socket
        if socket is None or not socket.open:
            return
        if self._stopping():
            return
        location = screen.location
        token = encode_heartbeat(
            sign_heartbeat(
                screen.secret, location.location_id, screen.epoch, screen.seq, int(time.time())
            )
        )
        screen.pending[screen.seq] = time.perf_counter()
        socket.send_text(f'{{"type":"hb","token":"{token}","ack":true}}')
        self.stats.sent += 1
        screen.seq += 1
        loop = asyncio.get_running_loop()
        if next_in is None:
            next_in = next_interval(screen.interval, self.rng)
        screen.timer = loop.call_later(next_in, self._beat, screen)

    def _closed(self, screen: _Screen, socket: ScreenSocket | None) -> None:
        """The socket of a screen ended: count what was in flight, reconnect later."""
        if socket is None or screen.socket is not socket:
            return  # never registered: _connect deals with it
        if screen.timer is not None:
            screen.timer.cancel()
            screen.timer = None
        screen.socket = None
        self.stats.connected -= 1
        self._mark_offline(screen)
        if not self._stopping():
            # Heartbeats in flight when the run ends are not lost, only unanswered.
            self.stats.lost += len(screen.pending)
        screen.pending.clear()
        if screen.hello is not None and not screen.hello.done():
            screen.hello.cancel()
        if not self._stopping():
            self._reconnect_later(screen)

    def _reconnect_later(self, screen: _Screen) -> None:
        # Never gives up before the end of the run: the herd test counts on it.
        delay = backoff_delay(screen.attempt, self.rng, base=0.5, cap=10.0)
        screen.attempt += 1
        asyncio.get_running_loop().call_later(delay, self._start, screen)

    def _start(self, screen: _Screen) -> None:
        if self._stopping():
            return
        task = asyncio.create_task(self._connect(screen))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, screen: _Screen) -> None:
        loop = asyncio.get_running_loop()
        local_addr = (self.plan.source, 0) if self.plan.source else None
        socket: ScreenSocket | None = None
        socket_of: list[ScreenSocket | None] = [None]  # for the close callback, set below
        registered = False
        screen.hello = loop.create_future()
        try:
            async with asyncio.timeout(min(OPEN_TIMEOUT_S, max(0.1, self.stop_at - time.time()))):
                async with self._connecting:
                    _, socket = await loop.create_connection(
                        lambda: ScreenSocket(
                            self.plan.ws_url,
                            lambda text: self._receive(screen, text),
                            lambda: self._closed(screen, socket_of[0]),
                            self.rng,
                        ),
                        self._host,
                        self._port,
                        local_addr=local_addr,
                        ssl=self._ssl,
                    )
                    socket_of[0] = socket
                    await socket.upgraded
                if not socket.open:
                    raise ConnectionError("closed right after the upgrade")
                self.stats.connected += 1
                screen.socket = socket
                registered = True
                interval = await screen.hello
        except (TimeoutError, asyncio.CancelledError, OSError, HandshakeError, ValueError) as error:
            if isinstance(error, asyncio.CancelledError) and self._stopped:
                raise
            self._connect_failed(screen, socket, error, registered=registered)
            return
        self._connected(screen, interval)

    def _connect_failed(
        self,
        screen: _Screen,
        socket: ScreenSocket | None,
        error: BaseException,
        *,
        registered: bool,
    ) -> None:
        """Count a failed connection and reconnect later (or let _closed do it)."""
        if registered:
            # Closed while waiting for the hello (_closed already reconnects), or no
            # hello in time: close it, and _closed reconnects.
            if screen.socket is socket and socket is not None:
                self.stats.error_kinds["no hello"] += 1
                socket.close()
            return
        # Never upgraded: a connect error.
        if socket is not None:
            socket.close()
        if not self._stopping():
            self.stats.connect_errors += 1
            kind = "connect timeout" if isinstance(error, TimeoutError) else type(error).__name__
            self.stats.error_kinds[kind] += 1
            self._reconnect_later(screen)

    def _connected(self, screen: _Screen, interval: float) -> None:
        """Start beating on a new connection, at a random phase of the interval."""
        reconnect = screen.connected_before
        if reconnect:
            self.stats.reconnects += 1
        screen.connected_before = True
        screen.attempt = 0
        screen.interval = interval
        screen.epoch = secrets.token_urlsafe(12)  # a new epoch per connection, as a page load
        screen.seq = 0
        # As live.js: beats start at a random phase of the interval, so screens that
        # connected together do not go on beating together (a herd stayed a herd: ack p99
        # 504 ms after 30,000 joined at once, 17 ms after a 60 s ramp, issue 13).
        phase = self.rng.random() * interval
        if reconnect:
            screen.timer = asyncio.get_running_loop().call_later(phase, self._beat, screen)
        else:
            self._beat(screen, next_in=phase)

    async def _ticker(self) -> None:
        while not self._stopping():
            self.report.put(("tick", self.plan.index, self.stats.tick()))
            await asyncio.sleep(TICK_S)

    async def run(self) -> None:
        """Run every screen until the end of the plan, then send the final counters."""
        await asyncio.sleep(max(0.0, self.plan.start_at - time.time()))
        loop = asyncio.get_running_loop()
        count = len(self.plan.locations)
        screens = [_Screen(location) for location in self.plan.locations]
        for i, screen in enumerate(screens):
            loop.call_later(self.plan.ramp_s * i / max(1, count), self._start, screen)
        ticker = asyncio.create_task(self._ticker())
        await asyncio.sleep(max(0.0, self.stop_at - time.time()))
        self._stopped = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for screen in screens:
            if screen.socket is not None:
                screen.socket.close()
        await asyncio.sleep(0.2)  # let the closes go out
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        self.report.put(("tick", self.plan.index, self.stats.tick()))
        self.report.put(("done", self.plan.index, self.stats.latency_samples()))


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
