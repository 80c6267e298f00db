"""Edge tier for HLS (issue 15): edges protect the origin; an edge against nginx off disk.

(a) A synthetic live window (benchmarks/_hls_window.py: 720p and 360p sharing an audio
group, and an audio-only rung; 2 s segments) is written into a broadcast node's segment
folder and served by that node's ORIGIN nginx as `summitcast.deploy` renders it, with
three rendered EDGE nginx in front. The viewer engine of `summitcast loadtest viewers`
runs each level of --levels spread over the three edges (the big level in --processes
load processes). The origin's own access log then gives, per rendition, the origin's
requests for each segment published during the level: at most one per edge when the
edges collapse requests, and flat as viewers grow tenfold. Segment bodies are small
(--segment-kb): the machine has 2 cores and the figure is about requests, not bandwidth.

(b) wrk, the same connections and the same files, against an edge with a warm cache and
against a bare nginx serving the files from disk (and, to split the cost, against nginx from
disk with the edge's access log and response headers); rounds rotate; median paired ratio
of requests/s, and of each nginx worker's own CPU per request (steadier on a shared machine).

    .venv/bin/python benchmarks/hls_edges.py --levels 500,5000 --processes 1,3 --duration 40
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from _hls_window import TRACKS, LiveWriter, write_master
from _proc import group_cpu_s
from summitcast.cluster import commands
from summitcast.cluster.processes import Probe, Supervised
from summitcast.deploy.render import render, write
from summitcast.deploy.topology import BroadcastNode, Edge, Endpoint, PageNode, Topology
from summitcast.loadtest.viewer_report import summary
from summitcast.loadtest.viewers import ViewerPlan, run_viewers

# Addresses of our own, away from the harness's small topology (127.0.0.1x-4x), which
# other work on this machine may be running at the same time.
ORIGIN = Endpoint("127.0.0.171", 8081)
EDGES = tuple(Endpoint(f"127.0.0.{181 + i}", 8080) for i in range(3))
BARE = Endpoint("127.0.0.184", 8080)
DRESSED = Endpoint("127.0.0.185", 8080)  # bare, with the edge's access log and headers
LIVE = "/hls/bench/1"  # the live window
STATIC = "/hls/bench/2"  # fixed files for (b)
STATIC_SEGMENTS = 16  # per rendition: 64 distinct files, all in any cache and page cache
SEGMENT_RE = re.compile(r"^" + LIVE + r"/([^/]+)/seg_(\d+)\.m4s$")


def topology(root: Path, segment_s: float) -> Topology:
    """One broadcast node (its origin) and three edges; page node, balancer etc. never run."""
    unused = Endpoint("127.0.0.170", 8000)
    return Topology(
        name="bench-edges",
        balancer=Endpoint("127.0.0.170", 8080),
        page_nodes=(PageNode("p1", unused),),
        broadcast_nodes=(BroadcastNode("a", Endpoint(ORIGIN.host, 8000), ORIGIN, ORIGIN.host),),
        edges=tuple(Edge(f"e{i + 1}", address, cache_mb=256) for i, address in enumerate(EDGES)),
        postgres=Endpoint("127.0.0.170", 5432),
        redis=Endpoint("127.0.0.170", 6379),
        base_url="http://127.0.0.170:8080",
        root=root,
        segment_s=segment_s,
        nginx_user="root" if os.geteuid() == 0 else "",
    )


def check_free(address: Endpoint) -> None:
    """Refuse to run when someone else listens where we must."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address.host, address.port))
        except OSError as error:
            raise SystemExit(f"{address.address} is taken ({error.strerror})") from None


