"""Probe an uploaded file for the checks: streams with PyAV, loudness with ffmpeg's loudnorm.

Never raises for a bad file: whatever cannot be read becomes ``MediaFacts.unreadable``
or a missing stream, and the pure checks in ``summitcast.domain.media_checks`` turn
that into words for the speaker.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import subprocess
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from summitcast.domain.media_checks import AudioFacts, MediaFacts, VideoFacts

# Packets looked at to tell a variable frame rate from a steady one.
VFR_SAMPLE_PACKETS = 300
# Frame intervals may jitter by this share (timestamp rounding) and still count as steady.
VFR_TOLERANCE = 0.2
STILL_IMAGE_CODECS = frozenset({"mjpeg", "png", "bmp", "gif", "webp", "tiff"})
_LOUDNORM_JSON = re.compile(r"\{[^{}]*\"input_i\"[^{}]*\}", re.DOTALL)


@dataclass(frozen=True)
class Loudness:
    """What loudnorm's first pass measured (EBU R128), fed into its second pass."""

    input_i: float  # integrated loudness, LUFS
    input_tp: float  # true peak, dBTP
    input_lra: float  # loudness range, LU
    input_thresh: float  # gating threshold, LUFS
    target_offset: float

    def as_dict(self) -> dict[str, float]:
        """For the JSON column of the upload."""
        return asdict(self)


def probe_upload(path: Path) -> MediaFacts:
    """Read container, streams, rotation, frame-rate steadiness and reachable length."""
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        return MediaFacts(container="", duration_s=0.0, unreadable=_unreadable(path, exc))
    try:
        with container:
            return _facts(container)
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        return MediaFacts(container="", duration_s=0.0, unreadable=_unreadable(path, exc))


def _unreadable(path: Path, exc: BaseException) -> str:
    """Why a file did not open, in the tools' words (for organisers and the log, not speakers)."""
    # ffmpeg says "Invalid data found" for an MP4 cut before its index (the 'moov' box
    # written last): its box sizes tell that cut-off file from garbage.
    cut = _cut_off_box(path)
    return f"{cut}; {_short(exc)}" if cut else _short(exc)


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    # PyAV puts the path in its messages: the stored random name means nothing to anyone.
    return re.sub(r":\s*'[^']*'$", "", text)[:200]


