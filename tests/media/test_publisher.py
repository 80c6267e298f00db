"""Publishing ffmpeg's HLS output through a SegmentStore: files first, then their playlist."""

from __future__ import annotations

import asyncio
import os
import posixpath
import statistics
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import imageio_ffmpeg
import m3u8
import pytest

from summitcast.domain.broadcast import Cue
from summitcast.domain.playout import Slate, SourceKind, StepReason
from summitcast.media.broadcast import SessionPlayout
from summitcast.media.feed_clock import FeedClock
from summitcast.media.ladder import (
    ENCODER_LIST_SIZE,
    AudioLanguage,
    LadderSpec,
    Rung,
    SubtitleTrack,
)
from summitcast.media.playlist import parse_media_playlist
from summitcast.media.publisher import SegmentPublisher, referenced_uris
from summitcast.media.segment_store import InMemorySegmentStore, LocalSegmentStore
from summitcast.media.subtitles import media_playlist
from summitcast.media.testclips import make_clip, write_webvtt
from tests.e2e.broadcast_server import ffmpeg_children

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()

LL_PLAYLIST = """#EXTM3U
#EXT-X-TARGETDURATION:2
#EXT-X-MAP:URI="init_360p.mp4"
#EXTINF:2.000000,
seg_00000.m4s
#EXT-X-PART:DURATION=0.5,URI="seg_00001.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.5,URI="seg_00001.1.m4s"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="seg_00001.2.m4s"
"""


class CheckingStore(InMemorySegmentStore):
    """An in-memory store that notes every media playlist put before a file it names."""

    def __init__(self) -> None:
        super().__init__()
        self.violations: list[str] = []
        self.playlists_put = 0

    def put(self, path: str, data: bytes) -> None:
        """Store data, first checking that a media playlist names only stored files."""
        if path.endswith("index.m3u8"):
            self.playlists_put += 1
            base = posixpath.dirname(path)
            for uri in referenced_uris(data.decode()):
                if not self.exists(posixpath.join(base, uri)):
                    self.violations.append(f"{path} names {uri} before the store has it")
        super().put(path, data)


@pytest.mark.unit
def test_referenced_uris_reads_init_segments_and_parts_but_not_preload_hints() -> None:
    assert referenced_uris(LL_PLAYLIST) == [
        "init_360p.mp4",
        "seg_00000.m4s",
        "seg_00001.0.m4s",
        "seg_00001.1.m4s",
    ]


def _encoder_playlist(segments: list[tuple[int, float, bool]], *, ended: bool = False) -> str:
    """ffmpeg's private playlist naming (sequence, duration, discontinuity) segments."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-TARGETDURATION:2"]
    lines += [f"#EXT-X-MEDIA-SEQUENCE:{segments[0][0]}", '#EXT-X-MAP:URI="init_360p.mp4"']
    for sequence, duration, seam in segments:
        lines += ["#EXT-X-DISCONTINUITY"] if seam else []
        lines += [f"#EXTINF:{duration:.6f},", f"seg_{sequence:05d}.m4s"]
    return "\n".join(lines + (["#EXT-X-ENDLIST"] if ended else [])) + "\n"


def _write_encoder_playlist(folder: Path, text: str) -> None:
    """Replace ffmpeg's playlist by renaming, as ffmpeg does."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".encoder.m3u8.tmp").write_text(text)
    (folder / ".encoder.m3u8.tmp").replace(folder / ".encoder.m3u8")


