"""A real edge nginx in front of a real origin nginx over a folder of HLS files."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from summitcast.deploy.render import render, write
from summitcast.deploy.topology import Topology
from summitcast.web.hls_cache import cache_headers_for
from tests.deploy.conftest import make_topology
from tests.deploy.nginx_run import NginxProcess, free_port

pytestmark = pytest.mark.e2e

# Addresses of this test only: the cluster harness uses 127.0.0.2x/3x.
ORIGIN_A, ORIGIN_B, EDGE = "127.0.15.21", "127.0.15.22", "127.0.15.31"
MASTER = b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\nenc-a/360p/index.m3u8\n"
PLAYLIST = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg_00001.m4s\n"


@dataclass
class Stack:
    """The running origin and edge, and where the origin's files are."""

    topology: Topology
    session: Path  # the session folder of origin a
    edge: str  # base URL
    origin: str
    origin_process: NginxProcess

    def origin_requests(self, uri: str) -> int:
        """How many requests for uri the origin's access log holds."""
        log = self.topology.nginx_prefix("origin", "a") / "access.log"
        return sum(1 for line in log.read_text().splitlines() if line.split()[3] == uri)


@pytest.fixture
def stack(tmp_path: Path, nginx: str) -> Iterator[Stack]:
    """Origin a and the edge up (origin b is down: its encoder 'died')."""
    topology = make_topology(
        tmp_path,
        broadcast_nodes=[
            {"name": "a", "app": f"{ORIGIN_A}:8000", "origin": f"{ORIGIN_A}:{free_port(ORIGIN_A)}"},
            {"name": "b", "app": f"{ORIGIN_B}:8000", "origin": f"{ORIGIN_B}:{free_port(ORIGIN_B)}"},
        ],
        edges=[{"name": "e1", "listen": f"{EDGE}:{free_port(EDGE)}", "cache_mb": 64}],
    )
    out = tmp_path / "rendered"
    write(render(topology), out)
    session = topology.segment_dir("a") / "demo" / "7"
    (session / "360p").mkdir(parents=True)
    (session / "master.m3u8").write_bytes(MASTER)
    (session / ".session.m3u8").write_bytes(MASTER)
    (session / "360p" / "index.m3u8").write_bytes(PLAYLIST)
    (session / "360p" / "init.mp4").write_bytes(b"init" * 100)
    for number in range(1, 4):
        (session / "360p" / f"seg_0000{number}.m4s").write_bytes(bytes([number]) * 50_000)
    node, edge = topology.broadcast_nodes[0], topology.edges[0]
    started: list[NginxProcess] = []
    try:
        for role, name, listen in (("origin", "a", node.origin), ("edge", "e1", edge.listen)):
            config = out / "nginx" / f"{role}-{name}.conf"
            started.append(NginxProcess(nginx, topology.nginx_prefix(role, name), config, listen))
            started[-1].wait_ready()
        yield Stack(topology, session, edge.listen.url, node.origin.url, started[0])
    finally:
        for process in started:
            process.stop()


def test_edge_second_segment_fetch_is_a_cache_hit(stack: Stack) -> None:
    url = f"{stack.edge}/hls/demo/7/enc-a/360p/seg_00001.m4s"

    first, second = httpx.get(url), httpx.get(url)

    assert (first.status_code, first.headers["x-cache-status"]) == (200, "MISS")
    assert (second.status_code, second.headers["x-cache-status"]) == (200, "HIT")
    assert second.content == bytes([1]) * 50_000
    assert second.headers["content-type"] == "video/iso.segment"
    assert stack.origin_requests("/hls/demo/7/enc-a/360p/seg_00001.m4s") == 1


def test_edge_collapses_concurrent_requests_into_one_origin_request(stack: Stack) -> None:
    url = f"{stack.edge}/hls/demo/7/enc-a/360p/seg_00002.m4s"

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda _: httpx.get(url, timeout=10), range(20)))

    assert [a.status_code for a in answers] == [200] * 20
    assert all(a.content == bytes([2]) * 50_000 for a in answers)
    assert stack.origin_requests("/hls/demo/7/enc-a/360p/seg_00002.m4s") == 1


def test_edge_answers_conditional_requests_and_head_itself(stack: Stack) -> None:
    url = f"{stack.edge}/hls/demo/7/enc-a/360p/seg_00003.m4s"
    etag = httpx.get(url).headers["etag"]

    again = httpx.get(url, headers={"If-None-Match": etag})
    head = httpx.head(url)

    assert (again.status_code, again.content) == (304, b"")
    assert again.headers["x-cache-status"] == "HIT"
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == "50000"
    assert stack.origin_requests("/hls/demo/7/enc-a/360p/seg_00003.m4s") == 1


