"""Conform a speaker's file to the programme: size, frame rate, loudness, faststart MP4, poster.

The argv builders are pure and golden-tested (tests/media/test_normalise.py); ``run``
executes one without a shell, reading ``-progress`` blocks through the supervisor's
parser so a job can report how far it got and stop when asked.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from summitcast.media.supervisor import EncoderHealth, apply_progress
from summitcast.media.upload_probe import Loudness


@dataclass(frozen=True)
class ProgrammeFormat:
    """What every pre-recorded file becomes before playout."""

    width: int = 1920
    height: int = 1080
    fps: int = 30
    loudness_lufs: float = -23.0  # EBU R128
    true_peak_db: float = -1.0
    loudness_range_lu: float = 11.0
    preset: str = "veryfast"
    crf: int = 20
    audio_kbps: int = 160
    sample_rate: int = 48_000


class NormaliseError(Exception):
    """ffmpeg failed; the message carries the end of its stderr."""


def video_filter(fmt: ProgrammeFormat) -> str:
    """Scale into the frame keeping the picture's shape, pad with black, fix the rate."""
    return ",".join(
        [
            # Fit inside the programme frame; a portrait phone video gets pillar-boxed.
            f"scale={fmt.width}:{fmt.height}:force_original_aspect_ratio=decrease",
            f"pad={fmt.width}:{fmt.height}:(ow-iw)/2:(oh-ih)/2:color=black",
            "setsar=1",  # square pixels, whatever the source claimed
            f"fps={fmt.fps}",  # duplicates or drops frames: variable rates become constant
            "format=yuv420p",  # what every player and the ladder decode
        ]
    )


def audio_filter(fmt: ProgrammeFormat, measured: Loudness | None) -> str:
    """Downmix to stereo, then EBU R128 loudnorm (linear with a first-pass measure)."""
    loudnorm = f"loudnorm=I={fmt.loudness_lufs}:TP={fmt.true_peak_db}:LRA={fmt.loudness_range_lu}"
    if measured is not None:
        # Two-pass: with the first pass's figures loudnorm applies one gain (linear),
        # keeping the speaker's dynamics instead of riding the level.
        loudnorm += (
            f":measured_I={measured.input_i}:measured_TP={measured.input_tp}"
            f":measured_LRA={measured.input_lra}:measured_thresh={measured.input_thresh}"
            f":offset={measured.target_offset}:linear=true"
        )
    return ",".join(
        [
            # 7.1 and 5.1 are folded down by libswresample's standard matrix (LFE dropped).
            "aformat=channel_layouts=stereo",
            loudnorm,
            # loudnorm works at 192 kHz internally; bring it back to broadcast rate.
            f"aresample={fmt.sample_rate}",
        ]
    )


def normalise_argv(
    ffmpeg: str,
    source: Path,
    output: Path,
    fmt: ProgrammeFormat,
    *,
    measured: Loudness | None,
    has_audio: bool = True,
) -> list[str]:
    """The ffmpeg command that turns an upload into the programme's MP4."""
    argv = [
        ffmpeg,
        "-hide_banner",
        "-nostdin",  # never wait for keyboard input in a worker
        "-y",  # the output name is ours and fresh; overwrite a half-written retry
        "-loglevel",
        "error",
        "-nostats",
        "-progress",
        "pipe:1",  # key=value progress blocks on stdout for the job's progress bar
        # Autorotation stays on (ffmpeg's default): a phone's display matrix is applied
        # before scaling, and the output carries no rotation of its own.
        "-i",
        str(source),
    ]
    if not has_audio:
        # A silent bed keeps every programme file the same shape (one stereo track).
        argv += ["-f", "lavfi", "-i", f"anullsrc=r={fmt.sample_rate}:cl=stereo"]
    argv += ["-map", "0:v:0"]  # the first picture; cover art and extra angles are dropped
    argv += ["-map", "0:a:0" if has_audio else "1:a:0"]
    argv += ["-vf", video_filter(fmt)]
    argv += ["-af", audio_filter(fmt, measured) if has_audio else "anull"]
    argv += [
        "-c:v",
        "libx264",
        "-preset",
        fmt.preset,
        "-crf",
        str(fmt.crf),  # constant quality: a talking head needs few bits, slides fewer
        "-profile:v",
        "high",
        "-g",
        str(fmt.fps * 2),  # a keyframe every 2 s: cheap cuts and seeks in playout
        "-c:a",
        "aac",
        "-b:a",
        f"{fmt.audio_kbps}k",
        "-ar",
        str(fmt.sample_rate),
        "-ac",
        "2",
        "-map_metadata",
        "-1",  # no GPS, device or editor tags from the speaker's file go on air
        "-movflags",
        "+faststart",  # index first: the preview plays before it has fully loaded
    ]
    if not has_audio:
        argv += ["-shortest"]  # the silent bed is endless; stop with the picture
    argv.append(str(output))
    return argv