@pytest.mark.unit
def test_publisher_puts_files_before_their_playlist_and_waits_for_missing_ones(
    tmp_path: Path,
) -> None:
    rung = tmp_path / "360p"
    rung.mkdir()
    for name in ("init_360p.mp4", "seg_00000.m4s"):
        (rung / name).write_bytes(name.encode())
    _write_encoder_playlist(rung, _encoder_playlist([(0, 2.0, False), (1, 2.0, False)]))
    store = CheckingStore()
    publisher = SegmentPublisher(tmp_path, store, now=lambda: 1_800_000_010.0)
    publisher.sync()
    assert store.get("360p/index.m3u8") is None  # held back: it names a missing segment
    (rung / "seg_00001.m4s").write_bytes(b"segment")
    publisher.sync()
    playlist = m3u8.loads((store.get("360p/index.m3u8") or b"").decode())
    assert [s.uri for s in playlist.segments] == ["seg_00000.m4s", "seg_00001.m4s"]
    # No feed clock (nothing fed this encoder): dated as closed when first listed.
    assert [s.program_date_time.timestamp() for s in playlist.segments] == [1_800_000_008.0] * 2
    assert store.get("360p/seg_00001.m4s") == b"segment"
    assert store.get("360p/.encoder.m3u8") is None  # ffmpeg's own list stays private
    assert store.violations == []
    assert publisher.sync() == 0  # nothing changed, nothing copied again


@pytest.fixture
def fast_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder in memory (tmpfs) if the machine has one: 57,600 renames on a busy disk crawl."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(dir=shm) as folder:
        yield Path(folder)


@pytest.mark.unit
def test_eight_hour_session_keeps_every_live_playlist_small_and_numbered(
    fast_folder: Path,
) -> None:
    tmp_path = fast_folder
    renditions = ("360p", "audio_en")
    spec = LadderSpec(rungs=(Rung("360p", 640, 360, 800, 96),))
    clock = FeedClock(spec.fps)
    start = 1_800_000_000.0  # programme second s is fed at start + s: real pace
    publisher = SegmentPublisher(
        tmp_path, LocalSegmentStore(tmp_path), clock=clock, window_segments=spec.window_segments
    )
    total = 8 * 3600 // spec.segment_s  # 14,400 segments of 2 s
    seams = {5_000, 9_000}  # the encoder restarted twice (ffmpeg marks the seams)
    listed: list[tuple[int, int]] = []
    fed = 0  # frames fed so far
    for n in range(total):
        # ffmpeg lists segment n once the first frame of segment n + 1 has been fed.
        while fed <= (n + 1) * spec.gop_frames:
            pid = 1 + sum(fed >= seam * spec.gop_frames for seam in seams)
            clock.fed((fed + 1) / spec.fps, run=pid, wall=start + fed / spec.fps)
            fed += 1
        recent = range(max(0, n - ENCODER_LIST_SIZE + 1), n + 1)
        text = _encoder_playlist([(k, 2.0, k in seams) for k in recent])
        for name in renditions:
            _write_encoder_playlist(tmp_path / name, text)
        publisher.sync()
        if n % 97 == 0 or n == total - 1:
            window = m3u8.load(str(tmp_path / "360p" / "index.m3u8"))
            sequences = [window.media_sequence + i for i in range(len(window.segments))]
            assert [s.uri for s in window.segments] == [f"seg_{k:05d}.m4s" for k in sequences]
            assert sequences[-1] == n  # the newest segment, at once
            assert len(sequences) == min(n + 1, 90)  # three minutes
            listed.append((window.media_sequence, window.discontinuity_sequence or 0))
            newest = window.segments[-1].program_date_time
            assert newest is not None
            assert newest.timestamp() == start + n * 2.0  # its first frame's feed time
    assert listed == sorted(listed)  # sequence numbers only move on
    for name in renditions:
        live = (tmp_path / name / "index.m3u8").read_bytes()
        assert len(live) < 20_000, (name, len(live))
        window = m3u8.loads(live.decode())
        assert (window.media_sequence, window.discontinuity_sequence) == (total - 90, 2)
    subtitles = media_playlist(
        total * 2.0, 2, ended=False, window_segments=90, date_of=clock.segment_date
    )
    assert len(subtitles.encode()) < 20_000
    assert m3u8.loads(subtitles).media_sequence == total - 90
    publisher.finish()
    vod = m3u8.load(str(tmp_path / "360p" / "vod.m3u8"))
    assert (vod.playlist_type, vod.is_endlist, len(vod.segments)) == ("vod", True, total)
    assert [s.uri for s in vod.segments] == [f"seg_{k:05d}.m4s" for k in range(total)]
    assert [k for k, s in enumerate(vod.segments) if s.discontinuity] == sorted(seams)
    assert m3u8.load(str(tmp_path / "360p" / "index.m3u8")).is_endlist


