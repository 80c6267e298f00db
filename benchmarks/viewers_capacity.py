"""Viewer load tool capacity: how many simulated HLS viewers one load process sustains.

A live HLS window (2 s segments of a small fixed size, three renditions and an
audio-only rung) is rewritten on disk every segment and served by nginx on 127.0.0.51;
`summitcast loadtest viewers`' engine runs N viewers against it in this process for each
N of --levels. For each level it prints the ratio of segments fetched to segments a
player that keeps up fetches (three back from the live edge, then each one published
while it played), the stalls, the load loop's own lateness (p99), and the CPU the load
process spent per request — from which the viewers one core sustains follow.

    .venv/bin/python benchmarks/viewers_capacity.py --levels 500,2000 --duration 30
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from _hls_window import LiveWriter, write_master
from summitcast.loadtest.viewer_report import summary
from summitcast.loadtest.viewers import ViewerPlan, ViewerRun, run_viewers

HOST = "127.0.0.51"
MASTER = "/hls/bench/1/master.m3u8"


def free_port() -> int:
    """A free TCP port on HOST."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def nginx_conf(root: Path, port: int, prefix: Path) -> str:
    """A static server of the HLS tree with long keep-alive, no access log."""
    return f"""
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body; proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi; uwsgi_temp_path {prefix}/uwsgi; scgi_temp_path {prefix}/scgi;
  keepalive_requests 1000000; keepalive_timeout 75s;
  types {{ application/vnd.apple.mpegurl m3u8; video/mp4 m4s mp4; }}
  server {{
    listen {HOST}:{port};
    location /hls/bench/1/ {{ alias {root}/; }}
  }}
}}
"""


def expected_segments(run: ViewerRun, segment_s: float) -> int:
    """Segments players that keep up fetch: three back from the live edge, then each new one."""
    total = 0
    for viewer in run.viewers:
        if viewer.stats.begun_at:
            published = int(max(0.0, run.ended_monotonic - viewer.stats.begun_at) / segment_s)
            total += len(viewer.playback.buffered) * (3 + published)
    return total


def measure(url: str, viewers: int, duration_s: float, segment_s: float) -> dict[str, object]:
    """Run one level; the figures of its row."""
    plan = ViewerPlan(
        edges=(url,), master_path=MASTER, viewers=viewers, duration_s=duration_s,
        ramp_s=min(10.0, duration_s / 4), connections_per_edge=512,
    )  # fmt: skip
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    run = run_viewers(plan)
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    figures = summary(run)
    requests = sum(pool.counters.requests for pool in run.pools)
    expected = expected_segments(run, segment_s)
    fetched = sum(v.stats.segments for v in run.viewers)
    cpu_per_request_us = cpu_s / max(1, requests) * 1e6
    steady_rps_per_viewer = requests / max(1.0, sum(
        max(0.0, run.ended_monotonic - v.stats.begun_at) for v in run.viewers if v.stats.begun_at
    ))  # fmt: skip
    return {
        "viewers": viewers,
        "requests": requests,
        # ~1.0 when every viewer kept up with the live edge (±1 segment per track).
        "segments_vs_published": round(fetched / expected, 3) if expected else None,
        "stalls": figures["stalls"],
        "segment_ms_p99": figures["segment_ms"]["p99"],  # type: ignore[index]
        "loop_lag_ms_p99": figures["loop_lag_ms"]["p99"],  # type: ignore[index]
        "cpu_us_per_request": round(cpu_per_request_us, 1),
        "viewers_per_core": int(1e6 / (cpu_per_request_us * steady_rps_per_viewer)),
        "errors": figures["errors"],
    }


def main() -> None:
    """Serve the live window with nginx and run each level against it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="500,1000,2000")
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--segment-s", type=float, default=2.0)
    parser.add_argument("--segment-kb", type=int, default=16)
    args = parser.parse_args()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    work = Path(tempfile.mkdtemp(prefix="viewers-capacity-"))
    work.chmod(0o755)  # nginx's worker may run as nobody
    root, prefix = work / "hls", work / "nginx"
    root.mkdir()
    prefix.mkdir()
    write_master(root)
    writer = LiveWriter(root, args.segment_s, args.segment_kb * 1024)
    writer.start()
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_conf(root, port, prefix))
    server = subprocess.Popen(
        [nginx, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"], start_new_session=True
    )
    try:
        time.sleep(0.5)
        url = f"http://{HOST}:{port}"
        print(f"nginx {url}, {args.segment_s:g} s segments of {args.segment_kb} KiB")
        for level in (int(n) for n in args.levels.split(",")):
            row = measure(url, level, args.duration, args.segment_s)
            print("  ".join(f"{k} {v}" for k, v in row.items()), flush=True)
    finally:
        writer.stop.set()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