def _cut_off_box(path: Path) -> str:
    """For an ISO media file (MP4, MOV) whose top-level box runs past its end, say so; else ""."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            if handle.read(8)[4:8] != b"ftyp":
                return ""
            offset = 0
            while offset + 8 <= size:
                handle.seek(offset)
                header = handle.read(16)
                length, name = int.from_bytes(header[:4], "big"), header[4:8]
                if length == 1 and len(header) == 16:
                    length = int.from_bytes(header[8:16], "big")  # a 64-bit size follows
                if length == 0:
                    return ""  # "to the end of the file": cannot be cut short by its own size
                if length < 8 or not name.isalnum():
                    return ""  # not a box (top-level names are ASCII): garbage, not a cut
                if offset + length > size:
                    return (
                        f"truncated: its '{name.decode()}' box should end at byte "
                        f"{offset + length}, the file ends at byte {size}"
                    )
                offset += length
    except OSError:
        return ""
    return ""


def _facts(container: Any) -> MediaFacts:
    video_stream = container.streams.video[0] if container.streams.video else None
    audio_stream = container.streams.audio[0] if container.streams.audio else None
    duration = container.duration / 1_000_000 if container.duration else 0.0
    audio = None
    if audio_stream is not None:
        audio = AudioFacts(
            codec=audio_stream.codec_context.name,
            channels=audio_stream.codec_context.channels,
            sample_rate=audio_stream.codec_context.sample_rate,
        )
    packets, reached = _demux(container, video_stream or audio_stream)
    video = None
    if video_stream is not None:
        rate = video_stream.average_rate or video_stream.guessed_rate or Fraction(0)
        video = VideoFacts(
            codec=video_stream.codec_context.name,
            width=video_stream.codec_context.width,
            height=video_stream.codec_context.height,
            fps=round(float(rate), 3),
            rotation=_rotation(container, video_stream),
            variable_frame_rate=_variable(packets),
            still_image=video_stream.codec_context.name in STILL_IMAGE_CODECS and len(packets) <= 1,
        )
    if duration <= 0 and reached:
        duration = reached
    return MediaFacts(
        container=container.format.name,
        duration_s=round(duration, 3),
        video=video,
        audio=audio,
        readable_s=round(reached, 3),
    )


def _demux(container: Any, stream: Any) -> tuple[list[float], float]:
    """Walk every packet of one stream (no decoding): first timestamps, and the end reached."""
    if stream is None:
        return [], 0.0
    times: list[float] = []
    reached = 0.0
    base = float(stream.time_base or 0)
    start = float(stream.start_time or 0) * base
    try:
        for packet in container.demux(stream):
            if packet.pts is None or packet.size == 0:
                continue
            at = float(packet.pts) * base - start
            if len(times) < VFR_SAMPLE_PACKETS:
                times.append(at)
            reached = max(reached, at + float(packet.duration or 0) * base)
    except (av.error.FFmpegError, OSError):
        pass  # a cut-off file ends the walk early; `reached` says how far it got
    return times, reached


def _variable(times: list[float]) -> bool:
    """True when frame intervals differ beyond jitter (B-frames reorder, so sort first)."""
    ordered = sorted(times)
    gaps = [b - a for a, b in itertools.pairwise(ordered) if b > a]
    if len(gaps) < 10:
        return False
    gaps.sort()
    typical = gaps[len(gaps) // 2]
    return any(abs(g - typical) > typical * VFR_TOLERANCE for g in gaps[1:-1])


def _rotation(container: Any, stream: Any) -> int:
    """Degrees clockwise to turn the picture upright, from the first frame's display matrix."""
    try:
        container.seek(0)
        for frame in container.decode(stream):
            # PyAV reports the display matrix angle counter-clockwise; players turn clockwise.
            return round(-float(frame.rotation or 0)) % 360
    except (av.error.FFmpegError, OSError, ValueError):
        return 0
    return 0


def loudness_argv(ffmpeg: str, source: Path, *, target_lufs: float) -> list[str]:
    """First loudnorm pass: measure the first audio stream; nothing is written."""
    return [
        ffmpeg,
        "-hide_banner",
        "-nostdin",
        "-nostats",
        "-i",
        str(source),
        "-map",
        "0:a:0",  # the first audio stream: the one normalisation keeps
        "-vn",  # never decode the picture: this pass only listens
        "-af",
        # Downmix first so the measure is of what the broadcast will carry (stereo).
        f"aformat=channel_layouts=stereo,loudnorm=I={target_lufs}:TP=-1:LRA=11:print_format=json",
        "-f",
        "null",  # discard the output
        "-",
    ]


def parse_loudnorm(stderr: str) -> Loudness | None:
    """Read loudnorm's JSON block from ffmpeg's stderr; None when absent."""
    found = _LOUDNORM_JSON.findall(stderr)
    if not found:
        return None
    data = json.loads(found[-1])

    def number(key: str) -> float:
        value = float(data[key])  # "-inf" parses to -inf: silence
        return value if math.isfinite(value) else -99.0

    return Loudness(
        input_i=number("input_i"),
        input_tp=number("input_tp"),
        input_lra=number("input_lra"),
        input_thresh=number("input_thresh"),
        target_offset=number("target_offset"),
    )


def measure_loudness(
    ffmpeg: str, source: Path, *, target_lufs: float, timeout_s: float
) -> Loudness | None:
    """Run the first loudnorm pass; None when the file has no decodable audio."""
    result = subprocess.run(
        loudness_argv(ffmpeg, source, target_lufs=target_lufs),
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout_s,
        check=False,
    )
    if result.returncode != 0:
        return None
    return parse_loudnorm(result.stderr)