@pytest.mark.unit
def test_publisher_restarted_mid_session_continues_from_its_journal(tmp_path: Path) -> None:
    rung = tmp_path / "360p"
    _write_encoder_playlist(rung, _encoder_playlist([(k, 2.0, False) for k in range(5)]))
    first = SegmentPublisher(tmp_path, LocalSegmentStore(tmp_path), window_segments=3)
    first.sync()
    # The app restarts: a new encoder appends after a seam, a new publisher takes over.
    _write_encoder_playlist(rung, _encoder_playlist([(k, 2.0, k == 5) for k in range(7)]))
    second = SegmentPublisher(tmp_path, LocalSegmentStore(tmp_path), window_segments=3)
    second.sync()
    window = m3u8.load(str(rung / "index.m3u8"))
    assert [s.uri for s in window.segments] == ["seg_00004.m4s", "seg_00005.m4s", "seg_00006.m4s"]
    assert (window.media_sequence, window.discontinuity_sequence) == (4, None)  # none slid out
    second.finish()
    vod = m3u8.load(str(rung / "vod.m3u8"))
    assert [s.uri for s in vod.segments] == [f"seg_{k:05d}.m4s" for k in range(7)]


@pytest.mark.unit
def test_local_store_of_the_output_folder_is_written_in_place(tmp_path: Path) -> None:
    spec = LadderSpec(rungs=(Rung("144p", 256, 144, 150, 48),), fps=10)
    local = SessionPlayout(
        FFMPEG, spec, LocalSegmentStore(tmp_path / "hls"), tmp_path / "w", on_cue_finished=_noop
    )
    memory = SessionPlayout(
        FFMPEG, spec, InMemorySegmentStore(), tmp_path / "w", on_cue_finished=_noop
    )
    assert (local.publisher.copies, local.output_dir) == (False, tmp_path / "hls")
    assert memory.publisher.copies
    assert memory.output_dir == tmp_path / "w" / "hls"


async def _noop(_cue: Cue) -> None:
    return None


