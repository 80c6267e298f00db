"""Publish ffmpeg's local HLS output through a SegmentStore, in an order players can trust.

ffmpeg's HLS muxer can only write files into a folder. When the session's
``SegmentStore`` is that same folder (the embedded default) nothing is copied;
otherwise ``SegmentPublisher`` watches the folder and hands the store each media
playlist only after every file it names: init section (``EXT-X-MAP``) and
segments first, then the playlist. A player reading the store therefore never
sees a playlist naming a file the store lacks. ffmpeg closes a segment before
it rewrites the playlist that lists it, and it replaces playlists by renaming,
so reading a playlist and then the files it names always reads whole files.

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
from pathlib import Path

from summitcast.errors import ValidationError
from summitcast.media.ladder import FFMPEG_MASTER_NAME, MEDIA_PLAYLIST_NAME
from summitcast.media.segment_store import SegmentStore, clean_path

logger = logging.getLogger(__name__)

WATCH_INTERVAL_S = 0.2  # added latency per segment at worst; a few stat() calls each time
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


class SegmentPublisher:
    """Copies finished files and then their playlists from ffmpeg's folder into a store."""

    def __init__(self, folder: Path, store: SegmentStore) -> None:
        self.folder = folder
        self.store = store
        self._published: set[str] = set()  # store paths of media files already put
        self._named: dict[str, set[str]] = {}  # playlist → the files it named last time
        self._seen: dict[str, tuple[int, int]] = {}  # playlist → (mtime_ns, size) published
        # One pass at a time: the final pass at the end of a session may start while the
        # watcher's last pass still runs in its thread.
        self._lock = threading.Lock()

    def sync(self) -> int:
        """One pass over the folder; return how many files went to the store (blocking I/O)."""
        with self._lock:
            count = 0
            for playlist in self._playlists():
                count += self._publish_playlist(playlist)
            count += self._publish_if_changed(FFMPEG_MASTER_NAME)
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

    def _playlists(self) -> list[str]:
        """Store paths of the media playlists ffmpeg has written (one per rendition folder)."""
        try:
            return sorted(
                f"{entry.name}/{MEDIA_PLAYLIST_NAME}"
                for entry in self.folder.iterdir()
                if entry.is_dir() and (entry / MEDIA_PLAYLIST_NAME).is_file()
            )
        except FileNotFoundError:
            return []

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
                # Gone already (a window moved on): the playlist waits for the next pass.
                logger.warning("HLS file %s named but missing; playlist not published", path)
                return count
            self.store.put(path, data)
            self._published.add(path)
            count += 1
        self.store.put(playlist, text)
        self._seen[playlist] = stamp
        # Files that left a sliding window and that ffmpeg has deleted leave the store too,
        # only now that the playlist no longer names them.
        for path in self._named.get(playlist, set()) - named:
            if not (self.folder / path).exists():
                self.store.delete(path)
                self._published.discard(path)
        self._named[playlist] = named
        return count + 1
