"""Speed of normalising a 1080p speech through summitcast's job code vs the same argv run bare.

Renders a 1080p30 test speech (testsrc2 + tone), then normalises it with the same ffmpeg
command: through ``summitcast.media.normalise.run`` (progress parsing, cancellation, as
the job does) and with plain subprocess, in alternating order (bare first in odd rounds)
so neither always meets a warm or a busy machine. Prints both speeds (× real time, the
median of the rounds), their ratio (target ≥ 0.95), the whole job's speed (loudness
pass 1 + normalise + poster; target ≥ 1.0) and the CPU seconds ffmpeg used per programme
second, which the other jobs of a shared machine barely change.

    .venv/bin/python benchmarks/normalise_speed.py [--seconds 600] [--preset veryfast] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import imageio_ffmpeg

from summitcast.media import normalise
from summitcast.media.upload_probe import measure_loudness


def _children_cpu_s() -> float:
    """User + system CPU seconds of every finished child process so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=600)
    parser.add_argument("--preset", default="veryfast")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        folder = Path(tmp)
        source = folder / "speech.mp4"
        began = time.perf_counter()
        subprocess.run(
            [ffmpeg, "-v", "error", "-y",
             "-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=30:d={args.seconds}",
             "-f", "lavfi", "-i", f"sine=f=220:d={args.seconds}",
             "-c:v", "libx264", "-preset", "ultrafast", "-crf", "28", "-c:a", "aac",
             str(source)],
            check=True,
        )  # fmt: skip
        print(f"rendered the {args.seconds} s source in {time.perf_counter() - began:.1f} s")
        fmt = normalise.ProgrammeFormat(preset=args.preset)
        began = time.perf_counter()
        measured = measure_loudness(
            ffmpeg, source, target_lufs=fmt.loudness_lufs, timeout_s=max(120.0, args.seconds * 2)
        )
        pass1_s = time.perf_counter() - began
        output = folder / "normalised.mp4"
        argv = normalise.normalise_argv(ffmpeg, source, output, fmt, measured=measured)
        ours: list[float] = []
        bare: list[float] = []
        cpu: list[float] = []
        for round_ in range(args.rounds):
            order = ("bare", "ours") if round_ % 2 == 0 else ("ours", "bare")
            for which in order:
                output.unlink(missing_ok=True)
                cpu_before = _children_cpu_s()
                began = time.perf_counter()
                if which == "ours":
                    normalise.run(argv, duration_s=args.seconds)
                else:
                    # The same argv, its -progress lines read by nobody but the pipe.
                    subprocess.run(argv, check=True, capture_output=True)
                elapsed = time.perf_counter() - began
                (ours if which == "ours" else bare).append(elapsed)
                cpu.append(_children_cpu_s() - cpu_before)
                print(f"round {round_ + 1} {which}: {elapsed:.1f} s")
        began = time.perf_counter()
        normalise.make_poster(ffmpeg, output, folder / "poster.jpg", duration_s=args.seconds)
        poster_s = time.perf_counter() - began
    ours_s, bare_s = statistics.median(ours), statistics.median(bare)
    job_s = pass1_s + ours_s + poster_s
    print(f"{args.seconds} s of 1080p30, preset {args.preset}, median of {args.rounds} rounds")
    print(f"load average before {load_before:.1f}, after {os.getloadavg()[0]:.1f}")
    print(f"summitcast normalise: {ours_s:.1f} s ({args.seconds / ours_s:.2f}x real time)")
    print(f"bare ffmpeg, same argv: {bare_s:.1f} s ({args.seconds / bare_s:.2f}x real time)")
    print(f"ratio: {bare_s / ours_s:.2f} (target >= 0.95)")
    print(
        f"whole job (loudness pass 1 {pass1_s:.1f} s + normalise + poster {poster_s:.1f} s): "
        f"{args.seconds / job_s:.2f}x real time (target >= 1.0)"
    )
    print(f"ffmpeg CPU per programme second: {statistics.median(cpu) / args.seconds:.2f} s")


if __name__ == "__main__":
    main()
