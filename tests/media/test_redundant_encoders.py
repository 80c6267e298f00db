"""Redundant encoders in media: the master lists each, a node serves its own, one clock."""

from __future__ import annotations

from pathlib import Path

import m3u8
import pytest
from fastapi.testclient import TestClient

from summitcast.app import create_app
from summitcast.config import Settings
from summitcast.media.feed_clock import FeedClock, SessionClock
from summitcast.media.ladder import (
    AudioLanguage,
    LadderSpec,
    Rung,
    SubtitleTrack,
    master_playlist,
)
from summitcast.media.playlist import format_date, parse_media_playlist
from summitcast.media.publisher import JOURNAL_NAME, SegmentPublisher
from summitcast.media.segment_store import LocalSegmentStore, SessionStores
from summitcast.media.session_output import SessionOutput
from summitcast.media.subtitles import Cue as SubtitleCue
from summitcast.storage.database import Database
from tests.conftest import TEST_SECRET_KEY

SPEC = LadderSpec(
    rungs=(Rung("360p", 640, 360, 800, 96), Rung("240p", 426, 240, 400, 64)),
    languages=(AudioLanguage("en", "English", True), AudioLanguage("fr", "Français")),
    subtitles=(SubtitleTrack("en", "English"),),
)
CODECS = {"360p": "avc1.4d401e", "240p": "avc1.4d4015"}


def _hls_js_key(playlist: m3u8.Playlist) -> str:
    """What hls.js 1.7 compares to find redundant variants (level-controller.ts)."""
    info = playlist.stream_info
    resolution = f"{info.resolution[0]}x{info.resolution[1]}" if info.resolution else None
    return f"{info.bandwidth}-{resolution}-{info.frame_rate}-{info.codecs}"


@pytest.mark.unit
def test_master_with_two_encoders_lists_every_variant_twice_with_identical_attributes() -> None:
    master = m3u8.loads(master_playlist(SPEC, CODECS, encoders=("a", "b")))

    variants = master.playlists
    assert [v.uri for v in variants] == [
        "enc-a/360p/index.m3u8",
        "enc-b/360p/index.m3u8",
        "enc-a/240p/index.m3u8",
        "enc-b/240p/index.m3u8",
        "enc-a/audio_low_en/index.m3u8",
        "enc-b/audio_low_en/index.m3u8",
    ]
    for first, second in zip(variants[::2], variants[1::2], strict=True):
        assert _hls_js_key(first) == _hls_js_key(second)
        assert first.uri != second.uri
    assert [v.stream_info.audio for v in variants] == [
        "aud-a", "aud-b", "aud-a", "aud-b", "aud_low-a", "aud_low-b"
    ]  # fmt: skip
    assert {v.stream_info.subtitles for v in variants[::2]} == {"subs-a"}
    assert {v.stream_info.subtitles for v in variants[1::2]} == {"subs-b"}
    # Three distinct variants: hls.js makes the second copy of each pathway "..".
    assert len({_hls_js_key(v) for v in variants}) == 3


@pytest.mark.unit
def test_master_with_two_encoders_lists_every_rendition_once_per_encoder() -> None:
    master = m3u8.loads(master_playlist(SPEC, CODECS, encoders=("a", "b")))

    media = [(m.type, m.group_id, m.language, m.uri) for m in master.media]
    assert media == [
        ("AUDIO", "aud-a", "en", "enc-a/audio_en/index.m3u8"),
        ("AUDIO", "aud-a", "fr", "enc-a/audio_fr/index.m3u8"),
        ("AUDIO", "aud_low-a", "en", "enc-a/audio_low_en/index.m3u8"),
        ("AUDIO", "aud_low-a", "fr", "enc-a/audio_low_fr/index.m3u8"),
        ("SUBTITLES", "subs-a", "en", "enc-a/subs_en/index.m3u8"),
        ("AUDIO", "aud-b", "en", "enc-b/audio_en/index.m3u8"),
        ("AUDIO", "aud-b", "fr", "enc-b/audio_fr/index.m3u8"),
        ("AUDIO", "aud_low-b", "en", "enc-b/audio_low_en/index.m3u8"),
        ("AUDIO", "aud_low-b", "fr", "enc-b/audio_low_fr/index.m3u8"),
        ("SUBTITLES", "subs-b", "en", "enc-b/subs_en/index.m3u8"),
    ]
    a_lines = [m.dumps().replace("-a", "-X") for m in master.media if m.group_id.endswith("-a")]
    b_lines = [m.dumps().replace("-b", "-X") for m in master.media if m.group_id.endswith("-b")]
    assert a_lines == b_lines  # identical attributes but for group and folder


