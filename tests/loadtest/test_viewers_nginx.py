"""The viewer tool through two real nginx caches: the origin sees one request per segment per edge.

The test's live origin (test_viewers.LiveOrigin, writing its requests in the origin
nginx's log format) sits behind two nginx edges that cache playlists for a second
(nginx's smallest) and segments for long, with request collapsing (``proxy_cache_lock``), as
docs/deploy.md prescribes. The tool's own origin figures must then show at most one
origin request per segment per rendition per edge, however many viewers ask.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from summitcast.loadtest.viewer_report import summary
from summitcast.loadtest.viewers import ViewerPlan, run_viewers
from tests.e2e.conftest import free_port
from tests.loadtest.test_viewers import MASTER, LiveOrigin, edges

pytestmark = pytest.mark.e2e


def _edge_conf(prefix: Path, port: int, origin_port: int) -> str:
    # Root runs nginx's workers as nobody unless told otherwise; the cache is in a private
    # pytest folder that nobody cannot enter.
    user = "user root;" if os.geteuid() == 0 else ""
    cache = "proxy_cache hls; proxy_cache_lock on; proxy_cache_use_stale updating;"
    upstream = 'proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection "";'
    return f"""
{user}
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body; proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi; uwsgi_temp_path {prefix}/uwsgi; scgi_temp_path {prefix}/scgi;
  proxy_cache_path {prefix}/cache keys_zone=hls:4m max_size=64m use_temp_path=off;
  upstream origin {{ server 127.0.0.1:{origin_port}; keepalive 8; }}
  server {{
    listen 127.0.0.1:{port};
    location ~ \\.m3u8$ {{ {upstream} {cache} proxy_cache_valid 200 1s; }}
    location / {{ {upstream} {cache} proxy_cache_valid 200 10m; }}
  }}
}}
"""


@contextlib.contextmanager
def nginx_edge(tmp: Path, origin_url: str) -> Iterator[str]:
    """An nginx cache in front of ``origin_url``, in its own process group."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is not installed")
        pytest.skip("nginx is not installed")
    port = free_port()
    prefix = tmp / f"edge-{port}"
    prefix.mkdir()
    conf = prefix / "nginx.conf"
    conf.write_text(_edge_conf(prefix, port, int(origin_url.rsplit(":", 1)[1])))
    argv = [nginx, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"]
    process = subprocess.Popen(argv, start_new_session=True, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            assert process.poll() is None, (prefix / "error.log").read_text()
            with contextlib.suppress(httpx.TransportError):
                httpx.get(f"{url}/nginx-up", timeout=1)
                break
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.05)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_origin_serves_each_segment_once_per_edge(tmp_path: Path) -> None:
    log = tmp_path / "origin.log"
    # 2 s segments, as summitcast makes them: nginx caches for whole seconds (1 s here
    # lasts up to 2), which would leave 0.5 s segments' viewers behind the live edge.
    origin = LiveOrigin(segment_s=2.0, access_log=log)
    with (
        edges(origin, 1) as origin_servers,
        nginx_edge(tmp_path, origin_servers[0].url) as e1,
        nginx_edge(tmp_path, origin_servers[0].url) as e2,
    ):
        plan = ViewerPlan(
            edges=(e1, e2), master_path=MASTER, viewers=40, duration_s=7.0, ramp_s=0.5
        )
        run = run_viewers(plan)
    figures = summary(run, [log])
    assert figures["stalls"] == 0
    assert figures["errors"] == {}
    origin_figures = figures["origin"]
    assert isinstance(origin_figures, dict)
    renditions = {"enc-a/720p", "enc-a/360p", "enc-a/audio_en", "enc-a/audio_only_en"}
    assert set(origin_figures) - {"master"} == renditions
    for rendition in renditions:
        row = origin_figures[rendition]
        # 40 viewers, 2 edges: each edge asked once per segment (the newest maybe not yet).
        assert 1.5 <= row["requests_per_segment"] <= 2.0, (rendition, row)
        # Each edge refreshes a playlist at most once per second of cache life.
        assert row["playlist_requests_per_s"] <= 2 * 1.0, (rendition, row)
    # The viewers asked far more often than the origin answered.
    segments_asked = sum(v.stats.segments for v in run.viewers)
    segments_at_origin = sum(origin_figures[r]["segment_requests"] for r in renditions)
    assert segments_asked > 5 * segments_at_origin
