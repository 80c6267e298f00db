"""Orchestration of a presence load test: split, spawn, sample the server, probe dashboards."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import multiprocessing
import queue
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect

from summitcast.domain.presence import encode_heartbeat, sign_heartbeat
from summitcast.loadtest.client import TICK_S, ClientPlan, SimulatedLocation, run_client
from summitcast.loadtest.stats import add_ticks, percentile

# One process may hold ~20,000 file descriptors (VERIFIED.md); stay well below.
MAX_SOCKETS_PER_PROCESS = 15_000


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """What the user asked for."""

    base_url: str  # http://host:port of the server
    summit: str  # slug
    locations: tuple[SimulatedLocation, ...]
    duration_s: float
    ramp_s: float = 0.0
    processes: int = 0  # 0: as few as the socket limit allows
    sources: tuple[str, ...] = ()  # one local address per process; empty: 127.0.0.2, .3, …
    sample_every_s: float = 2.0
    dashboards: int = 0  # public figure sockets that watch probe arrivals
    probes: int = 0  # locations held back and brought online one by one, once all are online
    timeout_s: float = 35.0  # the server's presence timeout (for expected counts of probes)


@dataclass(slots=True)
class Sample:
    """The server's online count against what the clients know to be online."""

    at_s: float
    server: int | None
    expected: int
    error: str = ""


@dataclass(slots=True)
class LoadResult:
    """Everything a run measured."""

    plan_locations: int
    processes: int
    duration_s: float
    totals: dict[str, object] = field(default_factory=dict)
    # (seconds after the start when the ack came, latency in ms) of every acked heartbeat
    latencies: list[tuple[float, float]] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    server_all_online_at: float | None = None
    dashboard_delays_ms: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        """The figures a report prints, as JSON-ready values."""
        lat = sorted(ms for _, ms in self.latencies)
        steady_from = self.steady_from()
        steady = sorted(
            ms for at, ms in self.latencies if steady_from is not None and at >= steady_from
        )
        dash = sorted(self.dashboard_delays_ms)
        sent = self.totals.get("sent", 0)
        sent_n = sent if isinstance(sent, int) else 0
        return {
            "locations": self.plan_locations,
            "processes": self.processes,
            "duration_s": self.duration_s,
            "heartbeats_sent": sent_n,
            "heartbeats_acked": self.totals.get("acked", 0),
            "heartbeat_rate_per_s": round(sent_n / self.duration_s, 1) if self.duration_s else 0,
            "lost": self.totals.get("lost", 0),
            "refused": self.totals.get("refused", {}),
            "connect_errors": self.totals.get("connect_errors", 0),
            "error_kinds": self.totals.get("error_kinds", {}),
            "reconnects": self.totals.get("reconnects", 0),
            "never_online": self.plan_locations - _int(self.totals.get("ever_online")),
            "clients_all_online_s": self.totals.get("all_online_at"),
            "server_all_online_s": self.server_all_online_at,
            "latency_ms": _percentiles(lat),
            # Once every location is online (the ramp's handshakes are over): the steady
            # state that the 30,000-location target is about. None if never reached.
            "steady_from_s": steady_from,
            "steady_s": None if steady_from is None else round(self.duration_s - steady_from, 1),
            "steady_latency_ms": _percentiles(steady),
            # Where slow acks cluster (stalls of the server or of a client process).
            "slow_acks_by_second": self.slow_seconds(),
            "steady_slow_acks_by_second": self.slow_seconds(since=steady_from),
            "count_samples": len(self.samples),
            "count_exact_after_all_online": self.exact_share(),
            "count_max_diff_after_all_online": self.max_diff(),
            "dashboard_delay_ms": {
                name: _round(percentile(dash, q)) for name, q in (("p50", 0.5), ("p99", 0.99))
            }
            | {"n": len(dash)},
            "failures": self.failures,
        }

    def slow_seconds(
        self, over_ms: float = 100.0, top: int = 8, since: float | None = 0.0
    ) -> dict[int, int]:
        """The seconds with the most acks slower than ``over_ms`` (by send time), from since."""
        if since is None:
            return {}
        slow: dict[int, int] = {}
        for at, ms in self.latencies:
            if ms > over_ms and at - ms / 1000 >= since:
                second = int(at - ms / 1000)
                slow[second] = slow.get(second, 0) + 1
        worst = sorted(slow.items(), key=lambda kv: -kv[1])[:top]
        return dict(sorted(worst))

    def steady_from(self) -> float | None:
        """Seconds after the start from which every location was online on both sides."""
        clients = self.totals.get("all_online_at")
        if self.server_all_online_at is None or not isinstance(clients, float | int):
            return None
        # Client counters reach the orchestrator once a second: skip the first tick after.
        return round(max(self.server_all_online_at, clients + 2 * TICK_S), 1)

    def _settled(self) -> list[Sample]:
        start = self.steady_from()
        if start is None:
            return []
        return [s for s in self.samples if s.at_s >= start and s.server is not None]

    def exact_share(self) -> float | None:
        """Share of samples after everyone came online where server == expected."""
        settled = self._settled()
        if not settled:
            return None
        return round(sum(s.server == s.expected for s in settled) / len(settled), 3)

    def max_diff(self) -> int | None:
        """Largest |server - expected| after everyone came online."""
        settled = self._settled()
        return max((abs((s.server or 0) - s.expected) for s in settled), default=None)


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _percentiles(values: list[float]) -> dict[str, float | int | None]:
    """p50/p90/p99/max of sorted values, and how many there were."""
    quantiles = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))
    return {name: _round(percentile(values, q)) for name, q in quantiles} | {"n": len(values)}


