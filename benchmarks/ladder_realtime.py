"""Does the default ladder keep up in real time on this machine? Five minutes of 1080p30 playout.

The run of show is ten 30 s items of a generated 1080p30 clip with two language
tracks, played by ``SessionPlayout`` (the engine on air in production, its items
cued in turn by ``play_steps``) in real time (feeders read with -re, as on air),
into the default ladder: 1080p/720p/480p/360p + audio-only, x264 veryfast,
2 s segments, English and French renditions. Every second it samples the
encoder's output time against the wall clock. Keeping up means the lag (wall
time − programme time written) stays bounded instead of growing, the speed over
every 10 s window stays ≥ ~1.0×, and every segment of the programme is listed.
Reference in the same run: the wall clock itself (speed 1.0×).

    .venv/bin/python benchmarks/ladder_realtime.py [--items 10] [--item-seconds 30]
        [--preset veryfast] [--tune zerolatency|none]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import imageio_ffmpeg
import m3u8

from summitcast.domain.broadcast import Cue
from summitcast.domain.playout import PlayoutItem, PlayoutStep, plan_playout
from summitcast.domain.programme import ItemKind
from summitcast.media.broadcast import SessionPlayout, play_steps
from summitcast.media.ladder import AudioLanguage, LadderSpec
from summitcast.media.segment_store import LocalSegmentStore
from summitcast.media.testclips import Tone, make_clip

CACHE = Path(tempfile.gettempdir()) / "summitcast-bench"
ITEM_S = 30


def source_clip(ffmpeg: str, seconds: int = ITEM_S) -> Path:
    """The 1080p30 clip with an English and a French tone (shared with ladder_speed.py)."""
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"source_1080p30_{seconds}s.mp4"
    if not path.exists():
        tones = (Tone(440, "eng"), Tone(880, "fra"))
        make_clip(ffmpeg, path, duration_s=seconds, width=1920, height=1080, fps=30, tones=tones)
    return path


async def _nothing(_cue: Cue) -> None:
    return None


async def play(
    playout: SessionPlayout, steps: list[PlayoutStep]
) -> list[tuple[float, float, float]]:
    """Play the steps; sample (wall s, programme s written, load) once a second."""
    samples: list[tuple[float, float, float]] = []
    task = asyncio.create_task(play_steps(playout, steps))
    began = time.monotonic()
    while not task.done():
        await asyncio.sleep(1)
        health = playout.encoder.health
        if health.running:
            samples.append((time.monotonic() - began, health.out_time_s, os.getloadavg()[0]))
    await task
    return samples


def main() -> None:
    """Play the run of show in real time and print lag, window speeds and segments."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=10, help="30 s items (10 = 5 minutes)")
    parser.add_argument(
        "--item-seconds", type=int, default=ITEM_S, help="length of each item (a short check)"
    )
    parser.add_argument("--preset", default="veryfast", help="x264 preset of the ladder")
    parser.add_argument(
        "--tune", default=LadderSpec.tune, help="x264 tune of the ladder ('none': no -tune)"
    )
    args = parser.parse_args()
    tune = None if args.tune == "none" else args.tune
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    clip = source_clip(ffmpeg, args.item_seconds)
    spec = LadderSpec(
        preset=args.preset,
        tune=tune,
        languages=(AudioLanguage("en", "English", True), AudioLanguage("fr", "Français")),
    )
    start = datetime.now(UTC)
    items = [
        PlayoutItem(i, ItemKind.SPEECH, f"Item {i}", float(args.item_seconds), media_path=str(clip))
        for i in range(1, args.items + 1)
    ]
    steps = plan_playout(items, now=start, start=start, session_title="Bench", hold_s=0.001)[:-1]
    programme_s = args.item_seconds * args.items
    with tempfile.TemporaryDirectory() as out:
        worker = SessionPlayout(
            ffmpeg, spec, LocalSegmentStore(Path(out)), Path(out) / "work", on_cue_finished=_nothing
        )
        print(f"load average before: {os.getloadavg()[0]:.2f}")
        began = time.monotonic()
        samples = asyncio.run(play(worker, steps))
        wall = time.monotonic() - began
        playlists = {r.name: m3u8.load(str(Path(out) / r.name / "vod.m3u8")) for r in spec.rungs}
        for lang in spec.languages:
            for folder in (f"audio_{lang.code}", f"audio_low_{lang.code}"):
                playlists[folder] = m3u8.load(str(Path(out) / folder / "vod.m3u8"))
    health = worker.encoder.health
    lags = [w - t for w, t, _ in samples if t > 0]
    windows = [
        (b[1] - a[1]) / (b[0] - a[0])
        for a, b in zip(samples, samples[10:], strict=False)
        if a[1] > 0
    ]
    loads = [load for _, _, load in samples]
    expected = programme_s // spec.segment_s
    print(
        f"programme: {programme_s} s of 1080p30 in {args.items} items → "
        f"{'/'.join(r.name for r in spec.rungs)} + audio-only, 2 languages, "
        f"{args.preset}, tune {tune}"
    )
    print(f"wall time {wall:.1f} s for {programme_s} s of programme")
    print(
        f"lag (wall − programme written): first {lags[0]:.1f} s, "
        f"last {lags[-1]:.1f} s, max {max(lags):.1f} s, growth {lags[-1] - lags[0]:+.1f} s"
    )
    if windows:
        print(
            f"speed over 10 s windows: min {min(windows):.3f}×, "
            f"median {sorted(windows)[len(windows) // 2]:.3f}×"
        )
    else:
        print("speed over 10 s windows: none (the programme is shorter than 11 s)")
    print(f"ffmpeg: dropped frames {health.drop_frames}, duplicated {health.dup_frames}")
    print(f"encoder restarts {health.restarts}, slates instead of items {len(worker.fallbacks)}")
    for name, playlist in playlists.items():
        durations = [s.duration for s in playlist.segments]
        print(
            f"  {name:14s} {len(durations)} segments (expected {expected}), "
            f"{sum(durations):.1f} s, longest {max(durations):.2f} s"
        )
    print(f"load average during: min {min(loads):.2f}, max {max(loads):.2f}")


if __name__ == "__main__":
    main()
