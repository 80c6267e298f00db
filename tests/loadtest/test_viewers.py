"""The viewer load tool against a small live HLS origin of the test's own (two "edges").

The origin is a Starlette app served by uvicorn on 127.0.0.1 in a thread: a sliding
live window that gains a 0.5 s segment every 0.5 s, two video rungs and an audio-only
rung, each listed twice (enc-a/… and enc-b/…) like redundant encoders. Every request is
logged with the viewer number the tool puts in its User-Agent, so the tests check what
each viewer fetched from the server's side, not from the tool's own counters.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from summitcast.loadtest.hls_http import EdgePool
from summitcast.loadtest.viewers import ViewerPlan, ViewerRun, run_viewers
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.integration

SEGMENT_S = 0.5
WINDOW = 6
MASTER = "/hls/demo/1/master.m3u8"
RUNGS = {"720p": (1280, 720, 3000), "360p": (640, 360, 1200)}  # width, height, bytes
AUDIO_BYTES = 400
_SEGMENT = re.compile(r"/hls/demo/1/(enc-[ab])/([^/]+)/seg_(\d+)\.m4s$")


def master_text() -> str:
    """Two video rungs with an audio group, an audio-only rung; each once per encoder."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for enc in ("a", "b"):
        for group, folder in ((f"aud-{enc}", "audio_en"), (f"audonly-{enc}", "audio_only_en")):
            lines.append(
                f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{group}",NAME="English",LANGUAGE="en",'
                f'DEFAULT=YES,AUTOSELECT=YES,URI="enc-{enc}/{folder}/index.m3u8"'
            )
    for name, (width, height, size) in RUNGS.items():
        for enc in ("a", "b"):
            lines.append(
                f"#EXT-X-STREAM-INF:BANDWIDTH={size * 16},RESOLUTION={width}x{height},"
                f'CODECS="avc1.4d4028,mp4a.40.2",AUDIO="aud-{enc}"'
            )
            lines.append(f"enc-{enc}/{name}/index.m3u8")
    for enc in ("a", "b"):
        lines.append(f'#EXT-X-STREAM-INF:BANDWIDTH=70400,CODECS="mp4a.40.2",AUDIO="audonly-{enc}"')
        lines.append(f"enc-{enc}/audio_only_en/index.m3u8")
    return "\n".join(lines) + "\n"


@dataclass
class LiveOrigin:
    """The live clock and faults shared by every edge server of a test."""

    began: float = field(default_factory=time.monotonic)
    segment_s: float = SEGMENT_S
    frozen_at: int | None = None  # newest segment once production stopped
    failing: tuple[str, ...] = ()  # path parts answered 503, e.g. ("enc-a",)
    log: list[tuple[float, str, int, str]] = field(default_factory=list)  # at, edge, viewer, path
    access_log: Path | None = None  # also written in the origin nginx's format when set

    def newest(self) -> int:
        """The newest segment's sequence number: the window starts full."""
        produced = WINDOW + int((time.monotonic() - self.began) / self.segment_s)
        return produced if self.frozen_at is None else min(produced, self.frozen_at)

    def freeze(self) -> None:
        """Stop producing segments (an encoder that hangs)."""
        self.frozen_at = self.newest()

    def media_playlist(self) -> str:
        """The live window: the newest WINDOW segments."""
        newest = self.newest()
        first = newest - WINDOW + 1
        target = math.ceil(self.segment_s)
        lines = ["#EXTM3U", "#EXT-X-VERSION:7", f"#EXT-X-TARGETDURATION:{target}"]
        lines += [f"#EXT-X-MEDIA-SEQUENCE:{first}", '#EXT-X-MAP:URI="init.mp4"']
        for n in range(first, newest + 1):
            lines += [f"#EXTINF:{self.segment_s:.6f},", f"seg_{n}.m4s"]
        return "\n".join(lines) + "\n"

    def app(self, edge: str) -> Starlette:
        """The HTTP face of the origin as one edge shows it."""

        async def hls(request: Request) -> Response:
            path = request.url.path
            agent = request.headers.get("user-agent", "")
            viewer = int(agent.rsplit("viewer=", 1)[1]) if "viewer=" in agent else -1
            self.log.append((time.time(), edge, viewer, path))
            response = answer(path)
            if self.access_log is not None:
                # $msec $status $request_method $uri $upstream_cache_status $body_bytes_sent
                with self.access_log.open("a") as out:
                    size = len(response.body)
                    out.write(f"{time.time():.3f} {response.status_code} GET {path} - {size}\n")
            return response

        def answer(path: str) -> Response:
            if path == "/chunked":  # no Content-Length: uvicorn sends it chunked

                async def parts() -> AsyncIterator[bytes]:
                    for part in (b"#EXTM3U\n", b"x" * 70_000, b"\nend"):
                        yield part

                return StreamingResponse(parts(), media_type="text/plain")
            if any(f"/{part}/" in path for part in self.failing):
                return PlainTextResponse("encoder down", status_code=503)
            if path == MASTER:
                return PlainTextResponse(master_text(), media_type="application/vnd.apple.mpegurl")
            if path.endswith("/index.m3u8"):
                body = self.media_playlist()
                return PlainTextResponse(body, media_type="application/vnd.apple.mpegurl")
            match = _SEGMENT.search(path)
            if match is not None and int(match[3]) <= self.newest():
                size = RUNGS.get(match[2], (0, 0, AUDIO_BYTES))[2]
                return Response(b"\0" * size, media_type="video/mp4")
            if path.endswith("/init.mp4"):
                return Response(b"\1" * 100, media_type="video/mp4")
            return PlainTextResponse("not found", status_code=404)

        return Starlette(routes=[Route("/{path:path}", hls)])