def audio_argv(
    ffmpeg: str, source: Path, output: Path, fmt: ProgrammeFormat, measured: Loudness | None
) -> list[str]:
    """The ffmpeg command that turns interpretation audio into a loudness-normalised M4A."""
    return [
        ffmpeg,
        "-hide_banner",
        "-nostdin",
        "-y",
        "-loglevel",
        "error",
        "-nostats",
        "-progress",
        "pipe:1",
        "-i",
        str(source),
        "-map",
        "0:a:0",  # the first sound track only; a video's picture is not needed
        "-af",
        audio_filter(fmt, measured),
        "-c:a",
        "aac",
        "-b:a",
        f"{fmt.audio_kbps}k",
        "-ar",
        str(fmt.sample_rate),
        "-ac",
        "2",
        "-map_metadata",
        "-1",  # no device or location tags
        "-movflags",
        "+faststart",
        str(output),
    ]


def poster_argv(ffmpeg: str, source: Path, output: Path, *, at_s: float) -> list[str]:
    """The ffmpeg command that grabs one frame as a JPEG poster."""
    return [
        ffmpeg,
        "-hide_banner",
        "-nostdin",
        "-y",
        "-loglevel",
        "error",
        "-ss",
        f"{at_s:.3f}",  # before -i: a fast seek to the keyframe before, then decode to it
        "-i",
        str(source),
        "-frames:v",
        "1",
        "-vf",
        "scale=640:-2",  # small enough for a page, even height for the encoder
        "-q:v",
        "4",  # JPEG quality (2 best … 31 worst)
        str(output),
    ]


def poster_time(duration_s: float) -> float:
    """Where to grab the poster: a few seconds in (past a fade-in), never past the end."""
    return max(0.0, min(3.0, duration_s / 3))


def run(
    argv: list[str],
    *,
    duration_s: float,
    on_progress: Callable[[float], None] | None = None,
    cancel: threading.Event | None = None,
    timeout_s: float = 6 * 3600,
) -> EncoderHealth:
    """Run one ffmpeg command to the end; raise NormaliseError with its stderr if it fails."""
    health = EncoderHealth()
    stderr_tail: deque[str] = deque(maxlen=20)
    # The context manager closes both pipes, even when ffmpeg is killed half-way.
    with subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    ) as process:
        health.running = True
        health.pid = process.pid
        stdout, stderr = process.stdout, process.stderr
        assert stdout is not None
        assert stderr is not None
        # stderr is drained in a thread: a full pipe would otherwise stall ffmpeg.
        reader = threading.Thread(
            target=lambda: stderr_tail.extend(line.rstrip() for line in stderr), daemon=True
        )
        reader.start()
        deadline = time.monotonic() + timeout_s
        block: dict[str, str] = {}
        try:
            for line in stdout:
                key, _, value = line.strip().partition("=")
                block[key] = value
                if key != "progress":
                    continue
                apply_progress(health, block)
                block = {}
                if on_progress is not None and duration_s > 0:
                    on_progress(min(1.0, health.out_time_s / duration_s))
                if (cancel is not None and cancel.is_set()) or time.monotonic() > deadline:
                    process.kill()
                    break
            code = process.wait(timeout=60)
        except BaseException:
            process.kill()
            process.wait()
            raise
        finally:
            health.running = False
            reader.join(timeout=5)
    health.last_exit_code = code
    if code != 0:
        tail = " | ".join(stderr_tail)
        raise NormaliseError(f"ffmpeg exit code {code}" + (f": {tail}" if tail else ""))
    return health


def make_poster(ffmpeg: str, source: Path, output: Path, *, duration_s: float) -> Path:
    """Grab the poster frame of a normalised file."""
    result = subprocess.run(
        poster_argv(ffmpeg, source, output, at_s=poster_time(duration_s)),
        capture_output=True,
        text=True,
        errors="replace",
        timeout=120,
        check=False,
    )
    if result.returncode != 0 or not output.exists():
        raise NormaliseError(f"poster failed: {result.stderr.strip()[-500:]}")
    return output