@pytest.mark.unit
def test_master_without_encoders_is_the_single_encoder_master() -> None:
    assert master_playlist(SPEC, CODECS, encoders=()) == master_playlist(SPEC, CODECS)
    assert "enc-" not in master_playlist(SPEC, CODECS, ended=True)


@pytest.mark.unit
def test_hls_file_serves_own_encoder_folder_and_refuses_the_others(tmp_path: Path) -> None:
    stores = SessionStores("local", tmp_path, encoder_name="a")
    folder = stores.folder("summit", 7)
    (folder / "360p").mkdir(parents=True)
    (folder / "360p" / "index.m3u8").write_text("#EXTM3U\n")
    (folder / "360p" / "seg_00001.m4s").write_bytes(b"segment")
    (folder / "master.m3u8").write_text("#EXTM3U\n#master\n")

    assert stores.hls_file("summit", 7, "enc-a/360p/index.m3u8") == b"#EXTM3U\n"
    assert stores.hls_file("summit", 7, "enc-a/360p/seg_00001.m4s") == folder / "360p/seg_00001.m4s"
    assert stores.hls_file("summit", 7, "enc-b/360p/index.m3u8") is None
    assert stores.hls_file("summit", 7, "enc-b/360p/seg_00001.m4s") is None
    assert stores.hls_file("summit", 7, "enc-a") is None
    assert stores.hls_file("summit", 7, "master.m3u8") == b"#EXTM3U\n#master\n"


@pytest.mark.unit
def test_hls_file_of_a_single_encoder_has_no_encoder_folders(tmp_path: Path) -> None:
    stores = SessionStores("local", tmp_path)
    folder = stores.folder("summit", 7)
    (folder / "360p").mkdir(parents=True)
    (folder / "360p" / "index.m3u8").write_text("#EXTM3U\n")

    assert stores.hls_file("summit", 7, "360p/index.m3u8") == b"#EXTM3U\n"
    assert stores.hls_file("summit", 7, "enc-a/360p/index.m3u8") is None


@pytest.mark.unit
def test_session_clock_of_a_late_joiner_starts_on_the_next_boundary() -> None:
    clock = SessionClock.joining(epoch=1000.0, segment_s=2, now=1009.3, lead_s=1.0)

    assert clock.first_sequence == 6  # 1010.3 is past 1010: the boundary after is 1012
    assert clock.start_wall == 1012.0
    assert clock.date_of(9) == 1018.0
    assert clock.wall_at(3.5) == 1015.5
    assert SessionClock.joining(1000.0, 2, now=1001.0, lead_s=1.0).first_sequence == 1
    assert SessionClock.joining(1000.0, 2, now=990.0, lead_s=1.0).first_sequence == 0


def _encoder_playlist(count: int) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-TARGETDURATION:2", "#EXT-X-MEDIA-SEQUENCE:0"]
    lines.append('#EXT-X-MAP:URI="init_360p.mp4"')
    for index in range(count):
        lines += ["#EXTINF:2.000000,", f"seg_{index:05d}.m4s"]
    return "\n".join(lines) + "\n"


