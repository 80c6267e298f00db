"""Publish ffmpeg's local HLS output through a SegmentStore, in an order players can trust.

ffmpeg's HLS muxer can only write files into a folder, and its playlists are
not what players should reload: ffmpeg's dates run ahead of the clock and a
full-session playlist grows ~85 bytes a segment (1.2 MB after 8 hours, reloaded
every 2 s by every player). So ffmpeg writes a short private playlist per
rendition (``.encoder.m3u8``) and ``SegmentPublisher``, every 50 ms:

* takes each new segment from it, stamps its ``EXT-X-PROGRAM-DATE-TIME`` from the
  ``FeedClock`` (when its first frame reached the encoder) and appends it to the
  session's journal (``.session.m3u8``, every segment so far);
* rewrites the rendition's live playlist ``index.m3u8``: a window of the newest
  segments (``summitcast.media.playlist``);
* when the session ends (``finish``), ends every live playlist with
  ``EXT-X-ENDLIST`` and writes ``vod.m3u8``, the whole session, for replay and
  recordings. No segment file is ever deleted.

The publisher is the one writer of a session's store: the playout hands it the
files it makes itself (master playlist, subtitles: ``put``) and reads ffmpeg's
output from the folder, not back through the store (``read_output``).

When the session's ``SegmentStore`` is that same folder (the embedded default,
``SegmentStore.local_folder``) nothing is copied; otherwise each playlist goes to
the store only after every file it names: init section (``EXT-X-MAP``) and
segments first, then the playlist. A player reading the store therefore never
sees a playlist naming a file the store lacks. ffmpeg closes a segment before it
rewrites the playlist that lists it, and it replaces playlists by renaming, so
reading a playlist and then the files it names always reads whole files.

Low-latency HLS would add partial segments: a packager writing them names each
one in an ``EXT-X-PART`` tag before or beside its parent segment. The same rule
covers them (``referenced_uris`` reads ``EXT-X-PART`` URIs too, so a part is put
before the playlist naming it); ``EXT-X-PRELOAD-HINT`` names a part not yet
written and is therefore left out. Blocking playlist reloads would then be a
matter for the HLS route (waiting on the store), not for this module.
"""

from __future__ import annotations

import asyncio
import logging
import posixpath
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from summitcast.errors import ValidationError
from summitcast.media.feed_clock import FeedClock, SessionClock
from summitcast.media.ladder import (
    ENCODER_PLAYLIST_NAME,
    FFMPEG_MASTER_NAME,
    MEDIA_PLAYLIST_NAME,
    VOD_PLAYLIST_NAME,
)
from summitcast.media.playlist import (
    MediaPlaylist,
    Segment,
    parse_media_playlist,
    render_media_playlist,
    segment_lines,
    stamped,
    target_duration,
)
from summitcast.media.segment_store import LocalSegmentStore, SegmentStore, clean_path

logger = logging.getLogger(__name__)

# How often ffmpeg's playlists are looked at: a segment reaches the live playlist at
# most this long after ffmpeg lists it. The encoder itself lists a segment ~0.13 s
# after the first frame of the next one was fed (measured at 30 fps), and the date
# plus duration must be within 0.2 s of the clock when players see it. A pass with
# nothing new is one stat() per rendition.
WATCH_INTERVAL_S = 0.02
JOURNAL_NAME = ".session.m3u8"  # every segment of the session so far, appended as it comes
DEFAULT_WINDOW_SEGMENTS = 90
_URI_TAGS = ("#EXT-X-MAP:", "#EXT-X-PART:")  # tags whose URI= names a file to publish first
_URI_RE = re.compile(r'URI="([^"]+)"')


def referenced_uris(playlist: str) -> list[str]:
    """The relative URIs a media playlist names: init section, parts and segments, in order."""
    found: list[str] = []
    for raw in playlist.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith(_URI_TAGS):
            match = _URI_RE.search(line)
            if match:
                found.append(match.group(1))
        elif not line.startswith("#"):
            found.append(line)
    return list(dict.fromkeys(found))  # an init section may be named again after a seam


