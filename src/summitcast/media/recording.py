"""Recordings: after a session, one downloadable MP4 per language, remuxed from its HLS output.

The on-demand HLS is the session's folder itself: once the session ends, each
rendition's ``vod.m3u8`` lists all of it (the live ``index.m3u8`` only its last
minutes) and the master names those. The MP4s copy the top video rung and one
language's full-quality audio rendition without re-encoding, so a session of
hours takes seconds of disk I/O, not an encode.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pycountry

from summitcast.media.ladder import VOD_PLAYLIST_NAME, LadderSpec, audio_dir

logger = logging.getLogger(__name__)

RECORDING_DIR = "recording"
REMUX_TIMEOUT_S = 30 * 60.0  # many hours of programme; copying never takes this long
_NAME_RE = re.compile(r"^(?P<code>[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*)-(?P<stamp>\d+)\.mp4$")


@dataclass(frozen=True)
class Recording:
    """One finished MP4 of a session."""

    language: str
    path: str  # relative to the session's HLS folder (also its URL under /hls/…)
    size_bytes: int


def recording_name(code: str, stamp: int) -> str:
    """The store path of one language's MP4; the stamp keeps URLs immutable across re-runs."""
    return f"{RECORDING_DIR}/{code}-{stamp}.mp4"


def iso639_2(code: str) -> str:
    """The three-letter code MP4 files carry for a language code ("en" → "eng")."""
    primary = code.split("-", 1)[0]
    found = pycountry.languages.get(alpha_2=primary) if len(primary) == 2 else None
    return str(getattr(found, "alpha_3", primary))


def recording_argv(ffmpeg: str, folder: Path, spec: LadderSpec, code: str, out: Path) -> list[str]:
    """Build the argv that remuxes the top rung and one language's audio into an MP4."""
    return [
        ffmpeg,
        "-hide_banner",
        "-nostdin",  # never read the terminal
        "-loglevel",
        "error",  # only real errors, kept for the log
        "-y",  # out is a fresh temporary name; overwrite a leftover from a crash
        "-i",
        str(folder / spec.rungs[0].name / VOD_PLAYLIST_NAME),  # the best picture, all of it
        "-i",
        str(folder / audio_dir(code) / VOD_PLAYLIST_NAME),  # this language's sound
        "-map",
        "0:v:0",
        "-map",
        "1:a:0",
        "-c",
        "copy",  # no re-encode: the ladder already encoded it once
        "-metadata:s:a:0",
        # MP4 stores a three-letter ISO 639-2 code (a two-letter one is dropped: measured).
        f"language={iso639_2(code)}",
        "-movflags",
        "+faststart",  # index first, so a browser can play the download while it loads
        "-f",
        "mp4",  # out ends in .part while it is written
        str(out),
    ]


async def write_recordings(
    ffmpeg: str, folder: Path, spec: LadderSpec, *, stamp: int | None = None
) -> list[Recording]:
    """Remux one MP4 per language of a finished session; languages that fail are logged, skipped."""
    stamp = stamp if stamp is not None else int(time.time())
    (folder / RECORDING_DIR).mkdir(parents=True, exist_ok=True)
    made = []
    for language in spec.languages:
        target = folder / recording_name(language.code, stamp)
        partial = target.with_name(f".{target.name}.part")
        proc = await asyncio.create_subprocess_exec(
            *recording_argv(ffmpeg, folder, spec, language.code, partial),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            _out, err = await asyncio.wait_for(proc.communicate(), REMUX_TIMEOUT_S)
        except (TimeoutError, asyncio.CancelledError):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            partial.unlink(missing_ok=True)
            raise
        if proc.returncode != 0 or not partial.is_file():
            logger.error(
                "recording %s of %s failed: %s", language.code, folder, err.decode()[-500:]
            )
            partial.unlink(missing_ok=True)
            continue
        partial.replace(target)  # appears under its final name only when complete
        made.append(
            Recording(language.code, recording_name(language.code, stamp), target.stat().st_size)
        )
    return made


def list_recordings(folder: Path) -> list[Recording]:
    """The finished MP4s of a session folder, newest first, then by language."""
    found = []
    with contextlib.suppress(OSError):
        for file in (folder / RECORDING_DIR).iterdir():
            match = _NAME_RE.match(file.name)
            if match and file.is_file():
                rel = f"{RECORDING_DIR}/{file.name}"
                found.append(
                    (int(match["stamp"]), Recording(match["code"], rel, file.stat().st_size))
                )
    found.sort(key=lambda pair: (-pair[0], pair[1].language))
    newest = found[0][0] if found else None
    return [rec for stamp, rec in found if stamp == newest]
