"""Speed of summitcast's ladder through its playout and supervisor vs the same ffmpeg commands bare.

The programme is a generated 1080p30 clip with two language tracks. "summitcast"
is ``SessionPlayout``, the engine on air in production (probe, feeder subprocess,
Python copying the feed into the ``Supervisor``-run ladder encoder and stamping the
feed clock, the publisher writing the live playlists every 20 ms), fed one item
through ``play_steps``; "bare" is the very same two argvs joined by an OS pipe
with no Python in between. Both run free (no -re), alternately, several
times; the ratio of the median speeds should be ≥ 0.95.

    .venv/bin/python benchmarks/ladder_speed.py [--seconds 30] [--repeat 2] [--preset veryfast]
        [--tune zerolatency|none]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import imageio_ffmpeg

from summitcast.domain.broadcast import Cue
from summitcast.domain.playout import PlayoutItem, plan_playout
from summitcast.domain.programme import ItemKind
from summitcast.media.broadcast import SessionPlayout, play_steps
from summitcast.media.ladder import AudioLanguage, LadderInput, LadderSpec, ladder_argv
from summitcast.media.playout import FeedSource, feed_argv
from summitcast.media.segment_store import LocalSegmentStore
from summitcast.media.testclips import Tone, make_clip

SPEC = LadderSpec(
    languages=(AudioLanguage("en", "English", True), AudioLanguage("fr", "Français")),
)
PROBE_OPTIONS = ("-f", "mpegts", "-probesize", "1000000", "-analyzeduration", "1000000")
CACHE = Path(tempfile.gettempdir()) / "summitcast-bench"


def source_clip(ffmpeg: str, seconds: int) -> Path:
    """A 1080p30 clip with an English and a French tone (cached between runs)."""
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"source_1080p30_{seconds}s.mp4"
    if not path.exists():
        make_clip(
            ffmpeg,
            path,
            duration_s=seconds,
            width=1920,
            height=1080,
            fps=30,
            tones=(Tone(440, "eng"), Tone(880, "fra")),
        )
    return path


def run_bare(ffmpeg: str, clip: Path, seconds: int, spec: LadderSpec, out: Path) -> float:
    """Feeder | ladder through an OS pipe, the same argvs playout uses; return wall seconds."""
    feed = feed_argv(
        ffmpeg,
        FeedSource(str(clip), audio_tracks=2),
        spec,
        offset_s=0.0,
        duration_s=float(seconds),
        realtime=False,
    )
    ladder = ladder_argv(ffmpeg, [LadderInput("pipe:0", PROBE_OPTIONS)], spec, out)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    feeder = subprocess.Popen(feed, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    encoder = subprocess.Popen(
        ladder, stdin=feeder.stdout, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    assert feeder.stdout is not None
    feeder.stdout.close()  # the encoder holds the read end now
    if encoder.wait() != 0 or feeder.wait() != 0:
        raise SystemExit("bare run failed")
    took = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # CPU per programme second barely depends on other load: < 2.0 fits 2 cores.
    print(f"    bare: {cpu / seconds:.2f} CPU-seconds per programme second (feeder + ladder)")
    return took


def run_summitcast(ffmpeg: str, clip: Path, seconds: int, spec: LadderSpec, out: Path) -> float:
    """The same programme through SessionPlayout and its Supervisor; return wall seconds."""
    start = datetime.now(UTC)
    item = PlayoutItem(1, ItemKind.SPEECH, "Bench", float(seconds), media_path=str(clip))
    # The plan ends on a hold slate; keep it to one frame's worth of programme.
    steps = plan_playout([item], now=start, start=start, session_title="Bench", hold_s=0.001)
    playout = SessionPlayout(
        ffmpeg, spec, LocalSegmentStore(out), out / "work", on_cue_finished=_nothing, realtime=False
    )
    began = time.perf_counter()
    asyncio.run(play_steps(playout, steps[:1]))
    took = time.perf_counter() - began
    health = playout.encoder.health
    if playout.fallbacks or health.restarts or health.last_exit_code != 0 or playout.alarm:
        raise SystemExit(f"summitcast run failed: {health.last_error or playout.alarm}")
    return took


async def _nothing(_cue: Cue) -> None:
    return None


def main() -> None:
    """Alternate bare and summitcast runs and print the median speeds and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=30, help="length of the test programme")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each, alternating")
    parser.add_argument("--preset", default="veryfast", help="x264 preset of the ladder")
    parser.add_argument(
        "--tune", default=LadderSpec.tune, help="x264 tune of the ladder ('none': no -tune)"
    )
    args = parser.parse_args()
    tune = None if args.tune == "none" else args.tune
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    spec = LadderSpec(rungs=SPEC.rungs, languages=SPEC.languages, preset=args.preset, tune=tune)
    clip = source_clip(ffmpeg, args.seconds)
    bare: list[float] = []
    ours: list[float] = []
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    for run in range(args.repeat):
        # Alternate the order too, so a load spike does not always hit the same side.
        order = ("bare", "summitcast") if run % 2 == 0 else ("summitcast", "bare")
        for which in order:
            with tempfile.TemporaryDirectory() as out:
                if which == "bare":
                    bare.append(
                        args.seconds / run_bare(ffmpeg, clip, args.seconds, spec, Path(out))
                    )
                else:
                    ours.append(
                        args.seconds / run_summitcast(ffmpeg, clip, args.seconds, spec, Path(out))
                    )
            print(f"  run {run + 1} {which:10s} {(bare if which == 'bare' else ours)[-1]:.2f}×")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    rungs = "/".join(r.name for r in spec.rungs)
    print(
        f"programme: {args.seconds} s of 1080p30 → {rungs} + audio-only, "
        f"{len(spec.languages)} languages, {args.preset}, tune {tune}"
    )
    print(f"bare feeder|ladder: median {statistics.median(bare):.2f}× real time {bare}")
    print(f"summitcast playout: median {statistics.median(ours):.2f}× real time {ours}")
    print(f"ratio summitcast/bare speed: {statistics.median(ours) / statistics.median(bare):.3f}")


if __name__ == "__main__":
    main()
