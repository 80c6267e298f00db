"""SessionPlayout with real ffmpeg: bad items become slates, and a bad disk raises an alarm."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import imageio_ffmpeg
import m3u8
import pytest

from summitcast.domain.broadcast import Cue
from summitcast.domain.playout import Slate, SourceKind, StepReason
from summitcast.media.broadcast import SessionPlayout, disk_problem
from summitcast.media.ladder import LadderSpec, Rung
from summitcast.media.segment_store import LocalSegmentStore
from summitcast.media.testclips import make_clip
from tests.e2e.broadcast_server import ffmpeg_children

pytestmark = pytest.mark.e2e

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
SPEC = LadderSpec(rungs=(Rung("144p", 256, 144, 150, 48),), fps=10, preset="ultrafast")


def _file_cue(generation: int, item_id: int, path: Path, duration_s: float = 2.0) -> Cue:
    return Cue(
        generation,
        SourceKind.FILE,
        StepReason.ITEM,
        item_id=item_id,
        position=item_id,
        duration_s=duration_s,
        path=str(path),
    )


async def _play_in_turn(playout: SessionPlayout, cues: list[Cue], timeout_s: float) -> list[Cue]:
    """Cue each in turn as the last one ends by itself; end with an endless slate."""
    finished: list[Cue] = []
    done = asyncio.Event()
    queue = list(cues)

    async def on_finished(cue: Cue) -> None:
        finished.append(cue)
        if queue:
            playout.cue(queue.pop(0))
        else:
            done.set()

    playout.on_cue_finished = on_finished
    await playout.start()
    playout.cue(queue.pop(0))
    await asyncio.wait_for(done.wait(), timeout_s)
    await playout.stop()
    return finished


def test_bad_items_are_replaced_by_slates_and_the_session_plays_on(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    garbage = media / "garbage.mp4"
    garbage.write_bytes(b"\x00not a video" * 5000)
    good = make_clip(FFMPEG, media / "good.mp4", width=320, height=180, fps=10)
    # Cut in the middle of its media data: the header is fine, the pictures stop early.
    truncated = make_clip(FFMPEG, media / "cut.mp4", duration_s=2.0, width=320, height=180)
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    silent = make_clip(FFMPEG, media / "silent.ts", width=200, height=200, fps=25, tones=())
    cues = [
        _file_cue(1, 1, good),
        _file_cue(2, 2, garbage),
        _file_cue(3, 3, truncated),
        _file_cue(4, 4, silent),
        _file_cue(5, 5, media / "missing.mp4"),
        _file_cue(6, 6, good),
    ]
    store = LocalSegmentStore(tmp_path / "hls")
    playout = SessionPlayout(
        FFMPEG, SPEC, store, tmp_path / "work", on_cue_finished=lambda c: asyncio.sleep(0)
    )
    began = time.monotonic()
    finished = asyncio.run(_play_in_turn(playout, cues, timeout_s=40))
    assert [c.item_id for c in finished] == [1, 2, 3, 4, 5, 6]  # nothing stopped the session
    assert playout.fallbacks == [2, 5]  # unreadable and missing: flagged, slate instead
    assert playout.health.encoder.restarts == 0
    assert playout.alarm is None
    assert abs(playout.programme_s - 12.0) < 0.15  # six 2 s slots, none cut short
    playlist_path = tmp_path / "hls" / "144p" / "index.m3u8"
    playlist = m3u8.load(str(playlist_path))
    assert playlist.is_endlist
    assert sum(s.duration for s in playlist.segments) == pytest.approx(12.0, abs=0.2)
    result = subprocess.run(
        [FFMPEG, "-nostdin", "-v", "error", "-i", str(playlist_path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert time.monotonic() - began < 45
    assert ffmpeg_children() == []


def test_unwritable_segment_folder_raises_alarm_without_starting_encoder(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the segment folder should be")
    store = LocalSegmentStore(tmp_path / "hls")
    store.folder = blocker / "hls"  # as if the folder had become unreachable

    async def scenario() -> tuple[str | None, int | None, int, str | None, bool]:
        playout = SessionPlayout(
            FFMPEG, SPEC, store, tmp_path / "work", on_cue_finished=lambda c: asyncio.sleep(0)
        )
        playout.cue(Cue(1, SourceKind.SLATE, StepReason.HOLD, slate=Slate("Hold")))
        await playout.start()
        await asyncio.sleep(1.5)
        alarm = playout.health.alarm
        pid, restarts = playout.encoder.health.pid, playout.encoder.health.restarts
        # The operator fixes the folder: playout starts by itself at the next check.
        blocker.unlink()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not store.exists("144p/index.m3u8"):
            await asyncio.sleep(0.2)
        after = playout.health.alarm
        playing = playout.encoder.health.running
        await playout.stop()
        return alarm, pid, restarts, after, playing

    alarm, pid, restarts, after, playing = asyncio.run(scenario())
    assert alarm is not None
    assert alarm.startswith(f"Cannot write segments to {blocker / 'hls'}")
    assert (pid, restarts) == (None, 0)  # no encoder, so nothing to crash and restart
    assert (after, playing) == (None, True)
    assert ffmpeg_children() == []


def test_disk_problem_reports_low_space(tmp_path: Path) -> None:
    assert disk_problem(tmp_path, min_free_bytes=0) is None
    problem = disk_problem(tmp_path, min_free_bytes=2**62)
    assert problem is not None
    assert problem.startswith("Only ")
    assert problem.endswith(f"MiB left on the disk holding {tmp_path}.")


@contextlib.contextmanager
def _tiny_disk(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of size at folder (needs root; skips elsewhere)."""
    folder.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_disk_full_mid_session_raises_alarm_and_recovers(tmp_path: Path) -> None:
    with _tiny_disk(tmp_path / "disk", "96k") as disk:
        store = LocalSegmentStore(disk / "hls")

        async def scenario() -> tuple[str | None, int, str | None, int]:
            playout = SessionPlayout(
                FFMPEG,
                SPEC,
                store,
                tmp_path / "work",
                on_cue_finished=lambda c: asyncio.sleep(0),
                min_free_bytes=0,
            )
            playout.cue(Cue(1, SourceKind.SLATE, StepReason.HOLD, slate=Slate("Hold")))
            await playout.start()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and playout.health.alarm is None:
                await asyncio.sleep(0.2)
            alarm = playout.health.alarm
            restarts = playout.encoder.health.restarts
            # Space comes back (an operator cleans up): the alarm clears, segments flow again.
            subprocess.run(["mount", "-o", "remount,size=20m", str(disk)], check=True)
            segments = len(store.list("144p/seg_"))
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and (
                playout.health.alarm is not None or len(store.list("144p/seg_")) <= segments + 1
            ):
                await asyncio.sleep(0.2)
            after = playout.health.alarm
            grown = len(store.list("144p/seg_")) - segments
            await playout.stop()
            return alarm, restarts, after, grown

        alarm, restarts, after, grown = asyncio.run(scenario())
    assert alarm == f"The disk holding {disk / 'hls'} is full."
    assert restarts <= 5  # backoff, not a crash loop
    assert after is None
    assert grown >= 2
    assert ffmpeg_children() == []