@dataclass
class _Rendition:
    """What the publisher knows of one rendition's segments."""

    window: deque[Segment]
    version: int
    target_s: int
    last_sequence: int = -1
    discontinuities_gone: int = 0  # EXT-X-DISCONTINUITY tags that slid out of the window
    # Programme time at which the next segment starts; None: a new encoder run, whose
    # start the feed clock knows.
    next_start_s: float | None = None
    journal_init: str | None = None  # the EXT-X-MAP the journal last wrote
    seen: tuple[int, int] | None = None  # (mtime_ns, size) of ffmpeg's playlist last read
    ended: bool = False


class SegmentPublisher:
    """Turns ffmpeg's private playlists into live windows and a replay list, then publishes."""

    def __init__(
        self,
        folder: Path,
        store: SegmentStore,
        *,
        clock: FeedClock | None = None,
        window_segments: int = DEFAULT_WINDOW_SEGMENTS,
        segment_s: int = 2,
        now: Callable[[], float] = time.time,
        session_clock: SessionClock | None = None,
    ) -> None:
        self.folder = folder
        self.store = store
        self.clock = clock
        # Redundant encoders: segments are numbered and dated by the session's clock
        # (ffmpeg's segment k is the session's first_sequence + k), not the feed clock.
        self.session_clock = session_clock
        self.window_segments = window_segments
        self.segment_s = segment_s
        self._now = now
        self._local = LocalSegmentStore(folder, create=False)  # atomic writes into the folder
        store_folder = store.local_folder()
        same = store_folder is not None and _same(store_folder, folder)
        self.copies = not same  # the store is elsewhere: files are put into it, then playlists
        self._renditions: dict[str, _Rendition] = {}
        self._published: set[str] = set()  # store paths of media files already put
        self._seen: dict[str, tuple[int, int]] = {}  # playlist → (mtime_ns, size) published
        # One pass at a time: the final pass at the end of a session may start while the
        # watcher's last pass still runs in its thread.
        self._lock = threading.Lock()

    def put(self, path: str, data: bytes) -> None:
        """Publish a file the playout makes itself (master, subtitles): straight into the store."""
        self.store.put(path, data)

    def has(self, path: str) -> bool:
        """Whether the store already holds path (published files never change)."""
        return self.store.exists(path)

    def read_output(self, path: str) -> bytes | None:
        """One of ffmpeg's own files, read from its folder (never back through the store)."""
        try:
            return (self.folder / clean_path(path)).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            return None

    def sync(self) -> int:
        """One pass: list new segments, write the live playlists, publish; return files written."""
        with self._lock:
            return self._sync()

    def finish(self) -> int:
        """The last pass after the encoder stopped: live playlists end, vod.m3u8 is written."""
        with self._lock:
            count = self._sync()
            for name, rendition in self._renditions.items():
                rendition.ended = True
                self._write_live(name, rendition)
                self._local.put(f"{name}/{VOD_PLAYLIST_NAME}", self._vod(name).encode())
                count += 2
                if self.copies:
                    count += self._publish_playlist(f"{name}/{MEDIA_PLAYLIST_NAME}")
                    count += self._publish_playlist(f"{name}/{VOD_PLAYLIST_NAME}")
            return count

    async def run(self, interval_s: float = WATCH_INTERVAL_S) -> None:
        """Publish as ffmpeg writes, until cancelled."""
        while True:
            try:
                await asyncio.to_thread(self.sync)
            except (OSError, ValidationError) as exc:
                # The store is unreachable or refused a path: try again on the next pass.
                logger.warning("HLS publishing paused: %s", exc)
            await asyncio.sleep(interval_s)

    def _sync(self) -> int:
        count = 0
        for name in self._rendition_names():
            count += self._update(name)
        if self.copies:
            for name in sorted(self._renditions):
                count += self._publish_playlist(f"{name}/{MEDIA_PLAYLIST_NAME}")
            count += self._publish_if_changed(FFMPEG_MASTER_NAME)
        return count

    def _rendition_names(self) -> list[str]:
        """Folders in which ffmpeg writes a media playlist (one per rendition)."""
        try:
            return sorted(
                entry.name
                for entry in self.folder.iterdir()
                if entry.is_dir() and (entry / ENCODER_PLAYLIST_NAME).is_file()
            )
        except FileNotFoundError:
            return []

    def _update(self, name: str) -> int:
        """Take ffmpeg's new segments of one rendition; rewrite its live playlist if any."""
        path = self.folder / name / ENCODER_PLAYLIST_NAME
        try:
            info = path.stat()
            stamp = (info.st_mtime_ns, info.st_size)
            rendition = self._renditions.get(name)
            if rendition is not None and rendition.seen == stamp:
                return 0
            # ffmpeg replaces its playlist by renaming: one read sees one whole version.
            encoder = parse_media_playlist(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return 0
        if rendition is None:
            rendition = self._restore(name, encoder)
            self._renditions[name] = rendition
        rendition.seen = stamp
        new = [s for s in encoder.segments if s.sequence > rendition.last_sequence]
        if not new:
            return 0
        if new[0].sequence != rendition.last_sequence + 1 and rendition.last_sequence >= 0:
            # Only if this pass came more than ENCODER_LIST_SIZE segments late.
            logger.warning("HLS %s: segments %d-%d were never listed", name,
                           rendition.last_sequence + 1, new[0].sequence - 1)  # fmt: skip
        lines: list[str] = []
        first: int | None = None
        for segment in new:
            listed = self._list(rendition, segment)
            first = listed.sequence if first is None else first
            lines += segment_lines(listed, rendition.journal_init)
            rendition.journal_init = listed.init_uri
        self._append_journal(name, encoder, lines, first or 0)
        self._write_live(name, rendition)
        return 1

    def _list(self, rendition: _Rendition, segment: Segment) -> Segment:
        """Stamp a new segment and put it at the live end of the window."""
        if segment.discontinuity:
            rendition.next_start_s = None  # the encoder restarted: a new timeline begins
        start = rendition.next_start_s
        if start is None and self.clock is not None:
            start = self.clock.run_start_s
        if self.session_clock is not None:
            sequence = self.session_clock.first_sequence + segment.sequence
            listed = replace(
                segment, sequence=sequence, program_date_time=self.session_clock.date_of(sequence)
            )
        else:
            listed = stamped(segment, self._date(start, segment.duration_s))
        rendition.window.append(listed)
        while len(rendition.window) > self.window_segments:
            if rendition.window.popleft().discontinuity:
                rendition.discontinuities_gone += 1
        rendition.last_sequence = segment.sequence
        rendition.next_start_s = None if start is None else start + segment.duration_s
        # RFC 8216 §6.2.1: the target duration of a live playlist never changes, so
        # it only grows, and only if a segment comes out longer than planned.
        rendition.target_s = max(rendition.target_s, target_duration(self.segment_s, [segment]))
        return listed

    def _date(self, start_s: float | None, duration_s: float) -> float:
        """When a segment's first frame was fed to the encoder, in seconds since the epoch."""
        if start_s is not None and self.clock is not None:
            wall = self.clock.segment_date(start_s, duration_s)
            if wall is not None:
                return wall
        # No feed clock (an encoder reading a file, not fed by us): it was closed just now.
        return self._now() - duration_s

    def _live_text(self, rendition: _Rendition) -> str:
        return render_media_playlist(
            list(rendition.window),
            version=rendition.version,
            target_s=rendition.target_s,
            discontinuity_sequence=rendition.discontinuities_gone,
            ended=rendition.ended,
        )

    def _write_live(self, name: str, rendition: _Rendition) -> None:
        """Write one rendition's live playlist into the folder (atomically)."""
        self._local.put(f"{name}/{MEDIA_PLAYLIST_NAME}", self._live_text(rendition).encode())

    def _append_journal(
        self, name: str, encoder: MediaPlaylist, lines: list[str], first: int
    ) -> None:
        """Append segments to the session's list (one write: a crash loses at most them)."""
        journal = self.folder / name / JOURNAL_NAME
        head: list[str] = []
        if not journal.exists():
            head = ["#EXTM3U", f"#EXT-X-VERSION:{encoder.version}",
                    f"#EXT-X-TARGETDURATION:{max(encoder.target_duration_s, self.segment_s)}",
                    "#EXT-X-PLAYLIST-TYPE:EVENT"]  # fmt: skip
            if first and self.session_clock is not None:
                # A redundant encoder that joined late: the replay keeps the session's numbers.
                head.append(f"#EXT-X-MEDIA-SEQUENCE:{first}")
        with journal.open("a", encoding="utf-8") as handle:
            handle.write("\n".join(head + lines) + "\n")

    def _restore(self, name: str, encoder: MediaPlaylist) -> _Rendition:
        """A rendition's state: new, or as its journal left it (the app restarted mid-session)."""
        rendition = _Rendition(
            window=deque(),
            version=encoder.version,
            target_s=max(encoder.target_duration_s, self.segment_s),
        )
        journal = self.folder / name / JOURNAL_NAME
        try:
            saved = parse_media_playlist(journal.read_text(encoding="utf-8")).segments
        except FileNotFoundError:
            return rendition
        except ValidationError as exc:
            logger.error("HLS %s: session list unreadable (%s); starting a new one", name, exc)
            journal.replace(journal.with_name(f"{JOURNAL_NAME}.broken-{int(self._now())}"))
            return rendition
        cut = max(0, len(saved) - self.window_segments)
        rendition.window.extend(saved[cut:])
        rendition.discontinuities_gone = sum(s.discontinuity for s in saved[:cut])
        rendition.target_s = max(rendition.target_s, target_duration(self.segment_s, saved))
        if saved:
            rendition.last_sequence = saved[-1].sequence
            rendition.journal_init = saved[-1].init_uri
        return rendition

    def _vod(self, name: str) -> str:
        """The whole session of one rendition, from its journal, as a VOD playlist."""
        try:
            saved = parse_media_playlist(
                (self.folder / name / JOURNAL_NAME).read_text(encoding="utf-8")
            )
        except FileNotFoundError:
            saved = MediaPlaylist(())
        rendition = self._renditions[name]
        return render_media_playlist(
            saved.segments,
            version=rendition.version,
            target_s=target_duration(self.segment_s, saved.segments),
            vod=True,
        )

    def _changed(self, path: str) -> tuple[int, int] | None:
        """The file's (mtime_ns, size) if it changed since it was published, else None."""
        try:
            info = (self.folder / path).stat()
        except FileNotFoundError:
            return None
        stamp = (info.st_mtime_ns, info.st_size)
        return None if self._seen.get(path) == stamp else stamp

    def _publish_if_changed(self, path: str) -> int:
        """Put a file that has no dependants (ffmpeg's master) whenever it changes."""
        stamp = self._changed(path)
        if stamp is None:
            return 0
        self.store.put(path, (self.folder / path).read_bytes())
        self._seen[path] = stamp
        return 1

    def _publish_playlist(self, playlist: str) -> int:
        """Put the files a changed playlist names that the store lacks, then the playlist."""
        stamp = self._changed(playlist)
        if stamp is None:
            return 0
        text = (self.folder / playlist).read_bytes()
        base = posixpath.dirname(playlist)
        named = {
            clean_path(posixpath.join(base, uri))
            for uri in referenced_uris(text.decode("utf-8", "replace"))
            if "://" not in uri  # an absolute URL is somebody else's file
        }
        count = 0
        for path in sorted(named - self._published):
            try:
                data = (self.folder / path).read_bytes()
            except FileNotFoundError:
                # Not written yet (a part announced early): the playlist waits for the next pass.
                logger.warning("HLS file %s named but missing; playlist not published", path)
                return count
            self.store.put(path, data)
            self._published.add(path)
            count += 1
        self.store.put(playlist, text)
        self._seen[playlist] = stamp
        return count + 1


def _same(one: Path, other: Path) -> bool:
    """Whether two paths name the same folder (either may not exist yet)."""
    return one.resolve() == other.resolve()