def read_secrets(path: Path, limit: int | None = None) -> tuple[SimulatedLocation, ...]:
    """Locations from a bulk-create file (JSON lines with id and secret)."""
    found: list[SimulatedLocation] = []
    with path.open(encoding="utf-8") as file:
        for line in file:
            if not line.strip():
                continue
            record = json.loads(line)
            found.append(SimulatedLocation(str(record["id"]), str(record["secret"])))
            if limit is not None and len(found) >= limit:
                break
    return tuple(found)


def split(
    locations: Sequence[SimulatedLocation], processes: int
) -> list[tuple[SimulatedLocation, ...]]:
    """Deal locations round-robin into ``processes`` parts."""
    return [tuple(locations[i::processes]) for i in range(processes)]


def _ws_base(base_url: str) -> str:
    return base_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1).rstrip("/")


class LoadTest:
    """Runs one plan: client processes, server sampling and dashboard probes."""

    def __init__(self, plan: LoadPlan, on_progress: Callable[[dict[str, object]], None] | None):
        self.plan = plan
        self.on_progress = on_progress
        held = plan.probes
        self.crowd = plan.locations[: len(plan.locations) - held] if held else plan.locations
        self.probe_locations = plan.locations[len(plan.locations) - held :] if held else ()
        wanted = math.ceil(len(self.crowd) / MAX_SOCKETS_PER_PROCESS)
        self.processes = max(1, plan.processes or wanted, wanted)
        sources = plan.sources or tuple(f"127.0.0.{2 + i}" for i in range(self.processes))
        if len(sources) < self.processes:
            raise ValueError(f"{self.processes} processes need as many --sources")
        self.sources = sources
        self.ticks: dict[int, dict[str, object]] = {}
        self.latencies: list[tuple[float, float]] = []
        self.start_at = 0.0
        self.failures: list[str] = []
        self.done: set[int] = set()
        self.probe_acked_at: list[float] = []  # monotonic instants probes were last acked
        self.result = LoadResult(len(self.crowd), self.processes, plan.duration_s)

    def expected_online(self) -> int:
        """Locations the tool knows the server should count right now."""
        crowd = sum(_int(t.get("online")) for t in self.ticks.values())
        now = time.monotonic()
        return crowd + sum(now - t < self.plan.timeout_s for t in self.probe_acked_at)

    def run(self) -> LoadResult:
        """Run the plan to its end (bounded by duration) and return what was measured."""
        context = multiprocessing.get_context("spawn")  # no inherited event loop or sockets
        report = context.Queue()
        start_at = time.time() + 1.5 + 0.3 * self.processes  # time for the processes to boot
        self.start_at = start_at
        ws_url = _ws_base(self.plan.base_url) + "/live/ws"
        workers = [
            context.Process(
                target=run_client,
                args=(
                    ClientPlan(
                        index=i,
                        ws_url=ws_url,
                        source=self.sources[i],
                        locations=part,
                        start_at=start_at,
                        ramp_s=self.plan.ramp_s,
                        duration_s=self.plan.duration_s,
                        seed=secrets.randbits(32),
                    ),
                    report,
                ),
                daemon=True,
                name=f"summitcast-loadtest-{i}",
            )
            for i, part in enumerate(split(self.crowd, self.processes))
        ]
        for worker in workers:
            worker.start()
        try:
            asyncio.run(self._watch(report, start_at))
        finally:
            for worker in workers:
                worker.join(timeout=15)
                if worker.is_alive():
                    worker.kill()
                    worker.join(timeout=5)
                    self.failures.append(f"client {worker.name} did not stop and was killed")
            report.close()
            report.join_thread()
        self.result.totals = add_ticks(self.ticks.values())
        self.result.latencies = self.latencies
        self.result.failures = self.failures
        return self.result

    def _drain(self, report: Any) -> None:
        while True:
            try:
                kind, index, payload = report.get_nowait()
            except queue.Empty:
                return
            if kind == "tick":
                self.ticks[index] = payload
            elif kind == "done":
                self.latencies.extend((at - self.start_at, ms) for at, ms in payload)
                self.done.add(index)
            elif kind == "failed":
                self.failures.append(f"client {index}: {payload}")
                self.done.add(index)

    async def _watch(self, report: Any, start_at: float) -> None:
        end_at = start_at + self.plan.duration_s
        probe_task: asyncio.Task[None] | None = None
        async with httpx.AsyncClient(base_url=self.plan.base_url, timeout=5.0) as http:
            next_sample = start_at
            # Bounded: the clients stop at end_at; their final reports get 20 s more.
            while len(self.done) < self.processes and time.time() < end_at + 20:
                self._drain(report)
                now = time.time()
                if now >= next_sample and now < end_at:
                    next_sample += self.plan.sample_every_s
                    await self._sample(http, now - start_at)
                    if (
                        probe_task is None
                        and self.plan.probes
                        and self.result.server_all_online_at is not None
                    ):
                        probe_task = asyncio.create_task(self._probe(end_at))
                await asyncio.sleep(0.1)
            self._drain(report)
        if probe_task is not None:
            probe_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe_task

    async def _sample(self, http: httpx.AsyncClient, at_s: float) -> None:
        expected = self.expected_online()
        try:
            response = await http.get(f"/live/s/{self.plan.summit}/figures.json")
            if response.status_code != 200:
                sample = Sample(at_s, None, expected, f"HTTP {response.status_code}")
            else:
                sample = Sample(at_s, int(response.json()["total"]), expected)
        except httpx.HTTPError as error:
            sample = Sample(at_s, None, expected, type(error).__name__)
        self.result.samples.append(sample)
        crowd = len(self.crowd)
        if (
            self.result.server_all_online_at is None
            and sample.server is not None
            and sample.server >= crowd
        ):
            self.result.server_all_online_at = round(at_s, 1)
        if self.on_progress is not None:
            totals = add_ticks(self.ticks.values())
            self.on_progress({"at_s": round(at_s, 1), "server": sample.server, **totals})

    async def _probe(self, end_at: float) -> None:
        """Bring held-back locations online one by one; time until dashboards show each."""
        base = _ws_base(self.plan.base_url)
        public = f"{base}/live/s/{self.plan.summit}/public"
        latest: list[int] = [0] * self.plan.dashboards
        changed = asyncio.Event()

        async def watch(i: int) -> None:
            async with connect(public, compression=None, ping_interval=None) as ws:
                async for text in ws:
                    latest[i] = int(json.loads(text).get("total", 0))
                    changed.set()

        watchers = [asyncio.create_task(watch(i)) for i in range(self.plan.dashboards)]
        screens = []
        try:
            await asyncio.sleep(2.0)  # let every dashboard get its first snapshot
            for location in self.probe_locations:
                if time.time() > end_at - 5:
                    break
                before = min(latest) if latest else 0
                ws = await connect(f"{base}/live/ws", compression=None, ping_interval=None)
                screens.append(ws)
                await ws.recv()  # hello
                token = encode_heartbeat(
                    sign_heartbeat(
                        location.secret.encode(),
                        location.location_id,
                        secrets.token_urlsafe(12),
                        0,
                        int(time.time()),
                    )
                )
                sent = time.monotonic()
                await ws.send(json.dumps({"type": "hb", "token": token, "ack": True}))
                await ws.recv()  # ack
                self.probe_acked_at.append(time.monotonic())
                # Each dashboard's delay: first push whose total counts the newcomer.
                pending = set(range(self.plan.dashboards))
                deadline = sent + 10.0
                while pending and time.monotonic() < deadline:
                    changed.clear()
                    for i in sorted(pending):
                        if latest[i] > before:
                            self.result.dashboard_delays_ms.append((time.monotonic() - sent) * 1000)
                            pending.discard(i)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(changed.wait(), 0.05)
                for _ in pending:
                    self.result.dashboard_delays_ms.append(float("inf"))
                await asyncio.sleep(1.0)
        finally:
            for task in watchers:
                task.cancel()
            for ws in screens:
                with contextlib.suppress(Exception):
                    await ws.close()
            for task in watchers:
                with contextlib.suppress(BaseException):
                    await task
