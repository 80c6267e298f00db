"""``summitcast loadtest viewers``: thousands of simulated HLS players in one process.

Every viewer is a task of one event loop (hls_player.Viewer); the viewers of an edge
share one keep-alive pool (hls_http.EdgePool). Viewers are dealt to the edges round
robin and to the rungs by the weighted mix (largest remainder, then shuffled by the
seed, so a run is repeatable and 50 viewers follow the mix as closely as 50 can). The
run stops by itself after its duration and cancels everything it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from summitcast.errors import ValidationError
from summitcast.loadtest.hls_http import EdgeError, EdgePool, split_base_url
from summitcast.loadtest.hls_player import Viewer, ViewerStats
from summitcast.loadtest.hls_playlist import MediaPlaylist, Rung, parse_master, parse_media

Progress = Callable[[dict[str, object]], None]
LAG_TICK_S = 0.1  # how often the event loop's own lateness is sampled
MEDIA_CACHE_SIZE = 512  # parsed playlist versions kept (a few per rendition and pathway)


@dataclass(frozen=True, slots=True)
class ViewerPlan:
    """What a viewer load run does."""

    edges: tuple[str, ...]  # base URLs, e.g. http://127.0.0.31:8080
    master_path: str  # e.g. /hls/demo-summit/3/master.m3u8
    viewers: int
    duration_s: float
    ramp_s: float = 0.0
    mix: tuple[tuple[str, float], ...] = ()  # (rung name, weight); empty: every rung alike
    seed: int = 0
    timeout_s: float = 4.0
    connections_per_edge: int = 256
    progress_every_s: float = 0.0  # 0: no progress lines


def parse_mix(text: str) -> tuple[tuple[str, float], ...]:
    """``"720p=40,audio=10"`` as ((name, weight), …); ValidationError on a bad entry."""
    entries: list[tuple[str, float]] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, weight = part.partition("=")
        try:
            value = float(weight)
        except ValueError:
            value = -1.0
        if not sep or not name.strip() or value < 0:
            raise ValidationError(f"--mix entry {part!r} is not NAME=WEIGHT (weight >= 0)")
        entries.append((name.strip(), value))
    if entries and sum(w for _, w in entries) <= 0:
        raise ValidationError("--mix weights add up to 0")
    return tuple(entries)


def plan_edges(urls: str, master: str) -> tuple[tuple[str, ...], str]:
    """The edge base URLs and the master's path from --url and --master."""
    given = [u.strip() for u in urls.split(",") if u.strip()]
    if not given and master.startswith(("http://", "https://")):
        given = [master]  # one edge: the master URL's own server
    if not given:
        raise ValidationError("--url names no edge")
    edges: list[str] = []
    paths: set[str] = set()
    for url in given:
        host, port, path = split_base_url(url)
        # An edge URL may carry the master's path, or a prefix the CDN serves under.
        if path.endswith(".m3u8"):
            paths.add(path)
            path = ""
        edges.append(f"http://{host}:{port}{path}")
    master_path = urlsplit(master).path if master else ""
    if not master_path and len(paths) == 1:
        master_path = paths.pop()
    if not master_path.startswith("/") or not master_path.endswith(".m3u8"):
        raise ValidationError("give the master playlist: --master /hls/SLUG/SESSION/master.m3u8")
    return tuple(edges), master_path


def assign_rungs(
    names: list[str], mix: tuple[tuple[str, float], ...], viewers: int, seed: int
) -> list[str]:
    """The rung of each viewer: the mix's shares by largest remainder, shuffled by ``seed``."""
    weights = dict(mix) if mix else dict.fromkeys(names, 1.0)
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise ValidationError(
            f"--mix names {', '.join(unknown)}; the master has {', '.join(names)}"
        )
    total = sum(weights.values())
    shares = {name: viewers * weight / total for name, weight in weights.items()}
    counts = {name: int(share) for name, share in shares.items()}
    by_remainder = sorted(shares, key=lambda n: (counts[n] - shares[n], names.index(n)))
    for name in by_remainder[: viewers - sum(counts.values())]:
        counts[name] += 1
    chosen = [name for name in names for _ in range(counts.get(name, 0))]
    random.Random(seed).shuffle(chosen)  # noqa: S311 - a repeatable deal, not a secret
    return chosen


@dataclass
class ViewerRun:
    """The shared state of a run: edge pools, latency samples, every viewer's stats."""

    plan: ViewerPlan
    pools: list[EdgePool] = field(default_factory=list)
    master_path: str = ""
    segment_ms: list[float] = field(default_factory=list)
    playlist_ms: list[float] = field(default_factory=list)
    switch_ms: list[float] = field(default_factory=list)
    lag_ms: list[float] = field(default_factory=list)
    viewers: list[Viewer] = field(default_factory=list)
    unreachable: dict[str, str] = field(default_factory=dict)  # edge → why, at start
    crashes: Counter[str] = field(default_factory=Counter)
    started_at: float = 0.0  # wall clock (time.time), for the origin logs' $msec
    ended_at: float = 0.0
    ended_monotonic: float = 0.0
    _masters: dict[str, list[Rung]] = field(default_factory=dict)
    _media: dict[tuple[str, str], MediaPlaylist] = field(default_factory=dict)

    def parse_master(self, text: str) -> list[Rung]:
        """The master's rungs, parsed once per distinct body."""
        rungs = self._masters.get(text)
        if rungs is None:
            rungs = self._masters[text] = parse_master(text, self.master_path)
        return rungs

    def parse_media(self, text: str, uri: str) -> MediaPlaylist:
        """A media playlist, parsed once for all the viewers that got the same body."""
        key = (uri, text)
        playlist = self._media.get(key)
        if playlist is None:
            # Every viewer of a rendition reads the same few versions of its playlist; a
            # live window slides on, so old versions are dropped wholesale now and then.
            if len(self._media) >= MEDIA_CACHE_SIZE:
                self._media.clear()
            playlist = self._media[key] = parse_media(text, uri)
        return playlist