def _publisher_of(folder: Path, first_sequence: int) -> SegmentPublisher:
    clock = SessionClock(epoch=1_800_000_000.0, segment_s=2, first_sequence=first_sequence)
    store = LocalSegmentStore(folder)
    return SegmentPublisher(folder, store, segment_s=2, session_clock=clock)


@pytest.mark.unit
def test_two_publishers_joining_at_different_times_agree_on_numbers_and_dates(
    tmp_path: Path,
) -> None:
    nodes = []
    for name, first, count in (("a", 5, 6), ("b", 7, 4)):
        folder = tmp_path / name
        (folder / "360p").mkdir(parents=True)
        (folder / "360p" / ".encoder.m3u8").write_text(_encoder_playlist(count))
        publisher = _publisher_of(folder, first)
        publisher.sync()
        publisher.finish()
        live = parse_media_playlist((folder / "360p" / "index.m3u8").read_text())
        vod = parse_media_playlist((folder / "360p" / "vod.m3u8").read_text())
        assert [s.sequence for s in live.segments] == [s.sequence for s in vod.segments]
        nodes.append({s.sequence: s.program_date_time for s in live.segments})
    a, b = nodes

    assert sorted(a) == list(range(5, 11))
    assert sorted(b) == list(range(7, 11))
    assert all(a[sequence] == b[sequence] for sequence in b)
    assert b[7] == 1_800_000_000.0 + 7 * 2
    text = (tmp_path / "b" / "360p" / "index.m3u8").read_text()
    assert "#EXT-X-MEDIA-SEQUENCE:7" in text
    assert f"#EXT-X-PROGRAM-DATE-TIME:{format_date(1_800_000_014.0)}" in text
    assert "#EXT-X-MEDIA-SEQUENCE:7" in (tmp_path / "b" / "360p" / JOURNAL_NAME).read_text()


@pytest.mark.integration
def test_hls_route_of_encoder_a_serves_its_folder_and_refuses_encoder_b(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    database.upgrade()
    settings = Settings(
        environment="test",
        secret_key=TEST_SECRET_KEY,
        data_dir=tmp_path / "data",
        database_url=database.url,
        auto_migrate=False,
        broadcast_workers=False,
        encoder_name="a",
        encoder_names=["a", "b"],
    )
    rung = settings.effective_segment_dir / "summit" / "7" / "360p"
    rung.mkdir(parents=True)
    (rung / "index.m3u8").write_text("#EXTM3U\n#EXT-X-TARGETDURATION:2\n")
    (rung / "seg_00000.m4s").write_bytes(b"segment bytes")

    with TestClient(create_app(settings, database=database)) as client:
        playlist = client.get("/hls/summit/7/enc-a/360p/index.m3u8")
        segment = client.get("/hls/summit/7/enc-a/360p/seg_00000.m4s")
        other = client.get("/hls/summit/7/enc-b/360p/index.m3u8")

    assert (playlist.status_code, playlist.text) == (200, "#EXTM3U\n#EXT-X-TARGETDURATION:2\n")
    assert (segment.status_code, segment.content) == (200, b"segment bytes")
    assert other.status_code == 404
    database.dispose()


@pytest.mark.unit
def test_subtitle_playlists_are_numbered_and_dated_by_the_session_clock(tmp_path: Path) -> None:
    clock = SessionClock(epoch=1_800_000_000.0, segment_s=2, first_sequence=5)
    output = SessionOutput(
        SPEC, LocalSegmentStore(tmp_path), tmp_path, FeedClock(SPEC.fps), ("en",),
        session_clock=clock,
    )  # fmt: skip
    output.cues["en"] = [SubtitleCue(0.5, 1.5, "Hello")]
    output._mpegts_base = 0  # what the first media segment would say

    output.write_subtitles(6.0, ended=False)

    live = parse_media_playlist((tmp_path / "subs_en" / "index.m3u8").read_text())
    assert [s.sequence for s in live.segments] == [5, 6, 7]
    assert [s.program_date_time for s in live.segments] == [clock.date_of(n) for n in (5, 6, 7)]
