"""A session on air under a producer's control: one ladder encoder, one feeder at a time.

``PlayoutWorker`` (``summitcast.media.playout``) plays a fixed plan; a live
session changes its mind: the producer takes the next item early, holds, cuts
to the studio. ``SessionPlayout`` keeps the one encoder running and swaps the
feeder in front of it. A replaced feeder gets SIGTERM, so ffmpeg finishes the
MPEG-TS packets it is writing and the encoder never sees half a frame; the
timestamps actually sent are read from the stream (``TsClock``), so the next
feeder continues exactly where the last one stopped and the programme stays
one stream with continuous timestamps.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import logging
import os
import shutil
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av

from summitcast.domain.broadcast import HOLD_HEADING, Cue
from summitcast.domain.playout import Slate, SourceKind
from summitcast.errors import ValidationError
from summitcast.media.feed_clock import FeedClock
from summitcast.media.ladder import (
    ENCODER_PLAYLIST_NAME,
    FFMPEG_MASTER_NAME,
    MASTER_NAME,
    MEDIA_PLAYLIST_NAME,
    VOD_PLAYLIST_NAME,
    LadderInput,
    LadderSpec,
    codecs_from_ffmpeg_master,
    ladder_argv,
    master_playlist,
    subtitle_dir,
)
from summitcast.media.playout import (
    FEED_BASE_S,
    PIPE_CHUNK,
    TECHNICAL_SLATE,
    FeedSource,
    countdown_text,
    feed_argv,
)
from summitcast.media.probe import probe
from summitcast.media.publisher import SegmentPublisher
from summitcast.media.segment_store import LocalSegmentStore, SegmentStore
from summitcast.media.slate import render_slate
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
from summitcast.media.supervisor import EncoderHealth, Supervisor

logger = logging.getLogger(__name__)

TS_PACKET = 188
LIVE_RETRY_S = 1.0  # slate chunk played while the live input is missing, then look again
FEEDER_STOP_TIMEOUT_S = 3.0
# After the feed ends the encoder writes its last segments and playlists (well under a
# second on a 2-core machine); longer than this it is stuck and gets SIGTERM.
ENCODER_FLUSH_S = 5.0
DISK_CHECK_INTERVAL_S = 5.0
MIN_FREE_BYTES = 200 * 1024 * 1024  # below this the control room shows a disk alarm


class TsClock:
    """Follows the MPEG-TS a feeder writes and remembers the last video timestamp in it."""

    def __init__(self, fps: int) -> None:
        self.frame_s = 1 / fps
        self.last_video_pts: int | None = None
        self._carry = b""

    def feed(self, data: bytes) -> None:
        """Read the PES headers of every whole 188-byte packet in data."""
        data = self._carry + data
        whole = len(data) - len(data) % TS_PACKET
        for at in range(0, whole, TS_PACKET):
            self._packet(data[at : at + TS_PACKET])
        self._carry = data[whole:]

    def _packet(self, packet: bytes) -> None:
        if packet[0] != 0x47 or not packet[1] & 0x40:  # not synced, or no PES starts here
            return
        payload = 4
        if packet[3] & 0x20:  # an adaptation field comes first
            payload += 1 + packet[4]
        pes = packet[payload:]
        # 00 00 01 start code, video stream ids E0–EF, PTS flag in the header flags.
        if len(pes) < 14 or pes[:3] != b"\x00\x00\x01" or not 0xE0 <= pes[3] <= 0xEF:
            return
        if not pes[7] & 0x80:
            return
        b = pes[9:14]
        pts = ((b[0] >> 1) & 0x07) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1
        if self.last_video_pts is None or pts > self.last_video_pts:
            self.last_video_pts = pts

    @property
    def end_s(self) -> float | None:
        """Feed time just after the last video frame seen (None before any)."""
        if self.last_video_pts is None:
            return None
        return self.last_video_pts / 90000 + self.frame_s


@dataclass
class OnAir:
    """What the encoder is being fed right now, for the control room."""

    cue: Cue | None = None
    source: str = "none"  # file | slate | live | fallback
    label: str = ""
    since: float = 0.0  # time.monotonic() when it went on air


@dataclass
class PlayoutHealth:
    """What the control room shows about a session's playout."""

    encoder: EncoderHealth
    on_air: OnAir
    alarm: str | None = None
    fallbacks: list[int] = field(default_factory=list)
    programme_s: float = 0.0