@pytest.mark.e2e
def test_session_into_memory_store_publishes_every_file_before_its_playlist(
    tmp_path: Path,
) -> None:
    spec = LadderSpec(
        rungs=(Rung("144p", 256, 144, 150, 48),),
        fps=10,
        preset="ultrafast",
        languages=(AudioLanguage("en", "English", True), AudioLanguage("fr", "Français")),
        subtitles=(SubtitleTrack("en", "English"),),
    )
    clip = make_clip(FFMPEG, tmp_path / "clip.mp4", duration_s=4.0, width=256, height=144, fps=10)
    vtt = write_webvtt(tmp_path / "clip.vtt", [(0.5, 1.5, "Hello")])
    cues = [
        Cue(1, SourceKind.FILE, StepReason.ITEM, item_id=1, position=0, duration_s=4.0,
            path=str(clip), subtitle_paths=(("en", str(vtt)),)),
        Cue(2, SourceKind.SLATE, StepReason.HOLD, duration_s=3.0, slate=Slate("Hold")),
    ]  # fmt: skip
    store = CheckingStore()

    async def scenario() -> None:
        done = asyncio.Event()
        queue = list(cues)

        async def on_finished(_cue: Cue) -> None:
            if queue:
                playout.cue(queue.pop(0))
            else:
                done.set()

        playout = SessionPlayout(
            FFMPEG,
            spec,
            store,
            tmp_path / "work",
            on_cue_finished=on_finished,
            subtitle_languages=("en",),
        )
        await playout.start()
        playout.cue(queue.pop(0))
        await asyncio.wait_for(done.wait(), 40)
        await playout.stop()

    asyncio.run(scenario())
    assert store.violations == []
    assert store.playlists_put >= 8  # published as the session went, not only at its end
    stored = set(store.list())
    for rendition in ("144p", "audio_en", "audio_fr", "audio_low_en", "audio_low_fr", "subs_en"):
        playlist = store.get(f"{rendition}/index.m3u8")
        assert playlist is not None, rendition
        assert b"#EXT-X-ENDLIST" in playlist, rendition
    assert {"master.m3u8", "144p/init_144p.mp4", "144p/seg_00000.m4s"} <= stored
    master = store.get("master.m3u8")
    assert master is not None
    assert b"avc1." in master
    # What the store holds decodes on its own, copied out of the store into a fresh folder.
    copy = tmp_path / "copy"
    for path in stored:
        (copy / path).parent.mkdir(parents=True, exist_ok=True)
        (copy / path).write_bytes(store.get(path) or b"")
    result = subprocess.run(
        [FFMPEG, "-nostdin", "-v", "error", "-i", str(copy / "master.m3u8"),
         "-map", "0:v", "-map", "0:a", "-f", "null", "-"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (result.returncode, result.stderr) == (0, "")
    assert ffmpeg_children() == []


def _listings(path: Path, seen: dict[int, float]) -> None:
    """Note the newest segment of a live playlist and how far its end lies from its listing."""
    try:
        with path.open("rb") as handle:
            listed_at = os.fstat(handle.fileno()).st_mtime_ns / 1e9  # when this version was written
            text = handle.read().decode()
    except FileNotFoundError:
        return
    segments = parse_media_playlist(text).segments
    if segments and segments[-1].sequence not in seen:
        newest = segments[-1]
        assert newest.program_date_time is not None
        seen[newest.sequence] = listed_at - (newest.program_date_time + newest.duration_s)


@pytest.mark.e2e
def test_real_encode_lists_each_segment_when_its_dated_end_is_now(tmp_path: Path) -> None:
    spec = LadderSpec(rungs=(Rung("144p", 256, 144, 150, 48),), fps=30, preset="ultrafast")
    clip = make_clip(FFMPEG, tmp_path / "clip.mp4", duration_s=9.0, width=256, height=144, fps=30)
    cues = [
        Cue(1, SourceKind.FILE, StepReason.ITEM, item_id=1, position=0, duration_s=9.0,
            path=str(clip)),
        Cue(2, SourceKind.SLATE, StepReason.HOLD, duration_s=5.0, slate=Slate("Hold")),
    ]  # fmt: skip
    errors: dict[str, dict[int, float]] = {"144p": {}, "audio_und": {}}

    async def scenario() -> None:
        done = asyncio.Event()
        queue = list(cues)

        async def on_finished(_cue: Cue) -> None:
            if queue:
                playout.cue(queue.pop(0))
            else:
                done.set()

        store = LocalSegmentStore(tmp_path / "hls")
        playout = SessionPlayout(FFMPEG, spec, store, tmp_path / "w", on_cue_finished=on_finished)
        await playout.start()
        playout.cue(queue.pop(0))
        while not done.is_set():
            for name, seen in errors.items():
                _listings(tmp_path / "hls" / name / "index.m3u8", seen)
            await asyncio.sleep(0.02)  # the playlist is polled every 20 ms
        await playout.stop()

    asyncio.run(scenario())
    for name, seen in errors.items():
        # The encoder probes 1 s of feed before it encodes: segment 0 is listed ~0.9 s
        # late and segment 1 while that backlog drains (late, never early). From then
        # on a segment is listed ~0.15 s after its dated end: the encoder's own latency
        # (~4 frames at 30 fps: a TS packet stream is cut into frames when the next one
        # begins, the fps filter waits for the next frame, AAC a frame more) plus the
        # publisher's 20 ms poll. On this 2-core machine under load 10-18, one segment
        # in five came 0.2-0.29 s late (scheduling): hence the median, and a ceiling.
        ordered = [round(seen[k], 3) for k in sorted(seen)]
        assert len(ordered) >= 6, (name, ordered)
        assert min(ordered) > -0.2, (name, ordered)  # never in the future
        steady = ordered[2:]
        assert statistics.median(steady) <= 0.2, (name, ordered)
        assert max(steady) <= 0.4, (name, ordered)
    assert ffmpeg_children() == []
