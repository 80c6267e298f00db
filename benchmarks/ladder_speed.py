"""Speed of summitcast's default ladder run through the Supervisor vs the same argv run bare.

Prints both speeds (× real time) and their ratio; the ratio should be ~1.0: the
supervisor only reads progress lines and must not slow the encoder down.

    .venv/bin/python benchmarks/ladder_speed.py [--seconds 30] [--preset veryfast]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import tempfile
import time
from pathlib import Path

import imageio_ffmpeg

from summitcast.media.ladder import LadderInput, LadderSpec, ladder_argv
from summitcast.media.supervisor import Supervisor


def _argv(ffmpeg: str, seconds: int, preset: str, out_dir: Path) -> list[str]:
    """The default ladder fed by a 1080p30 test picture and a tone."""
    spec = LadderSpec(preset=preset, languages_by_input=True)
    video = LadderInput(f"testsrc2=size=1920x1080:rate=30:duration={seconds}", ("-f", "lavfi"))
    audio = LadderInput(f"sine=frequency=440:duration={seconds}", ("-f", "lavfi"))
    return ladder_argv(ffmpeg, [video, audio], spec, out_dir)


def run_bare(argv: list[str]) -> float:
    """Run the argv with subprocess; return wall seconds."""
    began = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - began


async def run_supervised(argv: list[str]) -> tuple[float, float | None]:
    """Run the argv under the Supervisor; return wall seconds and its last reported speed."""
    supervisor = Supervisor(argv, name="bench", restart_on_success=False)
    began = time.perf_counter()
    await supervisor.start()
    await supervisor.finished.wait()
    took = time.perf_counter() - began
    await supervisor.stop()
    if supervisor.health.last_exit_code != 0:
        raise SystemExit(f"supervised run failed: {supervisor.health.last_error}")
    return took, supervisor.health.speed


def main() -> None:
    """Run both, bare first, and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=30, help="length of the test programme")
    parser.add_argument("--preset", default="veryfast", help="x264 preset of the ladder")
    args = parser.parse_args()
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    with tempfile.TemporaryDirectory() as bare_dir, tempfile.TemporaryDirectory() as sup_dir:
        bare_s = run_bare(_argv(ffmpeg, args.seconds, args.preset, Path(bare_dir)))
        sup_s, reported = asyncio.run(
            run_supervised(_argv(ffmpeg, args.seconds, args.preset, Path(sup_dir)))
        )
    bare_speed, sup_speed = args.seconds / bare_s, args.seconds / sup_s
    print(f"programme: {args.seconds} s of 1080p30 → 1080/720/480/360 + audio-only, {args.preset}")
    print(f"bare ffmpeg:  {bare_s:6.1f} s wall = {bare_speed:.2f}× real time")
    print(
        f"supervised:   {sup_s:6.1f} s wall = {sup_speed:.2f}× real time (ffmpeg said {reported}×)"
    )
    print(f"ratio supervised/bare speed: {sup_speed / bare_speed:.3f}")


if __name__ == "__main__":
    main()
