"""One simulated HLS viewer: playlists, segments in order, a simulated buffer, failover.

What hls.js does, minus the decoding: load the master, take the chosen rung (and, for a
video rung, the audio rendition of its AUDIO group), start three segments back from the
live edge, fetch the init section and then each segment in order, reload the playlist
every target duration (half of it when nothing was new). The buffer grows by each
segment's EXTINF when it arrives and drains in real time once playback starts; an
under-run while not at EXT-X-ENDLIST is a stall.

Failover, like a player in front of a CDN: a request that cannot reach its edge
(connection refused or reset) moves the viewer to the next edge; a 5xx or a timeout on
a rendition moves it to the redundant copy of its rung (hls.js pathways), and only when
every copy failed on this edge to the next edge.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from summitcast.errors import ValidationError
from summitcast.loadtest.hls_http import EdgeError, EdgePool, Response
from summitcast.loadtest.hls_playlist import MediaPlaylist, Pathway, Rung

LIVE_EDGE_SEGMENTS = 3  # hls.js liveSyncDurationCount: start this many segments back


class Playback:
    """The simulated buffer of one viewer: lazily evaluated, no timer per viewer."""

    __slots__ = (
        "buffered",
        "ended",
        "ended_tracks",
        "playing_since",
        "position",
        "stall_began",
        "stalled_s",
        "stalls",
        "started_at",
    )

    def __init__(self, tracks: int) -> None:
        self.buffered = [0.0] * tracks  # media seconds downloaded, per track
        self.ended_tracks = [False] * tracks
        self.position = 0.0  # media position at ``playing_since`` (or where it stopped)
        self.playing_since: float | None = None
        self.started_at: float | None = None
        self.stall_began: float | None = None
        self.stalls = 0
        self.stalled_s = 0.0
        self.ended = False

    def settle(self, now: float) -> None:
        """Account for an under-run that happened before ``now``."""
        if self.playing_since is None:
            return
        end = min(self.buffered)
        ran_out = self.playing_since + (end - self.position)
        if ran_out > now:
            return
        self.position, self.playing_since = end, None
        if all(self.ended_tracks):
            self.ended = True  # played to EXT-X-ENDLIST: the end, not a stall
        else:
            self.stalls += 1
            self.stall_began = ran_out

    def add(self, track: int, duration_s: float, now: float) -> None:
        """A segment of ``track`` arrived: grow the buffer, start or resume playback."""
        self.settle(now)
        self.buffered[track] += duration_s
        if min(self.buffered) <= self.position:
            return
        if self.started_at is None:
            self.started_at = self.playing_since = now
        elif self.stall_began is not None:
            self.stalled_s += now - self.stall_began
            self.stall_began, self.playing_since = None, now

    def end_track(self, track: int, now: float) -> None:
        """The track reached EXT-X-ENDLIST with every segment downloaded."""
        self.settle(now)
        self.ended_tracks[track] = True
        if all(self.ended_tracks) and self.stall_began is not None:
            self.stalled_s += now - self.stall_began
            self.stall_began, self.ended = None, True

    def finish(self, now: float) -> None:
        """The run is over: close an open stall at ``now``."""
        self.settle(now)
        if self.stall_began is not None:
            self.stalled_s += now - self.stall_began
            self.stall_began = None


class ViewerContext(Protocol):
    """What a viewer needs of the run: the edges, the clock, and where samples go."""

    pools: list[EdgePool]
    master_path: str
    segment_ms: list[float]
    playlist_ms: list[float]
    switch_ms: list[float]

    def parse_master(self, text: str) -> list[Rung]:
        """The master's rungs (parsed once per distinct body)."""
        ...

    def parse_media(self, text: str, uri: str) -> MediaPlaylist:
        """A media playlist (parsed once per distinct body while it is current)."""
        ...


@dataclass(slots=True)
class ViewerStats:
    """What one viewer did and saw."""

    index: int
    rung: str
    first_edge: int
    begun_at: float = 0.0
    segments: int = 0
    skipped: int = 0  # segments that slid out of the window before this viewer got them
    edge_switches: int = 0
    pathway_switches: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    order_ok: bool = True  # every track's segments came in strictly rising sequence


class _MovedError(Exception):
    """A request failed and the viewer has moved (edge or pathway): reload and go on."""