def disk_problem(folder: Path, *, min_free_bytes: int = MIN_FREE_BYTES) -> str | None:
    """Say why segments cannot be written to folder, or None if they can."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe_file = folder / ".write-test"
        probe_file.write_bytes(b"ok")
        probe_file.unlink()
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            return f"The disk holding {folder} is full."
        return f"Cannot write segments to {folder}: {exc.strerror or exc}."
    free = shutil.disk_usage(folder).free
    if free < min_free_bytes:
        return f"Only {free // (1024 * 1024)} MiB left on the disk holding {folder}."
    return None


class SessionPlayout:
    """Keeps one session's programme flowing into one ladder encoder while cues change."""

    def __init__(
        self,
        ffmpeg: str,
        spec: LadderSpec,
        store: SegmentStore,
        work_dir: Path,
        *,
        on_cue_finished: Callable[[Cue], Awaitable[None]],
        output_dir: Path | None = None,
        live_source: Callable[[], FeedSource | None] = lambda: None,
        interpreters: Callable[[], tuple[str | None, ...]] = tuple,
        subtitle_languages: tuple[str, ...] = (),
        min_free_bytes: int = MIN_FREE_BYTES,
    ) -> None:
        self.ffmpeg = ffmpeg
        self.spec = spec
        self.store = store
        self.work_dir = work_dir
        # ffmpeg writes here; the store is this folder itself (the default: no copying)
        # or somewhere else, which the publisher fills from here in a safe order.
        store_folder = store.folder if isinstance(store, LocalSegmentStore) else None
        self.output_dir = output_dir or store_folder or work_dir / "hls"
        # When each programme frame reached the encoder: the publisher dates segments by it.
        self.feed_clock = FeedClock(spec.fps)
        # Writes the live and replay playlists from ffmpeg's (and fills a store elsewhere).
        self.publisher = SegmentPublisher(
            self.output_dir,
            store,
            clock=self.feed_clock,
            window_segments=spec.window_segments,
            segment_s=spec.segment_s,
        )
        self._publisher_task: asyncio.Task[None] | None = None
        self.on_cue_finished = on_cue_finished
        self.live_source = live_source
        # Per ladder language: the relay URL of a live interpreter sending now, or None.
        self.interpreters = interpreters
        self._live_interpreters: tuple[str | None, ...] = ()
        self._interpreter_task: asyncio.Task[None] | None = None
        # Set when the feeder stops only because interpreters came or went: the same cue
        # then resumes where it was (``_resume``: the cue and its programme start).
        self._interpreters_changed = False
        self._resume: tuple[Cue, float] | None = None
        self.min_free_bytes = min_free_bytes
        self.subtitle_languages = subtitle_languages
        self.wanted: Cue | None = None
        self.on_air = OnAir()
        self.alarm: str | None = None
        self.fallbacks: list[int] = []
        self.programme_s = 0.0
        self.cues: dict[str, list[SubtitleCue]] = {code: [] for code in subtitle_languages}
        self._changed = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._subtitle_task: asyncio.Task[None] | None = None
        self._disk_task: asyncio.Task[None] | None = None
        self._codecs_known = False
        self._mpegts_base: int | None = None
        probe_options = ("-f", "mpegts", "-probesize", "1000000", "-analyzeduration", "1000000")
        feed = [LadderInput("pipe:0", probe_options)]
        # A session resumed after an app restart continues the playlists already there.
        resume = (self.output_dir / spec.rungs[0].name / ENCODER_PLAYLIST_NAME).is_file()
        self.encoder = Supervisor(
            ladder_argv(ffmpeg, feed, spec, self.output_dir, resume=resume),
            name="ladder",
            stdin_pipe=True,
            restart_on_success=False,
            restart_argv=ladder_argv(ffmpeg, feed, spec, self.output_dir, resume=True),
        )

    @property
    def health(self) -> PlayoutHealth:
        """A snapshot for the control room."""
        return PlayoutHealth(
            encoder=self.encoder.health,
            on_air=self.on_air,
            alarm=self.alarm,
            fallbacks=list(self.fallbacks),
            programme_s=self.programme_s,
        )

    def cue(self, cue: Cue) -> None:
        """Put cue on air now, replacing whatever plays."""
        self.wanted = cue
        self._changed.set()

    async def start(self) -> None:
        """Start playing in the background (the first cue may come later)."""
        self._task = asyncio.create_task(self._run(), name="session-playout")

    async def stop(self) -> None:
        """Stop feeding, let the encoder close its playlists, and stop it."""
        self._stopping = True
        self._changed.set()
        if self._task is not None:
            await self._task
        for task in (
            self._subtitle_task,
            self._disk_task,
            self._interpreter_task,
            self._publisher_task,
        ):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _run(self) -> None:
        """Wait for a writable folder, start the encoder, then feed cue after cue."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        while not self._stopping:
            self.alarm = disk_problem(self.output_dir, min_free_bytes=self.min_free_bytes)
            if self.alarm is None or "left on the disk" in self.alarm:
                break
            # No encoder while the folder is unwritable: it would only crash and restart.
            logger.error("playout waits: %s", self.alarm)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), DISK_CHECK_INTERVAL_S)
            if not self._stopping:
                self._changed.clear()
        if self._stopping:
            return
        try:
            self.store.put(MASTER_NAME, master_playlist(self.spec).encode())
            await self.encoder.start()
            if self.publisher is not None:
                self._publisher_task = asyncio.create_task(self.publisher.run())
            self._subtitle_task = asyncio.create_task(self._subtitle_loop())
            # Its own task: a hold slate or a live input may stay on air for hours.
            self._disk_task = asyncio.create_task(self._disk_loop())
            self._interpreter_task = asyncio.create_task(self._interpreter_loop())
            while not self._stopping:
                cue = self.wanted
                if cue is None:
                    await self._changed.wait()
                    self._changed.clear()
                    continue
                self._changed.clear()
                ended_by_itself = await self._play(cue)
                if not self._codecs_known:
                    self._write_master()
                if ended_by_itself and self.wanted is cue and not self._stopping:
                    await self.on_cue_finished(cue)
                    if self.wanted is cue:
                        # Nobody said what comes next: hold rather than repeat the item.
                        self.wanted = Cue(
                            cue.generation, SourceKind.SLATE, cue.reason, slate=Slate(HOLD_HEADING)
                        )
            await self._finish_encoder()
        except OSError as exc:
            self.alarm = f"Cannot write segments: {exc}"
            logger.error("playout stopped: %s", self.alarm)
        finally:
            await self.encoder.stop()
            with contextlib.suppress(OSError, ValidationError):
                if self.publisher is not None:
                    # The last segments, the playlists with EXT-X-ENDLIST, the replay lists.
                    await asyncio.to_thread(self.publisher.finish)
                self._write_subtitles(ended=True)
                self._write_master(ended=True)

    async def _finish_encoder(self) -> None:
        """Close the feed and let the encoder flush and write EXT-X-ENDLIST; never restart it."""
        # Through stop(): an encoder that died just now (a signal, say) used to be restarted
        # and then waited for, stdin open, for 15 s of a shutdown.
        await self.encoder.stop(flush_s=ENCODER_FLUSH_S)

    def _slate_source(self, slate: Slate, stem: str) -> FeedSource:
        """Render a slate at the top rung's size and feed it as a looped image."""
        top = self.spec.rungs[0]
        png = render_slate(slate, self.work_dir / f"{stem}.png", top.width, top.height)
        return FeedSource(str(png), is_image=True)

    def _resolve(self, cue: Cue) -> tuple[FeedSource, float | None, str, str]:
        """The feeder source of a cue (with live interpreters), its duration, kind and label."""
        source, duration, kind, label = self._resolve_programme(cue)
        source, label = self._with_interpreters(source, label)
        return source, duration, kind, label

    def _with_interpreters(self, source: FeedSource, label: str) -> tuple[FeedSource, str]:
        """Give each connected live interpreter their language, whatever is on air."""
        live = self.interpreters()
        self._live_interpreters = live
        if not any(live):
            return source, label
        recorded = source.language_files
        # A live interpreter wins over the item's recorded interpretation; a language
        # with neither keeps the floor (or the silence of a slate).
        files = tuple(
            (live[k] if k < len(live) else None) or (recorded[k] if k < len(recorded) else None)
            for k in range(len(self.spec.languages))
        )
        codes = [lang.code for lang, url in zip(self.spec.languages, live, strict=False) if url]
        return replace(source, language_files=files), f"{label} + interpreters {', '.join(codes)}"

    def _resolve_programme(self, cue: Cue) -> tuple[FeedSource, float | None, str, str]:
        """The feeder source of a cue before interpreters, its duration, kind and label."""
        if cue.source is SourceKind.LIVE:
            live = self.live_source()
            if live is not None:
                return live, None, "live", "Live input"
            slate = Slate(HOLD_HEADING, ("Waiting for the live input",))
            return (
                self._slate_source(slate, "live_missing"),
                LIVE_RETRY_S,
                "fallback",
                "Live input missing",
            )
        if cue.source is SourceKind.FILE and cue.path is not None:
            try:
                info = probe(Path(cue.path))
                languages = dict(cue.audio_paths)
                files = tuple(languages.get(lang.code) for lang in self.spec.languages)
                source = FeedSource(
                    cue.path,
                    has_video=info.video is not None,
                    audio_tracks=len(info.audio),
                    language_files=files if any(files) else (),
                )
                return source, cue.duration_s, "file", Path(cue.path).name
            except ValidationError as exc:
                logger.warning("item %s cannot play (%s); slate instead", cue.item_id, exc.message)
                if cue.item_id is not None:
                    self.fallbacks.append(cue.item_id)
                return (
                    self._slate_source(TECHNICAL_SLATE, f"fallback_{cue.item_id}"),
                    cue.duration_s,
                    "fallback",
                    "Technical slate (bad file)",
                )
        slate = cue.slate or TECHNICAL_SLATE
        source = self._slate_source(slate, f"slate_{cue.generation}")
        if slate.countdown_to is not None:
            # The clock ticks in the feeder (drawtext), counting from what is left right now.
            remaining = (slate.countdown_to - datetime.now(UTC)).total_seconds()
            clock = self.work_dir / f"clock_{cue.generation}.txt"
            clock.write_text(countdown_text(remaining), encoding="utf-8")
            source = replace(source, clock_file=str(clock))
        return (
            source,
            cue.duration_s,
            "slate",
            slate.heading,
        )

    async def _play(self, cue: Cue) -> bool:
        """Feed one cue until it ends or is replaced; True when it ended by itself."""
        resume_s = 0.0
        if self._resume is not None and self._resume[0] is cue:
            resume_s = self.programme_s - self._resume[1]
        self._resume = None
        start_s = self.programme_s - resume_s
        source, duration, kind, label = self._resolve(cue)
        if resume_s > 0 and cue.source is not SourceKind.LIVE:
            if duration is not None:
                if duration - resume_s < 1 / self.spec.fps:
                    return True  # it ended just as the interpreters changed
                duration -= resume_s
            source = replace(source, seek_s=self._seek_within(source, resume_s))
        since = self.on_air.since if resume_s > 0 else time.monotonic()
        self.on_air = OnAir(cue, kind, label, since)
        if kind == "file" and resume_s == 0:
            self._collect_cues(cue, start_s)
        sent, replaced = await self._feed(source, duration)
        only_interpreters = (
            replaced and self._interpreters_changed and self.wanted is cue and not self._stopping
        )
        self._interpreters_changed = False
        if only_interpreters:
            # Play the same cue on from here (its subtitles stay placed), so the
            # programme goes on without a jump.
            self._resume = (cue, start_s)
            return False
        if sent == 0 and kind == "file" and not replaced and not self._stopping:
            logger.warning("item %s produced no output; slate instead", cue.item_id)
            if cue.item_id is not None:
                self.fallbacks.append(cue.item_id)
            remaining = duration
            self.on_air = OnAir(cue, "fallback", "Technical slate (no output)", time.monotonic())
            _sent, replaced = await self._feed(
                self._slate_source(TECHNICAL_SLATE, "fallback"), remaining
            )
        if replaced and kind == "file":
            self._trim_cues(start_s, self.programme_s)
        if kind in ("live", "fallback") and cue.source is SourceKind.LIVE:
            return False  # live plays until the producer moves on; look for the input again
        return not replaced and not self._stopping

    async def _feed(self, source: FeedSource, duration: float | None) -> tuple[int, bool]:
        """Copy one feeder's MPEG-TS into the encoder; return (bytes sent, replaced?)."""
        argv = feed_argv(
            self.ffmpeg,
            source,
            self.spec,
            offset_s=self.programme_s,
            duration_s=duration,
            realtime=True,
        )
        feeder = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # Its own session, like the encoder's (supervisor.py): a Ctrl-C must not end the
            # item, which would count as finished and move the programme on at every restart.
            start_new_session=True,
        )
        assert feeder.stdout is not None
        assert feeder.stderr is not None
        clock = TsClock(self.spec.fps)
        sent = 0
        replaced = False

        async def interrupt() -> None:
            nonlocal replaced
            await self._changed.wait()
            replaced = True
            # SIGTERM: ffmpeg stops reading, flushes and closes the TS cleanly.
            with contextlib.suppress(ProcessLookupError):
                feeder.send_signal(signal.SIGTERM)
            await asyncio.sleep(FEEDER_STOP_TIMEOUT_S)
            with contextlib.suppress(ProcessLookupError):
                feeder.kill()

        watcher = asyncio.create_task(interrupt())
        errors_task = asyncio.create_task(feeder.stderr.read())
        try:
            while chunk := await feeder.stdout.read(PIPE_CHUNK):
                clock.feed(chunk)
                await self.encoder.write_stdin(chunk)
                if clock.end_s is not None:
                    # Into which encoder process: a restarted one starts a new timeline.
                    self.feed_clock.fed(clock.end_s - FEED_BASE_S, self.encoder.health.pid)
                sent += len(chunk)
            code = await feeder.wait()
            errors = (await errors_task).decode("utf-8", "replace").strip()
            if code not in (0, 255, -signal.SIGTERM) and not replaced:
                logger.warning("feeder exited %d: %s", code, errors[-500:])
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            if feeder.returncode is None:
                feeder.kill()
                await feeder.wait()
            if not errors_task.done():
                errors_task.cancel()
        if clock.end_s is not None:
            self.programme_s = max(self.programme_s, clock.end_s - FEED_BASE_S)
        return sent, replaced

    def _collect_cues(self, cue: Cue, start_s: float) -> None:
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

    def _trim_cues(self, start_s: float, end_s: float) -> None:
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

    def _seek_within(self, source: FeedSource, resume_s: float) -> float:
        """Where to resume a file: resume_s, or just before its end if it is shorter."""
        if source.is_image or source.live:
            return 0.0
        try:
            length = probe(Path(source.url)).duration_s
        except ValidationError:
            return resume_s
        # Past its end a file gives no frame at all; just before it, tpad and apad fill the slot.
        return min(resume_s, max(0.0, length - 0.5)) if length else resume_s

    async def _interpreter_loop(self) -> None:
        """Restart the feeder when an interpreter joins or leaves, so their sound follows."""
        seen_once: tuple[str | None, ...] | None = None
        while True:
            await asyncio.sleep(1.0)
            now = self.interpreters()
            if self.on_air.cue is None or now == self._live_interpreters:
                seen_once = None
                continue
            if now != seen_once:
                # Wait for a second look: on a loaded machine an ingest's progress report
                # can come late once, and each restart costs the feeder a probe.
                seen_once = now
                continue
            seen_once = None
            # The same cue plays on (the wanted cue is unchanged) with the new inputs;
            # timestamps continue, so the programme stays one stream.
            logger.info("interpreters changed: the feeder restarts with them")
            self._interpreters_changed = True
            self._changed.set()

    async def _disk_loop(self) -> None:
        """Check the segment folder every few seconds, so a full disk shows in the control room."""
        while True:
            await asyncio.sleep(DISK_CHECK_INTERVAL_S)
            problem = await asyncio.to_thread(
                disk_problem, self.output_dir, min_free_bytes=self.min_free_bytes
            )
            if problem != self.alarm:
                if problem is not None:
                    logger.error("playout alarm: %s", problem)
                else:
                    logger.info("playout alarm cleared")
            self.alarm = problem

    async def _subtitle_loop(self) -> None:
        """Write subtitle segments as the encoder's output passes them."""
        while True:
            await asyncio.sleep(self.spec.segment_s / 2)
            with contextlib.suppress(OSError):
                self._write_subtitles(ended=False)

    def _write_subtitles(self, *, ended: bool) -> None:
        """Write subtitle segments up to what the encoder has output, and their playlists."""
        if not self.cues:
            return
        until_s = self.programme_s if ended else self.encoder.health.out_time_s
        if not ended:
            until_s = (until_s // self.spec.segment_s) * self.spec.segment_s
        if until_s <= 0:
            return
        count = segment_count(until_s, self.spec.segment_s)
        if self._mpegts_base is None:
            self._mpegts_base = self._find_mpegts_base()
            if self._mpegts_base is None:
                return
        base = self._mpegts_base
        for code, cues in self.cues.items():
            folder = subtitle_dir(code)
            for index in range(count):
                name = f"{folder}/{segment_name(index)}"
                if not self.store.exists(name):  # published segments never change
                    self.store.put(
                        name, segment_text(cues, index, self.spec.segment_s, base).encode()
                    )
            playlist = media_playlist(
                until_s,
                self.spec.segment_s,
                ended=ended,
                window_segments=self.spec.window_segments,
                date_of=self.feed_clock.segment_date,
            )
            self.store.put(f"{folder}/{MEDIA_PLAYLIST_NAME}", playlist.encode())
            if ended:
                vod = media_playlist(
                    until_s, self.spec.segment_s, ended=True, date_of=self.feed_clock.segment_date
                )
                self.store.put(f"{folder}/{VOD_PLAYLIST_NAME}", vod.encode())

    def _find_mpegts_base(self) -> int | None:
        """The 90 kHz timestamp of programme time 0 in the media segments (None: not yet known)."""
        rung = self.spec.rungs[0].name
        # Read the first segment itself: opening the live playlist would wait for its end.
        first = self.store.get(f"{rung}/seg_00000.{self.spec.segment_extension}")
        if first is None:
            return None
        init = (
            self.store.get(f"{rung}/init_{rung}.mp4") or b""
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
        return 126000 if self.spec.container == "ts" else 0

    def _write_master(self, *, ended: bool = False) -> None:
        """Rewrite master.m3u8 with ffmpeg's exact CODECS (when known); the replay once ended."""
        ffmpeg_master = self.store.get(FFMPEG_MASTER_NAME)
        codecs = codecs_from_ffmpeg_master(ffmpeg_master.decode()) if ffmpeg_master else {}
        self._codecs_known = bool(codecs)
        self.store.put(MASTER_NAME, master_playlist(self.spec, codecs, ended=ended).encode())


def segment_age_s(output_dir: Path, spec: LadderSpec) -> float | None:
    """Seconds since the encoder last rewrote the top rung's playlist (a new segment), or None."""
    try:
        mtime = os.stat(output_dir / spec.rungs[0].name / ENCODER_PLAYLIST_NAME).st_mtime
    except OSError:
        return None
    return max(0.0, time.time() - mtime)


def health_view(health: PlayoutHealth, segment_age: float | None) -> dict[str, Any]:
    """The control room's JSON view of a playout's health."""
    enc = health.encoder
    on_air = health.on_air
    return {
        "encoder_running": enc.running,
        "speed": enc.speed,
        "fps": enc.fps,
        "dropped_frames": enc.drop_frames,
        "duplicated_frames": enc.dup_frames,
        "restarts": enc.restarts,
        "last_error": enc.last_error,
        "segment_age_s": None if segment_age is None else round(segment_age, 1),
        "programme_s": round(health.programme_s, 1),
        "on_air": {
            "source": on_air.source,
            "label": on_air.label,
            "item_id": on_air.cue.item_id if on_air.cue else None,
            "for_s": round(time.monotonic() - on_air.since, 1) if on_air.since else 0,
        },
        "alarm": health.alarm,
        "fallback_items": health.fallbacks,
    }
