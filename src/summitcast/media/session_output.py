"""Everything a session on air publishes, through one writer: master, renditions, subtitles.

ffmpeg writes its segments and private playlists into the session's output folder;
``SegmentPublisher`` turns them into live and replay playlists and is the one writer
of the session's ``SegmentStore``. ``SessionOutput`` adds what the playout makes
itself (our master playlist with ffmpeg's exact CODECS, the WebVTT rendition of each
subtitle language) and hands it to the same publisher. ffmpeg's own files (its
master, the first segment) are read from the output folder, never back through the
store.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import av

from summitcast.domain.broadcast import Cue
from summitcast.errors import ValidationError
from summitcast.media.feed_clock import FeedClock, SessionClock
from summitcast.media.ladder import (
    FFMPEG_MASTER_NAME,
    MASTER_NAME,
    MEDIA_PLAYLIST_NAME,
    VOD_PLAYLIST_NAME,
    LadderSpec,
    codecs_from_ffmpeg_master,
    master_playlist,
    subtitle_dir,
)
from summitcast.media.playlist import parse_media_playlist, render_media_playlist
from summitcast.media.publisher import SegmentPublisher
from summitcast.media.segment_store import SegmentStore
from summitcast.media.subtitles import (
    Cue as SubtitleCue,
)
from summitcast.media.subtitles import (
    media_playlist,
    parse_webvtt,
    place_cues,
    segment_count,
    segment_name,
    segment_text,
)

logger = logging.getLogger(__name__)


class SessionOutput:
    """One session's published files: the publisher of ffmpeg's output, master and subtitles."""

    def __init__(
        self,
        spec: LadderSpec,
        store: SegmentStore,
        output_dir: Path,
        feed_clock: FeedClock,
        subtitle_languages: tuple[str, ...] = (),
        *,
        encoders: tuple[str, ...] = (),
        session_clock: SessionClock | None = None,
    ) -> None:
        self.spec = spec
        self.feed_clock = feed_clock
        self.subtitle_languages = subtitle_languages
        # Redundant encoders: the master lists each one's renditions (identical on every
        # node), and segments are numbered and dated by the session's shared clock.
        self.encoders = encoders
        self.session_clock = session_clock
        # Writes the live and replay playlists from ffmpeg's (and fills a store elsewhere).
        self.publisher = SegmentPublisher(
            output_dir,
            store,
            clock=feed_clock,
            window_segments=spec.window_segments,
            segment_s=spec.segment_s,
            session_clock=session_clock,
        )
        self.cues: dict[str, list[SubtitleCue]] = {code: [] for code in subtitle_languages}
        self.codecs_known = False
        self._mpegts_base: int | None = None

    def start(self) -> None:
        """The first master playlist: players may fetch it before the first segment."""
        self.publisher.put(MASTER_NAME, master_playlist(self.spec, encoders=self.encoders).encode())

    async def run(self, out_time_s: Callable[[], float]) -> None:
        """Publish ffmpeg's output and the subtitles it has passed, until cancelled."""
        publishing = asyncio.create_task(self.publisher.run())
        try:
            while True:
                await asyncio.sleep(self.spec.segment_s / 2)
                with contextlib.suppress(OSError):
                    self.write_subtitles(out_time_s(), ended=False)
        finally:
            publishing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await publishing

    def finish(self, programme_s: float) -> None:
        """After the encoder stopped: ended playlists, replay lists, the last subtitles, master."""
        # The last segments, the playlists with EXT-X-ENDLIST, the replay lists.
        self.publisher.finish()
        self.write_subtitles(programme_s, ended=True)
        self.write_master(ended=True)

    def write_master(self, *, ended: bool = False) -> None:
        """Rewrite master.m3u8 with ffmpeg's exact CODECS (when known); the replay once ended."""
        ffmpeg_master = self.publisher.read_output(FFMPEG_MASTER_NAME)
        codecs = codecs_from_ffmpeg_master(ffmpeg_master.decode()) if ffmpeg_master else {}
        self.codecs_known = bool(codecs)
        master = master_playlist(self.spec, codecs, ended=ended, encoders=self.encoders)
        self.publisher.put(MASTER_NAME, master.encode())

    def collect_cues(self, cue: Cue, start_s: float) -> None:
        """Place the item's subtitles (per language) at its programme time."""
        if not self.cues or cue.duration_s is None:
            return
        first = self.subtitle_languages[0] if self.subtitle_languages else ""
        for code, path in cue.subtitle_paths:
            language = code or first
            if language not in self.cues:
                continue
            try:
                parsed = parse_webvtt(Path(path).read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValidationError) as exc:
                logger.warning("subtitles of item %s unreadable: %s", cue.item_id, exc)
                continue
            self.cues[language] += place_cues(parsed, start_s, cue.duration_s)

    def trim_cues(self, start_s: float, end_s: float) -> None:
        """Cut the cues of an item that was replaced at end_s."""
        for language, cues in self.cues.items():
            kept = []
            for c in cues:
                if c.start_s >= start_s and c.start_s >= end_s:
                    continue
                kept.append(
                    SubtitleCue(c.start_s, min(c.end_s, end_s), c.text)
                    if c.start_s >= start_s
                    else c
                )
            self.cues[language] = kept

    def write_subtitles(self, until_s: float, *, ended: bool) -> None:
        """Write subtitle segments up to until_s (whole segments unless ended), and playlists."""
        if not self.cues:
            return
        if not ended:
            until_s = (until_s // self.spec.segment_s) * self.spec.segment_s
        if until_s <= 0:
            return
        if self._mpegts_base is None:
            self._mpegts_base = self._find_mpegts_base()
            if self._mpegts_base is None:
                return
        for code, cues in self.cues.items():
            self._write_language(code, cues, until_s, ended=ended)

    def _write_language(
        self, code: str, cues: list[SubtitleCue], until_s: float, *, ended: bool
    ) -> None:
        """One language's new subtitle segments, its live playlist and (ended) its replay."""
        assert self._mpegts_base is not None
        folder = subtitle_dir(code)
        segment_s = self.spec.segment_s
        for index in range(segment_count(until_s, segment_s)):
            name = f"{folder}/{segment_name(index)}"
            if not self.publisher.has(name):  # published segments never change
                text = segment_text(cues, index, segment_s, self._mpegts_base)
                self.publisher.put(name, text.encode())
        date_of: Callable[[float, float], float | None] = self.feed_clock.segment_date
        clock = self.session_clock
        if clock is not None:
            # Dated like the picture's segments: by the session's clock, not the feed's.
            date_of = lambda start_s, _length_s: clock.wall_at(start_s)  # noqa: E731
        playlist = media_playlist(
            until_s,
            segment_s,
            ended=ended,
            window_segments=self.spec.window_segments,
            date_of=date_of,
        )
        self.publisher.put(f"{folder}/{MEDIA_PLAYLIST_NAME}", self._numbered(playlist).encode())
        if ended:
            vod = media_playlist(until_s, segment_s, ended=True, date_of=date_of)
            self.publisher.put(f"{folder}/{VOD_PLAYLIST_NAME}", self._numbered(vod).encode())

    def _numbered(self, playlist: str) -> str:
        """A subtitle playlist numbered by the session's clock (as is without one)."""
        if self.session_clock is None or not self.session_clock.first_sequence:
            return playlist
        parsed = parse_media_playlist(playlist)
        first = self.session_clock.first_sequence
        vod = "#EXT-X-PLAYLIST-TYPE:VOD" in playlist
        return render_media_playlist(
            [replace(s, sequence=s.sequence + first) for s in parsed.segments],
            version=parsed.version,
            target_s=parsed.target_duration_s,
            ended=parsed.ended and not vod,
            vod=vod,
        )

    def _find_mpegts_base(self) -> int | None:
        """The 90 kHz timestamp of programme time 0 in the media segments (None: not yet known)."""
        rung = self.spec.rungs[0].name
        # Read the first segment itself: opening the live playlist would wait for its end.
        first = self.publisher.read_output(f"{rung}/seg_00000.{self.spec.segment_extension}")
        if first is None:
            return None
        init = (
            self.publisher.read_output(f"{rung}/init_{rung}.mp4") or b""
            if self.spec.container == "fmp4"
            else b""
        )
        try:
            with av.open(io.BytesIO(init + first), mode="r") as container:
                for packet in container.demux(video=0):
                    if packet.pts is not None and packet.time_base is not None:
                        return round(float(packet.pts * packet.time_base) * 90000)
        except (av.error.FFmpegError, OSError):
            pass
        # ffmpeg's TS muxer starts at 1.4 s; fMP4 starts at 0.
        return 126000 if self.spec.container == "ts" else 0
