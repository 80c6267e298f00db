"""The viewer load tool's parts: playlists, the deal of rungs, the buffer, the origin's logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from summitcast.errors import ValidationError
from summitcast.loadtest.hls_http import EdgeError, _parse_head
from summitcast.loadtest.hls_player import Playback
from summitcast.loadtest.hls_playlist import Pathway, parse_master, parse_media, resolve
from summitcast.loadtest.viewer_report import latency_figures, origin_requests
from summitcast.loadtest.viewers import assign_rungs, parse_mix, plan_edges
from tests.loadtest.test_viewers import MASTER, LiveOrigin, master_text

pytestmark = pytest.mark.unit


def test_master_groups_redundant_variants_into_pathways() -> None:
    rungs = parse_master(master_text(), MASTER)
    assert [(r.name, len(r.pathways)) for r in rungs] == [("720p", 2), ("360p", 2), ("audio", 2)]
    assert rungs[0].pathways == [
        Pathway("/hls/demo/1/enc-a/720p/index.m3u8", "/hls/demo/1/enc-a/audio_en/index.m3u8"),
        Pathway("/hls/demo/1/enc-b/720p/index.m3u8", "/hls/demo/1/enc-b/audio_en/index.m3u8"),
    ]
    # Audio-only plays its own playlist, nothing beside it.
    assert rungs[2].pathways[1] == Pathway("/hls/demo/1/enc-b/audio_only_en/index.m3u8", None)


def test_master_without_variants_is_refused() -> None:
    with pytest.raises(ValidationError, match="no variant"):
        parse_master("#EXTM3U\n#EXT-X-VERSION:7\n", MASTER)


def test_media_playlist_resolves_segments_and_init() -> None:
    text = LiveOrigin().media_playlist()
    playlist = parse_media(text, "/hls/demo/1/enc-a/720p/index.m3u8")
    first = playlist.segments[0]
    assert (playlist.target_duration_s, playlist.ended, len(playlist.segments)) == (1, False, 6)
    assert (first.uri, first.init_uri) == (
        f"/hls/demo/1/enc-a/720p/seg_{first.sequence}.m4s",
        "/hls/demo/1/enc-a/720p/init.mp4",
    )
    assert playlist.last_sequence == first.sequence + 5


def test_rungs_are_dealt_by_the_mix_exactly() -> None:
    mix = parse_mix("720p=40, 360p=50,audio=10")
    dealt = assign_rungs(["720p", "360p", "audio"], mix, 50, seed=3)
    assert (dealt.count("720p"), dealt.count("360p"), dealt.count("audio")) == (20, 25, 5)
    assert dealt == assign_rungs(["720p", "360p", "audio"], mix, 50, seed=3)
    assert dealt != assign_rungs(["720p", "360p", "audio"], mix, 50, seed=4)


def test_mix_naming_an_unknown_rung_is_refused() -> None:
    with pytest.raises(ValidationError, match="--mix names 1080p; the master has 720p, audio"):
        assign_rungs(["720p", "audio"], parse_mix("1080p=1,720p=1"), 10, seed=0)
    with pytest.raises(ValidationError, match="NAME=WEIGHT"):
        parse_mix("720p:4")


def test_edges_and_master_from_the_options() -> None:
    urls = "http://127.0.0.31:8080, http://127.0.0.32:8080/"
    assert plan_edges(urls, "/hls/s/1/master.m3u8") == (
        ("http://127.0.0.31:8080", "http://127.0.0.32:8080"),
        "/hls/s/1/master.m3u8",
    )
    assert plan_edges("http://e1/hls/s/2/master.m3u8", "") == (
        ("http://e1:80",),
        "/hls/s/2/master.m3u8",
    )
    assert plan_edges("", "http://127.0.0.31:8080/hls/s/3/master.m3u8") == (
        ("http://127.0.0.31:8080",),
        "/hls/s/3/master.m3u8",
    )
    with pytest.raises(ValidationError, match="not an http:// URL"):
        plan_edges("127.0.0.31:8080", "/hls/s/1/master.m3u8")
    with pytest.raises(ValidationError, match="names no edge"):
        plan_edges("", "/hls/s/1/master.m3u8")
    with pytest.raises(ValidationError, match="give the master playlist"):
        plan_edges("http://127.0.0.31:8080", "")


def test_playback_counts_an_under_run_and_its_length() -> None:
    playback = Playback(tracks=2)
    playback.add(0, 2.0, now=10.0)
    playback.add(1, 2.0, now=10.5)  # both tracks have data: playback starts
    playback.add(0, 2.0, now=11.0)
    # Audio holds only 2 s: it runs dry at 12.5, and the next audio segment comes at 13.5.
    playback.add(1, 2.0, now=13.5)
    playback.add(0, 2.0, now=14.0)
    playback.add(1, 2.0, now=14.0)
    playback.finish(now=15.0)
    assert (playback.started_at, playback.stalls, playback.stalled_s) == (10.5, 1, 1.0)


def test_playback_that_reaches_the_end_list_does_not_stall() -> None:
    playback = Playback(tracks=1)
    playback.add(0, 2.0, now=0.0)
    playback.end_track(0, now=1.0)
    playback.finish(now=10.0)
    assert (playback.stalls, playback.stalled_s, playback.ended) == (0, 0.0, True)


def test_origin_requests_per_segment_per_rendition(tmp_path: Path) -> None:
    prefix = "/hls/demo/1"
    lines = [
        # Before the run: not counted.
        f"99.000 200 GET {prefix}/enc-a/720p/seg_1.m4s MISS 3000",
        # Two edges each fetched segments 2 and 3 of 720p once, and 2 twice from a third edge.
        f"100.100 200 GET {prefix}/enc-a/720p/seg_2.m4s - 3000",
        f"100.200 200 GET {prefix}/enc-a/720p/seg_2.m4s - 3000",
        f"100.300 200 GET {prefix}/enc-a/720p/seg_2.m4s - 3000",
        f"100.400 200 GET {prefix}/enc-a/720p/seg_3.m4s - 3000",
        f"100.500 200 GET {prefix}/enc-a/720p/seg_3.m4s - 3000",
        f"100.600 200 GET {prefix}/enc-a/720p/init.mp4 - 100",
        f"101.000 200 GET {prefix}/enc-a/720p/index.m3u8 - 400",
        f"102.000 304 GET {prefix}/enc-a/720p/index.m3u8 - 0",
        "garbage line",
        f"109.000 200 GET {prefix}/enc-a/audio_en/seg_2.m4s?x=1 - 400",
        # After the run: not counted.
        f"111.000 200 GET {prefix}/enc-a/audio_en/seg_3.m4s - 400",
    ]
    log_a = tmp_path / "origin-a.log"
    log_a.write_text("\n".join(lines) + "\n")
    log_b = tmp_path / "origin-b.log"
    log_b.write_text(f"105.000 200 GET {prefix}/enc-b/720p/seg_2.m4s - 3000\n")
    figures = origin_requests([log_a, log_b], 100.0, 110.0, f"{prefix}/master.m3u8")
    assert figures == {
        "enc-a/720p": {
            "segment_requests": 5,
            "distinct_segments": 2,
            "requests_per_segment": 2.5,
            "playlist_requests": 2,
            "playlist_requests_per_s": 0.2,
        },
        "enc-a/audio_en": {
            "segment_requests": 1,
            "distinct_segments": 1,
            "requests_per_segment": 1.0,
            "playlist_requests": 0,
            "playlist_requests_per_s": 0.0,
        },
        "enc-b/720p": {
            "segment_requests": 1,
            "distinct_segments": 1,
            "requests_per_segment": 1.0,
            "playlist_requests": 0,
            "playlist_requests_per_s": 0.0,
        },
    }


def test_latency_figures_are_nearest_rank() -> None:
    figures = latency_figures(float(n) for n in range(1, 101))
    assert figures == {"p50": 50.0, "p90": 90.0, "p99": 99.0, "max": 100.0}
    assert latency_figures([]) == {"p50": None, "p90": None, "p99": None, "max": None}


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("seg_7.m4s", "/hls/s/1/720p/seg_7.m4s"),
        ("../audio_en/index.m3u8", "/hls/s/1/audio_en/index.m3u8"),
        ("./init.mp4", "/hls/s/1/720p/init.mp4"),
        ("/other/seg_1.ts", "/other/seg_1.ts"),
    ],
)
def test_uris_resolve_against_their_playlist(uri: str, expected: str) -> None:
    assert resolve("/hls/s/1/720p/index.m3u8", uri) == expected


def test_uris_on_another_host_are_refused() -> None:
    with pytest.raises(ValidationError, match="same edge"):
        resolve("/hls/s/1/master.m3u8", "http://elsewhere/seg.ts")


def test_summitcasts_own_master_with_two_encoders_is_read_as_hls_js_reads_it() -> None:
    from summitcast.media.ladder import LadderSpec, master_playlist

    base = "/hls/demo-summit/7/master.m3u8"
    rungs = parse_master(master_playlist(LadderSpec(), encoders=("a", "b")), base)
    assert [r.name for r in rungs] == ["1080p", "720p", "480p", "360p", "audio"]
    assert rungs[1].pathways == [
        Pathway(
            f"/hls/demo-summit/7/enc-{e}/720p/index.m3u8",
            f"/hls/demo-summit/7/enc-{e}/audio_und/index.m3u8",
        )
        for e in ("a", "b")
    ]
    assert [p.audio_uri for p in rungs[4].pathways] == [None, None]


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 16384\r\nConnection: keep-alive\r\n\r\n",
            (200, 16384, False, False),
        ),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", (200, None, True, False)),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n", (200, 5, False, True)),
        (
            b"HTTP/1.1 503 Busy\r\nContent-Length: 3\r\nConnection: close\r\n\r\n",
            (503, 3, False, True),
        ),
        (b"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n", (304, 0, False, False)),
        (b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n", (200, None, False, True)),
    ],
)
def test_response_heads_are_read(head: bytes, expected: tuple[int, int | None, bool, bool]) -> None:
    assert _parse_head(head) == expected


def test_a_head_that_is_not_http_is_a_protocol_error() -> None:
    with pytest.raises(EdgeError, match="protocol: bad status line"):
        _parse_head(b"SSH-2.0-OpenSSH\r\n\r\n")