def bare_conf(prefix: Path, folder: Path, address: Endpoint, *, dressed: bool) -> str:
    """The reference: nginx serving the static files from disk (dressed: with the edge's log
    and response headers, to tell the cache's own cost from theirs)."""
    log = "access_log off;"
    headers = ""
    if dressed:
        log = (
            "log_format edge '$msec $status $request_method $uri $upstream_cache_status "
            "$body_bytes_sent';\n  access_log access.log edge buffer=64k flush=1s;"
        )
        headers = "\n".join(
            f"    add_header {name} {value} always;"
            for name, value in (
                ("Access-Control-Allow-Origin", "*"),
                ("Access-Control-Allow-Methods", '"GET, HEAD, OPTIONS"'),
                ("Access-Control-Allow-Headers", '"Range, If-None-Match, If-Modified-Since"'),
                ("Access-Control-Expose-Headers", '"Content-Length, ETag, Last-Modified, Age"'),
                ("Access-Control-Max-Age", "86400"),
                ("Cache-Control", '"public, max-age=31536000, immutable"'),
                ("X-Cache-Status", "HIT"),
            )
        )
    return f"""
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  {log}
  client_body_temp_path {prefix}/body; proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi; uwsgi_temp_path {prefix}/uwsgi; scgi_temp_path {prefix}/scgi;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_requests 100000; keepalive_timeout 75s;
  types {{ application/vnd.apple.mpegurl m3u8; video/iso.segment m4s; video/mp4 mp4; }}
  server {{
    listen {address.address};
    location {STATIC}/ {{
      alias {folder}/;
{headers}
    }}
  }}
}}
"""


def start_nginx(name: str, prefix: Path, config: Path, address: Endpoint, logs: Path) -> Supervised:
    """One nginx in its own process group, up once it answers."""
    prefix.mkdir(parents=True, exist_ok=True)
    role = Supervised(
        name,
        commands.nginx(shutil.which("nginx") or "/usr/sbin/nginx", prefix, config),
        Probe("http", address, "/hls/"),
        logs / f"{name}.log",
    )
    role.start()
    role.wait_ready(20)
    return role


# -- (a) the origin's requests per segment --------------------------------------------------


