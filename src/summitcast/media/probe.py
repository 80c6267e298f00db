"""Read what a media file contains with PyAV, before summitcast trusts it."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from summitcast.errors import ValidationError


@dataclass(frozen=True)
class VideoInfo:
    """The first video stream of a file."""

    width: int
    height: int
    fps: float
    codec: str


@dataclass(frozen=True)
class AudioInfo:
    """One audio stream of a file."""

    codec: str
    channels: int
    sample_rate: int
    language: str | None


@dataclass(frozen=True)
class MediaInfo:
    """What probe() found in a file."""

    duration_s: float
    video: VideoInfo | None
    audio: tuple[AudioInfo, ...]


def probe(path: Path) -> MediaInfo:
    """Probe a media file; raise ValidationError if it is not readable media."""
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise ValidationError(f"{path.name} is not a readable media file: {exc}") from exc
    with container:
        video: VideoInfo | None = None
        if container.streams.video:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or Fraction(0)
            video = VideoInfo(
                width=stream.codec_context.width,
                height=stream.codec_context.height,
                fps=round(float(rate), 3),
                codec=stream.codec_context.name,
            )
        audio = tuple(
            AudioInfo(
                codec=stream.codec_context.name,
                channels=stream.codec_context.channels,
                sample_rate=stream.codec_context.sample_rate,
                language=stream.language,
            )
            for stream in container.streams.audio
        )
        if video is None and not audio:
            raise ValidationError(f"{path.name} has neither video nor audio")
        # container.duration is in AV_TIME_BASE (microseconds); absent for raw streams.
        duration = container.duration / 1_000_000 if container.duration else 0.0
    return MediaInfo(duration_s=round(duration, 3), video=video, audio=audio)