def test_edge_playlist_has_type_and_cors(stack: Stack) -> None:
    url = f"{stack.edge}/hls/demo/7/enc-a/360p/index.m3u8"
    preflight_headers = {"Origin": "https://screen.example", "Access-Control-Request-Method": "GET"}

    first = httpx.get(url)
    preflight = httpx.options(url, headers=preflight_headers)

    assert first.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert first.headers.get_list("access-control-allow-origin") == ["*"]  # one value only
    assert first.headers["cache-control"] == "public, max-age=1"
    assert (preflight.status_code, preflight.content) == (204, b"")
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "GET" in preflight.headers["access-control-allow-methods"]


def test_edge_playlist_lives_one_to_two_seconds(stack: Stack) -> None:
    url = f"{stack.edge}/hls/demo/7/enc-a/360p/index.m3u8"
    newer = PLAYLIST + b"#EXTINF:2.0,\nseg_00002.m4s\n"
    httpx.get(url)
    (stack.session / "360p" / "index.m3u8").write_bytes(newer)
    written = time.monotonic()

    while httpx.get(url).content != newer and time.monotonic() - written < 5:
        time.sleep(0.05)

    # max-age=1 in nginx's whole seconds: a copy lives until the second after next, 1-2 s;
    # the first request after that may still get it once ("updating"), hence the slack.
    assert time.monotonic() - written <= 2.3
    assert stack.origin_requests("/hls/demo/7/enc-a/360p/index.m3u8") == 2


def test_edge_master_comes_from_any_live_origin(stack: Stack) -> None:
    answers = [httpx.get(f"{stack.edge}/hls/demo/7/master.m3u8") for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert answers[0].content == MASTER


def test_edge_fails_fast_for_a_dead_encoder(stack: Stack) -> None:
    started = time.monotonic()
    answer = httpx.get(f"{stack.edge}/hls/demo/7/enc-b/360p/index.m3u8", timeout=10)

    assert answer.status_code == 502  # origin b is down: the player switches pathway
    assert time.monotonic() - started < 2.0
    assert httpx.get(f"{stack.edge}/hls/demo/7/enc-zz/360p/index.m3u8").status_code == 404


def test_edge_serves_no_stale_playlist_once_its_origin_died(stack: Stack) -> None:
    playlist = f"{stack.edge}/hls/demo/7/enc-a/360p/index.m3u8"
    segment = f"{stack.edge}/hls/demo/7/enc-a/360p/seg_00001.m4s"
    assert httpx.get(playlist).status_code == 200
    assert httpx.get(segment).status_code == 200

    stack.origin_process.stop()
    time.sleep(2.1)  # the cached playlist has expired (1-2 s)

    assert httpx.get(playlist).status_code == 502  # not the stale copy: the player moves on
    assert httpx.get(segment).status_code == 200  # segments stay (immutable)


@pytest.mark.parametrize(
    "path",
    ["master.m3u8", "360p/index.m3u8", "360p/init.mp4", "360p/seg_00001.m4s"],
)
def test_origin_serves_files_with_summitcast_s_own_headers(stack: Stack, path: str) -> None:
    mapped = path if path == "master.m3u8" else f"enc-a/{path}"

    answer = httpx.get(f"{stack.origin}/hls/demo/7/{mapped}")

    expected = cache_headers_for(path)
    assert answer.status_code == 200
    assert answer.content == (stack.session / path).read_bytes()
    assert answer.headers["content-type"] == expected["Content-Type"]
    assert answer.headers["cache-control"] == expected["Cache-Control"]
    assert answer.headers["access-control-allow-origin"] == "*"
    assert answer.headers["etag"]
    assert answer.headers["last-modified"]


def test_origin_answers_conditional_requests_and_head(stack: Stack) -> None:
    url = f"{stack.origin}/hls/demo/7/enc-a/360p/index.m3u8"
    first = httpx.get(url)

    by_etag = httpx.get(url, headers={"If-None-Match": first.headers["etag"]})
    by_date = httpx.get(url, headers={"If-Modified-Since": first.headers["last-modified"]})
    head = httpx.head(url)

    assert (by_etag.status_code, by_date.status_code) == (304, 304)
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == str(len(PLAYLIST))


@pytest.mark.parametrize(
    "path",
    [
        "enc-b/360p/index.m3u8",  # the other encoder's files are never here
        ".session.m3u8",  # hidden files are not published
        "enc-a/.session.m3u8",
        "enc-a/360p/missing.m4s",
        "../7/master.m3u8/../../x",
    ],
)
def test_origin_refuses_what_is_not_its_own(stack: Stack, path: str) -> None:
    assert httpx.get(f"{stack.origin}/hls/demo/7/{path}").status_code == 404
    assert httpx.get(f"{stack.edge}/hls/demo/7/{path}").status_code == 404 or path.startswith(
        "enc-b"
    )