@dataclass
class EdgeServer:
    """One uvicorn server of the origin's app, running in a thread."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        """Stop it: listening socket closed, kept-alive connections closed."""
        self.server.should_exit = True
        self.thread.join(timeout=10)


@contextmanager
def edges(origin: LiveOrigin, count: int) -> Iterator[list[EdgeServer]]:
    """``count`` servers of ``origin`` on free ports, stopped afterwards."""
    started: list[EdgeServer] = []
    try:
        for i in range(count):
            port = free_port()
            config = uvicorn.Config(
                origin.app(f"e{i + 1}"),
                host="127.0.0.1",
                port=port,
                log_level="warning",
                lifespan="off",
                timeout_graceful_shutdown=1,
            )
            server = uvicorn.Server(config)
            thread = threading.Thread(target=server.run, daemon=True)
            thread.start()
            started.append(EdgeServer(f"http://127.0.0.1:{port}", server, thread))
        deadline = time.monotonic() + 10
        while not all(e.server.started for e in started):
            assert time.monotonic() < deadline, "the test edges did not start"
            time.sleep(0.02)
        yield started
    finally:
        for edge in started:
            edge.stop()


def _plan(servers: list[EdgeServer], viewers: int, duration_s: float, **extra: Any) -> ViewerPlan:
    return ViewerPlan(
        edges=tuple(s.url for s in servers),
        master_path=MASTER,
        viewers=viewers,
        duration_s=duration_s,
        **extra,
    )


def segments_by_viewer(
    origin: LiveOrigin, after: float = 0.0
) -> dict[int, dict[str, list[tuple[str, str, int]]]]:
    """Per viewer, per rendition folder: (edge, encoder, sequence) of each segment fetched."""
    fetched: defaultdict[int, defaultdict[str, list[tuple[str, str, int]]]]
    fetched = defaultdict(lambda: defaultdict(list))
    for at, edge, viewer, path in origin.log:
        match = _SEGMENT.search(path)
        if match is not None and at > after:
            fetched[viewer][match[2]].append((edge, match[1], int(match[3])))
    return fetched


def _in_order(sequences: list[int]) -> bool:
    return all(b == a + 1 for a, b in pairwise(sequences))


def _stalls(run: ViewerRun) -> int:
    return sum(v.playback.stalls for v in run.viewers)


def test_viewers_over_two_edges_play_in_order_without_stalls() -> None:
    origin = LiveOrigin()
    with edges(origin, 2) as servers:
        plan = _plan(servers, 50, 4.0, ramp_s=0.5, mix=(("720p", 2), ("360p", 2), ("audio", 1)))
        run = run_viewers(plan)
    fetched = segments_by_viewer(origin)
    rungs = [v.stats.rung for v in run.viewers]
    assert (rungs.count("720p"), rungs.count("360p"), rungs.count("audio")) == (20, 20, 10)
    assert _stalls(run) == 0
    assert sorted(fetched) == list(range(50))
    for viewer in run.viewers:
        folders = fetched[viewer.stats.index]
        expected = {"audio_only_en"} if viewer.stats.rung == "audio" else {viewer.stats.rung}
        assert set(folders) == expected | ({"audio_en"} if viewer.stats.rung != "audio" else set())
        for entries in folders.values():
            assert len(entries) >= 4
            assert _in_order([seq for _, _, seq in entries])
            # Round robin: viewer i stays on edge i % 2, on encoder a.
            edge = f"e{viewer.stats.index % 2 + 1}"
            assert {(e, enc) for e, enc, _ in entries} == {(edge, "enc-a")}
    assert all(pool.counters.bytes > 0 for pool in run.pools)
    assert all(v.playback.started_at is not None for v in run.viewers)


def test_viewers_stall_when_the_origin_stops_producing() -> None:
    origin = LiveOrigin()
    with edges(origin, 1) as servers:
        threading.Timer(1.0, origin.freeze).start()
        run = run_viewers(_plan(servers, 10, 4.0))
    # Started 1.5 s behind the live edge, frozen after 1 s: the buffer runs dry by ~2.5 s.
    assert all(v.playback.stalls == 1 for v in run.viewers)
    stalled = [v.playback.stalled_s for v in run.viewers]
    assert all(0.5 < s < 3.0 for s in stalled), stalled


def test_viewers_move_to_the_other_edge_when_theirs_stops() -> None:
    origin = LiveOrigin()
    with edges(origin, 2) as servers:
        threading.Timer(2.0, servers[1].stop).start()
        run = run_viewers(_plan(servers, 20, 5.0, ramp_s=0.2))
        stopped_at = max(at for at, edge, _, _ in origin.log if edge == "e2")
    moved = [v for v in run.viewers if v.stats.first_edge == 1]
    assert len(moved) == 10
    assert all(v.stats.edge_switches == 1 for v in moved)
    assert all(v.stats.edge_switches == 0 for v in run.viewers if v.stats.first_edge == 0)
    # Within one segment duration of the first failed request.
    assert len(run.switch_ms) == 10
    assert max(run.switch_ms) < SEGMENT_S * 1000
    fetched = segments_by_viewer(origin)
    after = segments_by_viewer(origin, after=stopped_at)
    for viewer in moved:
        for folder, entries in fetched[viewer.stats.index].items():
            assert _in_order([seq for _, _, seq in entries]), folder
        later = [e for entries in after[viewer.stats.index].values() for e in entries]
        assert len(later) >= 4
        assert {edge for edge, _, _ in later} == {"e1"}
    assert _stalls(run) == 0


def test_viewers_switch_to_the_redundant_encoder_on_503() -> None:
    origin = LiveOrigin(failing=("enc-a",))
    with edges(origin, 2) as servers:
        run = run_viewers(_plan(servers, 10, 3.0))
    fetched = segments_by_viewer(origin)
    assert all(v.stats.pathway_switches == 1 for v in run.viewers)
    assert all(v.stats.edge_switches == 0 for v in run.viewers)
    assert all(v.stats.errors["http_503"] >= 1 for v in run.viewers)
    for viewer in run.viewers:
        entries = [e for folder in fetched[viewer.stats.index].values() for e in folder]
        assert len(entries) >= 4
        assert {enc for _, enc, _ in entries} == {"enc-b"}
    assert _stalls(run) == 0


def test_viewers_whose_every_copy_fails_retry_without_a_busy_loop() -> None:
    origin = LiveOrigin(failing=("enc-a", "enc-b"))
    with edges(origin, 2) as servers:
        run = run_viewers(_plan(servers, 5, 3.0))
    assert all(v.playback.started_at is None for v in run.viewers)
    assert all(v.stats.errors["http_503"] >= 3 for v in run.viewers)
    # Moves go a -> b -> next edge at once, then retries back off up to 0.5 s.
    requests = sum(pool.counters.requests for pool in run.pools)
    assert requests < 5 * 3.0 * 20, requests


def test_edge_pool_reads_chunked_bodies_and_keeps_the_connection() -> None:
    async def fetch(url: str) -> list[tuple[int, int, bytes]]:
        pool = EdgePool(url)
        try:
            got = []
            for path in ("/chunked", MASTER, "/chunked", "/missing"):
                response = await pool.get(path, keep_body=path == "/chunked")
                got.append((response.status, response.size, response.body[-4:]))
            return got
        finally:
            pool.close()

    with edges(LiveOrigin(), 1) as servers:
        pool_results = asyncio.run(fetch(servers[0].url))
    size = len(b"#EXTM3U\n") + 70_000 + len(b"\nend")
    assert pool_results == [
        (200, size, b"\nend"),
        (200, len(master_text()), b""),
        (200, size, b"\nend"),
        (404, len(b"not found"), b""),
    ]
