"""Publishing ffmpeg's HLS output through a SegmentStore: files first, then their playlist."""

from __future__ import annotations

import asyncio
import posixpath
import subprocess
from pathlib import Path

import imageio_ffmpeg
import pytest

from summitcast.domain.broadcast import Cue
from summitcast.domain.playout import Slate, SourceKind, StepReason
from summitcast.media.broadcast import SessionPlayout
from summitcast.media.ladder import AudioLanguage, LadderSpec, Rung, SubtitleTrack
from summitcast.media.publisher import SegmentPublisher, referenced_uris
from summitcast.media.segment_store import InMemorySegmentStore, LocalSegmentStore
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


@pytest.mark.unit
def test_publisher_puts_files_before_their_playlist_and_waits_for_missing_ones(
    tmp_path: Path,
) -> None:
    rung = tmp_path / "360p"
    rung.mkdir()
    for name in ("init_360p.mp4", "seg_00000.m4s", "seg_00001.0.m4s"):
        (rung / name).write_bytes(name.encode())
    (rung / "index.m3u8").write_text(LL_PLAYLIST)  # names seg_00001.1.m4s, not written yet
    store = CheckingStore()
    publisher = SegmentPublisher(tmp_path, store)
    publisher.sync()
    assert store.get("360p/index.m3u8") is None  # held back: it names a missing part
    (rung / "seg_00001.1.m4s").write_bytes(b"part")
    publisher.sync()
    assert store.get("360p/index.m3u8") == LL_PLAYLIST.encode()
    assert store.get("360p/seg_00001.1.m4s") == b"part"
    assert "360p/seg_00001.2.m4s" not in store.list()  # a preload hint is not a file yet
    assert store.violations == []
    assert publisher.sync() == 0  # nothing changed, nothing copied again


@pytest.mark.unit
def test_publisher_removes_files_that_left_the_window_and_the_folder(tmp_path: Path) -> None:
    rung = tmp_path / "360p"
    rung.mkdir()
    for name in ("seg_00000.ts", "seg_00001.ts"):
        (rung / name).write_bytes(b"x")
    (rung / "index.m3u8").write_text(
        "#EXTM3U\n#EXTINF:2,\nseg_00000.ts\n#EXTINF:2,\nseg_00001.ts\n"
    )
    store = InMemorySegmentStore()
    publisher = SegmentPublisher(tmp_path, store)
    publisher.sync()
    # ffmpeg's window moves on and it deletes the oldest segment.
    (rung / "seg_00002.ts").write_bytes(b"y")
    (rung / "seg_00000.ts").unlink()
    (rung / "index.m3u8").write_text(
        "#EXTM3U\n#EXTINF:2,\nseg_00001.ts\n#EXTINF:2,\nseg_00002.ts\n"
    )
    publisher.sync()
    assert store.list("360p/") == ["360p/index.m3u8", "360p/seg_00001.ts", "360p/seg_00002.ts"]


@pytest.mark.unit
def test_local_store_of_the_output_folder_needs_no_publisher(tmp_path: Path) -> None:
    spec = LadderSpec(rungs=(Rung("144p", 256, 144, 150, 48),), fps=10)
    local = SessionPlayout(
        FFMPEG, spec, LocalSegmentStore(tmp_path / "hls"), tmp_path / "w", on_cue_finished=_noop
    )
    memory = SessionPlayout(
        FFMPEG, spec, InMemorySegmentStore(), tmp_path / "w", on_cue_finished=_noop
    )
    assert (local.publisher, local.output_dir) == (None, tmp_path / "hls")
    assert memory.publisher is not None
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
