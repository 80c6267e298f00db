"""Synthetic media for tests and demos, made by the real ffmpeg from its lavfi sources."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from summitcast.errors import SummitcastError

DEJAVU_SANS = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


@dataclass(frozen=True)
class Tone:
    """One audio track of a clip: a sine at frequency_hz, tagged with a language."""

    frequency_hz: int
    language: str = "und"


def clip_argv(
    ffmpeg: str,
    path: Path,
    *,
    duration_s: float = 2.0,
    width: int = 320,
    height: int = 180,
    fps: int = 15,
    tones: Sequence[Tone] = (Tone(440),),
    text_file: Path | None = None,
) -> list[str]:
    """Build the argv that renders a test clip: testsrc2 picture, one sine per tone."""
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
    # testsrc2 has a moving pattern and a frame counter: decoders cannot cheat.
    argv += ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}:d={duration_s}"]
    for tone in tones:
        argv += ["-f", "lavfi", "-i", f"sine=frequency={tone.frequency_hz}:d={duration_s}"]
    video = "0:v"
    if text_file is not None:
        # Burnt-in text tells clips apart when a person looks at the output. It is
        # read from a file with expansion off, so no text needs filtergraph escaping.
        font = f"fontfile={DEJAVU_SANS}:" if DEJAVU_SANS.exists() else ""
        size = max(12, height // 8)
        argv += [
            "-vf",
            f"drawtext={font}textfile={text_file}:expansion=none:fontsize={size}:"
            "fontcolor=white:box=1:boxcolor=black@0.6:x=(w-tw)/2:y=h-th-10",
        ]
    argv += ["-map", video]
    for i in range(len(tones)):
        argv += ["-map", f"{i + 1}:a"]
    argv += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    argv += ["-g", str(fps)]  # a keyframe a second, so cutting anywhere is cheap
    if tones:
        argv += ["-c:a", "aac", "-b:a", "64k", "-ar", "48000"]
    for i, tone in enumerate(tones):
        argv += [f"-metadata:s:a:{i}", f"language={tone.language}"]  # ISO 639 tag per track
    argv += ["-t", str(duration_s)]
    if path.suffix == ".mp4":
        argv += ["-movflags", "+faststart"]  # moov first, like uploads from editors
    argv.append(str(path))
    return argv


def make_clip(
    ffmpeg: str,
    path: Path,
    *,
    duration_s: float = 2.0,
    width: int = 320,
    height: int = 180,
    fps: int = 15,
    tones: Sequence[Tone] = (Tone(440),),
    text: str | None = None,
) -> Path:
    """Render a test clip to path with the real ffmpeg and return path."""
    text_file = None
    if text is not None:
        text_file = path.with_name(f".{path.name}.txt")
        text_file.write_text(text, encoding="utf-8")
    argv = clip_argv(
        ffmpeg,
        path,
        duration_s=duration_s,
        width=width,
        height=height,
        fps=fps,
        tones=tones,
        text_file=text_file,
    )
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    finally:
        if text_file is not None:
            text_file.unlink(missing_ok=True)
    if result.returncode != 0:
        raise SummitcastError(f"ffmpeg could not make {path.name}: {result.stderr.strip()}")
    return path


def write_webvtt(path: Path, cues: Sequence[tuple[float, float, str]]) -> Path:
    """Write a WebVTT file from (start_s, end_s, text) cues and return path."""
    lines = ["WEBVTT", ""]
    for start, end, text in cues:
        lines += [f"{format_vtt_time(start)} --> {format_vtt_time(end)}", text, ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def format_vtt_time(seconds: float) -> str:
    """Format seconds as a WebVTT timestamp hh:mm:ss.ttt."""
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"