def load_part(plan: ViewerPlan) -> dict[str, object]:
    """One load process: run its viewers; their figures and the process's own CPU."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    run = run_viewers(plan)
    after = resource.getrusage(resource.RUSAGE_SELF)
    figures = summary(run)
    requests = sum(pool.counters.requests for pool in run.pools)
    cpu_s = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return figures | {"requests": requests, "cpu_s": cpu_s}


def run_level(viewers: int, processes: int, args: argparse.Namespace) -> list[dict[str, object]]:
    """viewers spread over the edges, dealt to processes load processes."""
    edges = tuple(address.url for address in EDGES)
    shares = [viewers // processes + (i < viewers % processes) for i in range(processes)]
    plans = [
        ViewerPlan(
            edges=edges, master_path=f"{LIVE}/master.m3u8", viewers=share,
            duration_s=args.duration, ramp_s=args.ramp, seed=i, connections_per_edge=512,
        )
        for i, share in enumerate(shares)
    ]  # fmt: skip
    with ProcessPoolExecutor(processes, mp_context=get_context("spawn")) as pool:
        return list(pool.map(load_part, plans))


def origin_counts(log: Path, first: int, last: int, since: float, until: float) -> dict:
    """Per rendition: origin requests per segment first..last, and playlist requests per s."""
    per_segment: Counter[tuple[str, int]] = Counter()
    playlists: Counter[str] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[2] not in ("GET", "HEAD"):
            continue
        match = SEGMENT_RE.match(fields[3])
        if match and first <= int(match[2]) <= last:
            per_segment[(match[1], int(match[2]))] += 1
        elif fields[3].endswith("/index.m3u8") and since <= float(fields[0]) <= until:
            playlists[fields[3].split("/")[-2]] += 1
    rows = {}
    for track in TRACKS:
        counts = [per_segment[(track, n)] for n in range(first, last + 1)]
        rows[track] = {
            "segments": len(counts),
            "mean": round(sum(counts) / max(1, len(counts)), 3),
            "max": max(counts, default=0),
            "playlist_per_s": round(playlists[track] / max(1e-9, until - since), 2),
        }
    return rows


def level_row(
    viewers: int, parts: list[dict[str, object]], origin: dict, wall_s: float
) -> dict[str, object]:
    """The figures of one level: the viewers' side from every process, the origin's side."""
    lag = [p["loop_lag_ms"]["p99"] for p in parts]  # type: ignore[index]
    seg = [p["segment_ms"]["p99"] for p in parts]  # type: ignore[index]
    errors: Counter[str] = Counter()
    per_edge: Counter[str] = Counter()
    for part in parts:
        errors.update(part["errors"])  # type: ignore[arg-type]
        for url, row in part["edges"].items():  # type: ignore[attr-defined]
            per_edge[url] += row["requests"]
    requests = sum(int(p["requests"]) for p in parts)  # type: ignore[call-overload]
    cpu_s = sum(float(p["cpu_s"]) for p in parts)  # type: ignore[arg-type]
    means = [row["mean"] for row in origin.values()]
    return {
        "viewers": viewers,
        "processes": len(parts),
        "viewers_playing": sum(int(p["viewers_playing"]) for p in parts),  # type: ignore[call-overload]
        "stalls": sum(int(p["stalls"]) for p in parts),  # type: ignore[call-overload]
        "viewers_stalled": sum(int(p["viewers_stalled"]) for p in parts),  # type: ignore[call-overload]
        "viewer_hours": round(sum(float(p["viewer_hours"]) for p in parts), 3),  # type: ignore[arg-type]
        "segments_skipped": sum(int(p["segments_skipped"]) for p in parts),  # type: ignore[call-overload]
        "errors": dict(errors),
        "requests_per_s": round(requests / wall_s),
        "requests_per_edge": dict(per_edge),
        "segment_ms_p99_worst_process": max(seg, default=None),
        "loop_lag_ms_p99_per_process": lag,
        "load_cpu_us_per_request": round(cpu_s / max(1, requests) * 1e6, 1),
        "origin": origin,
        "origin_requests_per_segment_per_rendition": round(sum(means) / len(means), 3),
        "origin_max_for_one_segment": max(row["max"] for row in origin.values()),
    }


def protect(writer: LiveWriter, log: Path, args: argparse.Namespace) -> list[dict[str, object]]:
    """Part (a): each level, its viewers' figures and the origin's requests per segment."""
    rows = []
    levels = [int(n) for n in args.levels.split(",")]
    processes = [int(n) for n in args.processes.split(",")]
    for viewers, count in zip(levels, processes, strict=True):
        first, since = writer.newest + 1, time.time()
        started = time.monotonic()
        parts = run_level(viewers, count, args)
        wall_s = time.monotonic() - started
        # The newest segment may have come out just before the end, before every edge asked.
        until, last = time.time(), writer.newest - 1
        time.sleep(1.0)  # the origin logs each request as it ends: let the last ones land
        row = level_row(viewers, parts, origin_counts(log, first, last, since, until), wall_s)
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


# -- (b) edge vs disk -----------------------------------------------------------------------


def write_static(folder: Path, segment_bytes: int) -> list[str]:
    """Fixed segment files of every rendition; their URL paths."""
    paths = []
    for track in TRACKS:
        (folder / track).mkdir(parents=True, exist_ok=True)
        for n in range(STATIC_SEGMENTS):
            (folder / track / f"seg_{n}.m4s").write_bytes(bytes([n]) * segment_bytes)
            paths.append(f"{STATIC}/{track}/seg_{n}.m4s")
    return paths


def wrk_script(paths: list[str], target: Path) -> None:
    """A wrk Lua script that asks for each path in turn."""
    listed = ", ".join(f'"{p}"' for p in paths)
    target.write_text(
        f"local paths = {{{listed}}}\nlocal i = 0\n"
        "request = function()\n  i = i % #paths + 1\n"
        '  return wrk.format("GET", paths[i])\nend\n'
    )


def warm(paths: list[str]) -> int:
    """Fetch every path through the first edge twice; the number of cache HITs the second time."""
    import httpx

    hits = 0
    with httpx.Client(base_url=EDGES[0].url, timeout=10) as client:
        for path in paths * 2:
            response = client.get(path)
            response.raise_for_status()
            hits += response.headers.get("x-cache-status") == "HIT"
    return hits


def wrk(url: str, script: Path, pgid: int, args: argparse.Namespace) -> tuple[float, float]:
    """Requests/s wrk sustains against url (one thread, keep-alive connections), and the
    server's own CPU µs per request (less at the mercy of the machine's other work)."""
    before = group_cpu_s(pgid)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{args.connections}", f"-d{args.wrk_seconds:g}s", "-s", str(script), url],
        capture_output=True, text=True, check=True, timeout=args.wrk_seconds + 30,
    ).stdout  # fmt: skip
    cpu_s = group_cpu_s(pgid) - before
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk against {url} saw errors:\n{out}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    requests = int(re.search(r"(\d+) requests in", out)[1])  # type: ignore[index]
    return rate, cpu_s / max(1, requests) * 1e6


SERVERS = {"edge": EDGES[0], "bare": BARE, "dressed": DRESSED}


def efficiency(script: Path, groups: dict[str, int], args: argparse.Namespace) -> dict:
    """Part (b): rounds of edge, bare and dressed nginx, the order rotating; median ratios."""
    rate: dict[str, list[float]] = {name: [] for name in SERVERS}
    cpu: dict[str, list[float]] = {name: [] for name in SERVERS}
    names = list(SERVERS)
    for n in range(args.rounds):
        for which in names[n % 3 :] + names[: n % 3]:  # each goes first once in three
            per_s, us = wrk(SERVERS[which].url, script, groups[which], args)
            rate[which].append(per_s)
            cpu[which].append(us)
        rates = ", ".join(f"{k} {v[-1]:,.0f}/s ({cpu[k][-1]:.1f} µs)" for k, v in rate.items())
        print(f"round {n + 1}: {rates}", flush=True)

    def paired(top: str, bottom: str, values: dict[str, list[float]]) -> list[float]:
        return [round(a / b, 3) for a, b in zip(values[top], values[bottom], strict=True)]

    ratios, dressed = paired("edge", "bare", rate), paired("edge", "dressed", rate)
    by_cpu = paired("bare", "edge", cpu)  # requests one core serves: the inverse of CPU
    return {
        "connections": args.connections,
        "per_s": {k: [round(x) for x in v] for k, v in rate.items()},
        "server_cpu_us_per_request": {k: [round(x, 1) for x in v] for k, v in cpu.items()},
        "ratios": ratios,
        "median_ratio": round(statistics.median(ratios), 3),
        "ratios_vs_dressed": dressed,
        "median_ratio_vs_dressed": round(statistics.median(dressed), 3),
        "cpu_ratios": by_cpu,
        "median_cpu_ratio": round(statistics.median(by_cpu), 3),
        "median_cpu_ratio_vs_dressed": round(statistics.median(paired("dressed", "edge", cpu)), 3),
    }


def report(rows: list[dict[str, object]], edge: dict[str, object] | None) -> None:
    """The headline lines."""
    if len(rows) >= 2:
        low, high = rows[0], rows[-1]
        lo = float(low["origin_requests_per_segment_per_rendition"])  # type: ignore[arg-type]
        hi = float(high["origin_requests_per_segment_per_rendition"])  # type: ignore[arg-type]
        print(
            f"edges protect the origin: origin requests per new segment per rendition "
            f"{lo:.2f} at {low['viewers']:,} viewers, {hi:.2f} at {high['viewers']:,} "
            f"(bound {len(EDGES)} edges; per edge {lo / len(EDGES):.2f} and "
            f"{hi / len(EDGES):.2f}; worst single segment {high['origin_max_for_one_segment']}); "
            f"ratio {high['viewers']:,}/{low['viewers']:,}: {hi / lo:.3f}; "
            f"stalls {low['stalls']} and {high['stalls']}"
        )
    if edge is not None:
        print(
            f"edge efficiency: edge (cache warm) vs bare nginx from disk, wrk -t1 "
            f"-c{edge['connections']}: median paired ratio {edge['median_ratio']} "
            f"(rounds {edge['ratios']}); vs nginx from disk with the edge's access log and "
            f"headers: {edge['median_ratio_vs_dressed']} (rounds {edge['ratios_vs_dressed']}); "
            f"by the servers' own CPU per request (requests one core serves): "
            f"{edge['median_cpu_ratio']} vs bare (rounds {edge['cpu_ratios']}), "
            f"{edge['median_cpu_ratio_vs_dressed']} vs dressed"
        )


def main() -> None:
    """Start the origin and edges, run (a) and (b), stop everything."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="500,5000")
    parser.add_argument("--processes", default="1,3", help="load processes for each level")
    parser.add_argument("--duration", type=float, default=40.0)
    parser.add_argument("--ramp", type=float, default=10.0)
    parser.add_argument("--segment-s", type=float, default=2.0)
    parser.add_argument("--segment-kb", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--wrk-seconds", type=float, default=8.0)
    parser.add_argument("--skip", choices=("protect", "efficiency"), default=None)
    args = parser.parse_args()
    for address in (ORIGIN, *EDGES, BARE, DRESSED):
        check_free(address)
    work = Path(tempfile.mkdtemp(prefix="hls-edges-"))
    work.chmod(0o755)  # nginx's workers must reach into it
    shape = topology(work / "root", args.segment_s)
    write(render(shape), work / "rendered")
    roles: list[Supervised] = []
    writer: LiveWriter | None = None
    try:
        live = shape.segment_dir("a") / "bench" / "1"
        live.mkdir(parents=True)
        write_master(live)
        writer = LiveWriter(live, args.segment_s, args.segment_kb * 1024)
        writer.start()
        static = shape.segment_dir("a") / "bench" / "2"
        paths = write_static(static, args.segment_kb * 1024)
        logs = work / "logs"
        for name, address in (
            ("origin-a", ORIGIN),
            *((f"edge-e{i + 1}", e) for i, e in enumerate(EDGES)),
        ):
            kind, _, node = name.partition("-")
            config = work / "rendered" / "nginx" / f"{name}.conf"
            roles.append(start_nginx(name, shape.nginx_prefix(kind, node), config, address, logs))
        for name, address in (("bare", BARE), ("dressed", DRESSED)):
            prefix = work / name
            prefix.mkdir()
            conf = bare_conf(prefix, static, address, dressed=name == "dressed")
            (prefix / "nginx.conf").write_text(conf)
            roles.append(start_nginx(name, prefix, prefix / "nginx.conf", address, logs))
        print(
            f"origin {ORIGIN.url}, edges {', '.join(e.url for e in EDGES)}; {args.segment_s:g} s "
            f"segments of {args.segment_kb} KiB; load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        rows = []
        if args.skip != "protect":
            rows = protect(writer, shape.nginx_prefix("origin", "a") / "access.log", args)
        edge = None
        if args.skip != "efficiency":
            script = work / "paths.lua"
            wrk_script(paths, script)
            print(f"warm: {warm(paths)} of {len(paths)} HITs on the second pass", flush=True)
            pids = {role.name: role.process.pid for role in roles if role.process is not None}
            groups = {"edge": pids["edge-e1"], "bare": pids["bare"], "dressed": pids["dressed"]}
            edge = efficiency(script, groups, args)
            print(json.dumps(edge), flush=True)
        print(f"load average after {os.getloadavg()[0]:.1f}")
        report(rows, edge)
    finally:
        if writer is not None:
            writer.stop.set()
        for role in reversed(roles):
            role.stop(10.0)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
