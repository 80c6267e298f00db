"""What a viewer load run saw, and what the origin served meanwhile: figures, table, JSON.

The origin's share comes from its nginx access logs, written in the format
``$msec $status $request_method $uri $upstream_cache_status $body_bytes_sent``
(docs/deploy.md): for each rendition, the origin's requests for its segments divided
by the distinct segments requested — 1 per edge when request collapsing works.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from posixpath import basename, dirname

from rich.console import Console
from rich.table import Table

from summitcast.loadtest.stats import percentile
from summitcast.loadtest.viewers import ViewerRun


def latency_figures(samples: Iterable[float]) -> dict[str, float | None]:
    """p50, p90, p99 and max of millisecond samples (None when there are none)."""
    ordered = sorted(samples)
    figures = {f"p{int(f * 100)}": percentile(ordered, f) for f in (0.5, 0.9, 0.99)}
    figures["max"] = ordered[-1] if ordered else None
    return {k: None if v is None else round(v, 2) for k, v in figures.items()}


def origin_requests(
    logs: Iterable[Path], start: float, end: float, master_path: str = ""
) -> dict[str, dict[str, float | int]]:
    """Per rendition: origin segment requests per distinct segment, playlist requests per s.

    Only lines whose ``$msec`` falls within [start, end] (wall-clock seconds) count.
    """
    segments: Counter[str] = Counter()
    distinct: defaultdict[str, set[str]] = defaultdict(set)
    playlists: Counter[str] = Counter()
    prefix = dirname(master_path) + "/" if master_path else ""
    for path in logs:
        with path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                fields = line.split()
                if len(fields) < 4:
                    continue
                try:
                    at = float(fields[0])
                except ValueError:
                    continue
                if not start <= at <= end:
                    continue
                uri = fields[3].split("?", 1)[0]
                # The master is a playlist of its own; renditions are named by their folder.
                rendition = (
                    "master" if uri == master_path else dirname(uri.removeprefix(prefix)) or "."
                )
                name = basename(uri)
                if name.endswith(".m3u8"):
                    playlists[rendition] += 1
                elif not name.startswith("init"):
                    segments[rendition] += 1
                    distinct[rendition].add(name)
    seconds = max(end - start, 1e-9)
    figures: dict[str, dict[str, float | int]] = {}
    for rendition in sorted(set(segments) | set(playlists)):
        count = len(distinct[rendition])
        figures[rendition] = {
            "segment_requests": segments[rendition],
            "distinct_segments": count,
            "requests_per_segment": round(segments[rendition] / count, 3) if count else 0,
            "playlist_requests": playlists[rendition],
            "playlist_requests_per_s": round(playlists[rendition] / seconds, 3),
        }
    return figures


def _viewer_figures(run: ViewerRun) -> dict[str, object]:
    end = run.ended_monotonic
    stats = [v.stats for v in run.viewers]
    playbacks = [v.playback for v in run.viewers]
    hours = sum(max(0.0, end - s.begun_at) for s in stats) / 3600
    stalls = sum(p.stalls for p in playbacks)
    startups = [
        (p.started_at - s.begun_at) * 1000
        for s, p in zip(stats, playbacks, strict=True)
        if p.started_at is not None
    ]
    return {
        "viewers": len(stats),
        "viewers_playing": sum(p.started_at is not None for p in playbacks),
        "rungs": dict(Counter(s.rung for s in stats).most_common()),
        "viewer_hours": round(hours, 4),
        "stalls": stalls,
        "stalls_per_viewer_hour": round(stalls / hours, 3) if hours else None,
        "stalled_s": round(sum(p.stalled_s for p in playbacks), 3),
        "viewers_stalled": sum(p.stalls > 0 for p in playbacks),
        "startup_ms": latency_figures(startups),
        "segments": sum(s.segments for s in stats),
        "segments_skipped": sum(s.skipped for s in stats),
        "viewers_out_of_order": sum(not s.order_ok for s in stats),
    }


def summary(run: ViewerRun, origin_logs: Iterable[Path] = ()) -> dict[str, object]:
    """Every figure of a run as one JSON-ready dict."""
    errors: Counter[str] = Counter()
    for viewer in run.viewers:
        errors.update(viewer.stats.errors)
    errors.update(run.crashes)
    edges = {
        pool.url: {
            "requests": pool.counters.requests,
            "bytes": pool.counters.bytes,
            "statuses": {str(k): v for k, v in sorted(pool.counters.statuses.items())},
            "errors": dict(pool.counters.errors),
            "connections_opened": pool.counters.connections_opened,
            "pool_waits": pool.counters.pool_waits,
        }
        for pool in run.pools
    }
    logs = list(origin_logs)
    return {
        "duration_s": round(run.ended_at - run.started_at, 2),
        **_viewer_figures(run),
        "segment_ms": latency_figures(run.segment_ms),
        "playlist_ms": latency_figures(run.playlist_ms),
        "edges": edges,
        "edges_unreachable_at_start": run.unreachable,
        "errors": dict(errors.most_common()),
        "edge_switches": sum(v.stats.edge_switches for v in run.viewers),
        "pathway_switches": sum(v.stats.pathway_switches for v in run.viewers),
        "switch_ms": latency_figures(run.switch_ms),
        # Late wake-ups of the load process's own loop: large ones mean it measured itself.
        "loop_lag_ms": latency_figures(run.lag_ms),
        "origin": origin_requests(logs, run.started_at, run.ended_at, run.master_path)
        if logs
        else None,
    }


def _fmt(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) >= 1 or value == 0 else f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items()) or "none"
    return str(value)


def print_summary(figures: dict[str, object], console: Console) -> None:
    """Print the figures as tables: the run, each edge, the origin's renditions."""
    table = Table(title="summitcast viewer load test", show_header=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in figures.items():
        if key not in ("edges", "origin"):
            table.add_row(key.replace("_", " "), _fmt(value))
    console.print(table)
    edges = Table(title="per edge")
    for column in ("edge", "requests", "bytes", "statuses", "errors", "connections", "waits"):
        if column == "edge":
            edges.add_column(column, overflow="fold")  # a URL cut short names no edge
        else:
            edges.add_column(column, justify="right")
    edge_rows = figures.get("edges")
    for url, row in (edge_rows if isinstance(edge_rows, dict) else {}).items():
        edges.add_row(url, *(_fmt(v) for v in row.values()))
    console.print(edges)
    origin = figures.get("origin")
    if isinstance(origin, dict):
        table = Table(title="origin requests (from its access logs)")
        table.add_column("rendition", overflow="fold")
        for column in ("segment reqs", "segments", "reqs/segment", "playlist reqs", "playlist/s"):
            table.add_column(column, justify="right")
        for rendition, row in origin.items():
            table.add_row(rendition, *(_fmt(v) for v in row.values()))
        console.print(table)


def write_json(figures: dict[str, object], path: Path) -> None:
    """Write the figures as JSON."""
    path.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