async def _probe(run: ViewerRun) -> list[Rung]:
    """Load the master from every edge; note the ones that fail; the rungs of the first."""
    rungs: list[Rung] | None = None
    for pool in run.pools:
        try:
            response = await pool.get(run.master_path, keep_body=True, tag=" probe")
        except EdgeError as exc:
            run.unreachable[pool.url] = str(exc)
            continue
        if response.status != 200:
            run.unreachable[pool.url] = f"HTTP {response.status} for the master"
            continue
        if rungs is None:
            rungs = run.parse_master(response.body.decode("utf-8", "replace"))
    if rungs is None:
        why = "; ".join(f"{url}: {reason}" for url, reason in run.unreachable.items())
        raise ValidationError(f"no edge served {run.master_path} ({why})")
    # The probe's own requests are not the viewers'.
    for pool in run.pools:
        pool.counters = type(pool.counters)()
    return rungs


async def _measure_lag(run: ViewerRun) -> None:
    """Sample how late the event loop wakes up: the load process's own saturation."""
    while True:
        before = time.monotonic()
        await asyncio.sleep(LAG_TICK_S)
        run.lag_ms.append(max(0.0, (time.monotonic() - before - LAG_TICK_S) * 1000))


def progress_row(run: ViewerRun, at_s: float) -> dict[str, object]:
    """The running totals of a run, for a progress line."""
    playbacks = [v.playback for v in run.viewers]
    return {
        "at_s": round(at_s, 1),
        "playing": sum(p.started_at is not None for p in playbacks),
        "stalls": sum(p.stalls for p in playbacks),
        "segments": sum(v.stats.segments for v in run.viewers),
        "requests": sum(pool.counters.requests for pool in run.pools),
        "errors": sum(sum(v.stats.errors.values()) for v in run.viewers),
        "edge_switches": sum(v.stats.edge_switches for v in run.viewers),
    }


async def _report_progress(run: ViewerRun, every_s: float, report: Progress) -> None:
    began = time.monotonic()
    while True:
        await asyncio.sleep(every_s)
        report(progress_row(run, time.monotonic() - began))


async def _start(run: ViewerRun, viewer: Viewer, delay_s: float) -> None:
    await asyncio.sleep(delay_s)
    try:
        await viewer.play()
    except Exception as exc:
        # A playlist the tool cannot read (or a bug of the tool) ends this viewer, not the run.
        run.crashes[f"{type(exc).__name__}: {exc}"[:120]] += 1


async def run_viewers_async(plan: ViewerPlan, progress: Progress | None = None) -> ViewerRun:
    """Run the plan's viewers for its duration and return what they saw."""
    run = ViewerRun(plan, master_path=plan.master_path)
    run.pools = [
        EdgePool(
            url,
            max_connections=plan.connections_per_edge,
            timeout_s=plan.timeout_s,
        )
        for url in plan.edges
    ]
    try:
        rungs = await _probe(run)
        names = [rung.name for rung in rungs]
        dealt = assign_rungs(names, plan.mix, plan.viewers, plan.seed)
        run.viewers = [
            Viewer(run, ViewerStats(index=i, rung=rung, first_edge=i % len(run.pools)))
            for i, rung in enumerate(dealt)
        ]
        run.started_at = time.time()
        stop_at = time.monotonic() + plan.duration_s
        step = plan.ramp_s / max(1, plan.viewers)
        tasks = [asyncio.create_task(_measure_lag(run))]
        if progress is not None and plan.progress_every_s > 0:
            tasks.append(
                asyncio.create_task(_report_progress(run, plan.progress_every_s, progress))
            )
        watched = len(tasks)
        tasks += [asyncio.create_task(_start(run, v, i * step)) for i, v in enumerate(run.viewers)]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(_loop_time(stop_at)):
                await asyncio.gather(*tasks[watched:])
        ended = time.monotonic()
        run.ended_at = time.time()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for viewer in run.viewers:
            viewer.playback.finish(ended)
            viewer.stats.begun_at = viewer.stats.begun_at or ended
        run.ended_monotonic = ended
    finally:
        for pool in run.pools:
            pool.close()
    return run


def _loop_time(monotonic_at: float) -> float:
    loop = asyncio.get_running_loop()
    return loop.time() + (monotonic_at - time.monotonic())


def run_viewers(plan: ViewerPlan, progress: Progress | None = None) -> ViewerRun:
    """Run the plan on a fresh event loop (uvloop when installed)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return asyncio.run(run_viewers_async(plan, progress))
    return uvloop.run(run_viewers_async(plan, progress))
