"""Speed of normalising a 1080p speech through summitcast's job code vs the same argv run bare.

Renders a 1080p30 test speech (testsrc2 + tone), then normalises it twice with the same
ffmpeg command: once through ``summitcast.media.normalise.run`` (progress parsing, as a
job does) and once with plain subprocess. Prints both speeds (× real time) and the ratio
(target: ratio ≥ 0.95, speed ≥ 1.0).

    .venv/bin/python benchmarks/normalise_speed.py [--seconds 600] [--preset veryfast]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import imageio_ffmpeg

from summitcast.media import normalise
from summitcast.media.upload_probe import measure_loudness


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=600)
    parser.add_argument("--preset", default="veryfast")
    args = parser.parse_args()
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        source = Path(tmp) / "speech.mp4"
        subprocess.run(
            [ffmpeg, "-v", "error", "-y",
             "-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=30:d={args.seconds}",
             "-f", "lavfi", "-i", f"sine=f=220:d={args.seconds}",
             "-c:v", "libx264", "-preset", "ultrafast", "-crf", "28", "-c:a", "aac",
             str(source)],
            check=True,
        )  # fmt: skip
        fmt = normalise.ProgrammeFormat(preset=args.preset)
        began = time.perf_counter()
        measured = measure_loudness(ffmpeg, source, target_lufs=-23.0, timeout_s=3600)
        pass1_s = time.perf_counter() - began
        argv = normalise.normalise_argv(ffmpeg, source, Path(tmp) / "a.mp4", fmt, measured=measured)
        began = time.perf_counter()
        normalise.run(argv, duration_s=args.seconds)
        ours_s = time.perf_counter() - began
        bare = [a if a != str(Path(tmp) / "a.mp4") else str(Path(tmp) / "b.mp4") for a in argv]
        began = time.perf_counter()
        subprocess.run(bare, check=True, capture_output=True)
        bare_s = time.perf_counter() - began
    total = pass1_s + ours_s
    print(f"{args.seconds} s of 1080p30, preset {args.preset}")
    print(f"loudness pass 1: {pass1_s:.1f} s")
    print(f"summitcast normalise: {ours_s:.1f} s ({args.seconds / ours_s:.2f}x real time)")
    print(f"bare ffmpeg, same argv: {bare_s:.1f} s ({args.seconds / bare_s:.2f}x real time)")
    print(f"ratio: {bare_s / ours_s:.2f} (target >= 0.95)")
    print(f"speed incl. pass 1: {args.seconds / total:.2f}x (target >= 1.0)")


if __name__ == "__main__":
    main()