class Viewer:
    """One simulated player; ``play`` runs until cancelled or every track ended."""

    def __init__(self, context: ViewerContext, stats: ViewerStats) -> None:
        self.context = context
        self.stats = stats
        self.edge = stats.first_edge
        self.pathway = 0
        self.pathways: list[Pathway] = []
        self.playback = Playback(1)
        self._failed_pathways: set[int] = set()
        self._moving_since: float | None = None
        self._failures = 0  # consecutive, across tracks
        self._tag = f" viewer={stats.index}"

    async def play(self) -> None:
        """Load the master, then play the rung's tracks until cancelled."""
        self.stats.begun_at = time.monotonic()
        rung = await self._rung()
        self.pathways = rung.pathways
        choosers: list[Callable[[Pathway], str]] = [lambda p: p.uri]
        if rung.pathways[0].audio_uri is not None:
            choosers.append(lambda p: p.audio_uri or p.uri)
        self.playback = Playback(len(choosers))
        await asyncio.gather(*(self._track(i, choose) for i, choose in enumerate(choosers)))

    async def _rung(self) -> Rung:
        while True:
            try:
                response = await self._get(self.context.master_path, keep=True, rendition=False)
            except _MovedError:
                await self._backoff(1.0)
                continue
            rungs = self.context.parse_master(response.body.decode("utf-8", "replace"))
            for rung in rungs:
                if rung.name == self.stats.rung:
                    return rung
            raise ValidationError(f"the master has no rung {self.stats.rung!r}")

    async def _track(self, track: int, choose: Callable[[Pathway], str]) -> None:
        next_seq: int | None = None
        init_done: str | None = None
        while True:
            loaded_at = time.monotonic()
            try:
                playlist = await self._playlist(choose(self.pathways[self.pathway]))
            except _MovedError:
                await self._backoff(0.5)
                continue
            if next_seq is None:
                start = max(0, len(playlist.segments) - LIVE_EDGE_SEGMENTS)
                next_seq = playlist.media_sequence + start
            if next_seq < playlist.media_sequence:
                self.stats.skipped += playlist.media_sequence - next_seq
                next_seq = playlist.media_sequence
            fetched_before = next_seq
            try:
                next_seq, init_done = await self._segments(track, playlist, next_seq, init_done)
            except _MovedError:
                # Reload from where the viewer moved to: at once after a move, later when
                # the same request keeps failing (a 404 must not become a busy loop).
                await self._backoff(0.5)
                continue
            if playlist.ended and next_seq > playlist.last_sequence:
                self.playback.end_track(track, time.monotonic())
                return
            # hls.js reloads after a target duration, after half of it when nothing was new.
            wait = playlist.target_duration_s / (1 if next_seq > fetched_before else 2)
            await asyncio.sleep(max(0.0, loaded_at + wait - time.monotonic()))

    async def _playlist(self, uri: str) -> MediaPlaylist:
        started = time.monotonic()
        response = await self._get(uri, keep=True, rendition=True)
        self.context.playlist_ms.append((time.monotonic() - started) * 1000)
        return self.context.parse_media(response.body.decode("utf-8", "replace"), uri)

    async def _segments(
        self, track: int, playlist: MediaPlaylist, next_seq: int, init_done: str | None
    ) -> tuple[int, str | None]:
        for segment in playlist.segments:
            if segment.sequence < next_seq:
                continue
            if segment.init_uri is not None and segment.init_uri != init_done:
                await self._get(segment.init_uri, keep=False, rendition=True)
                init_done = segment.init_uri
            started = time.monotonic()
            await self._get(segment.uri, keep=False, rendition=True)
            now = time.monotonic()
            self.context.segment_ms.append((now - started) * 1000)
            if segment.sequence != next_seq:
                self.stats.order_ok = self.stats.order_ok and segment.sequence > next_seq
                self.stats.skipped += segment.sequence - next_seq
            self.stats.segments += 1
            self.playback.add(track, segment.duration_s, now)
            next_seq = segment.sequence + 1
        return next_seq, init_done

    async def _get(self, uri: str, *, keep: bool, rendition: bool) -> Response:
        """One request on the viewer's edge; on failure move (edge or pathway) and raise."""
        edge, pathway = self.edge, self.pathway
        started = time.monotonic()
        try:
            response = await self.context.pools[edge].get(uri, keep_body=keep, tag=self._tag)
        except EdgeError as exc:
            self.stats.errors[exc.kind] += 1
            if exc.kind == "timeout" and rendition:
                self._fail_pathway(edge, pathway, started)
            else:
                self._fail_edge(edge, started)
            raise _MovedError from exc
        if response.status >= 400:
            self.stats.errors[f"http_{response.status}"] += 1
            if response.status >= 500 and rendition:
                self._fail_pathway(edge, pathway, started)
            elif response.status >= 500:
                self._fail_edge(edge, started)
            else:
                self._failures += 1
            raise _MovedError
        self._failures = 0
        if self._moving_since is not None:
            self.context.switch_ms.append((time.monotonic() - self._moving_since) * 1000)
            self._moving_since = None
        return response

    def _fail_edge(self, edge: int, started: float) -> None:
        self._failures += 1
        if edge != self.edge:
            return  # another track already moved this viewer
        self.edge = (edge + 1) % len(self.context.pools)
        self._failed_pathways.clear()
        if self.edge != edge:
            self.stats.edge_switches += 1
            self._moving_since = self._moving_since or started

    def _fail_pathway(self, edge: int, pathway: int, started: float) -> None:
        if edge != self.edge or pathway != self.pathway:
            self._failures += 1
            return
        self._failed_pathways.add(pathway)
        left = [i for i in range(len(self.pathways)) if i not in self._failed_pathways]
        if not left:
            self._fail_edge(edge, started)  # every copy failed here: try the next edge
            return
        self._failures += 1
        self.pathway = left[0]
        self.stats.pathway_switches += 1
        self._moving_since = self._moving_since or started

    async def _backoff(self, cap_s: float) -> None:
        # Retry at once after a move; once every edge and copy failed in a row, wait a little.
        tries = len(self.context.pools) * max(1, len(self.pathways))
        if self._failures >= tries:
            await asyncio.sleep(min(cap_s, 0.1 * self._failures))
