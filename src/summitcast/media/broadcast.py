"""A session on air under a producer's control: one ladder encoder, one feeder at a time.

The one playout engine. A live session changes its mind: the producer takes the
next item early, holds, cuts to the studio. ``SessionPlayout`` keeps the one
encoder running and swaps the feeder in front of it (``summitcast.media.playout``).
A replaced feeder gets SIGTERM, so ffmpeg finishes the MPEG-TS packets it is
writing and the encoder never sees half a frame; the timestamps actually sent are
read from the stream (``TsClock``), so the next feeder continues exactly where the
last one stopped and the programme stays one stream with continuous timestamps.
What the session publishes goes through one writer (``summitcast.media.session_output``).
A fixed plan (tests, benchmarks) is played by cueing its steps in turn (``play_steps``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from summitcast.domain.broadcast import HOLD_HEADING, Cue
from summitcast.domain.playout import PlayoutStep, Slate, SourceKind
from summitcast.errors import ValidationError
from summitcast.media.feed_clock import FeedClock, SessionClock
from summitcast.media.ladder import (
    ENCODER_PLAYLIST_NAME,
    LadderInput,
    LadderSpec,
    ladder_argv,
)
from summitcast.media.playout import (
    TECHNICAL_SLATE,
    FeedSource,
    countdown_text,
    feed_argv,
    run_feeder,
)
from summitcast.media.probe import probe
from summitcast.media.publisher import SegmentPublisher
from summitcast.media.segment_store import SegmentStore
from summitcast.media.session_output import SessionOutput
from summitcast.media.slate import render_slate
from summitcast.media.supervisor import EncoderHealth, Supervisor

logger = logging.getLogger(__name__)

LIVE_RETRY_S = 1.0  # slate chunk played while the live input is missing, then look again
# After the feed ends the encoder writes its last segments and playlists (well under a
# second on a 2-core machine); longer than this it is stuck and gets SIGTERM.
ENCODER_FLUSH_S = 5.0
DISK_CHECK_INTERVAL_S = 5.0
MIN_FREE_BYTES = 200 * 1024 * 1024  # below this the control room shows a disk alarm


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
        realtime: bool = True,
        encoders: tuple[str, ...] = (),
        session_clock: SessionClock | None = None,
    ) -> None:
        self.ffmpeg = ffmpeg
        self.spec = spec
        self.work_dir = work_dir
        # Redundant encoders: output starts on the session clock, cues play where it says.
        self.session_clock = session_clock
        self._on_air_at: tuple[Cue, float] | None = None  # a cue, when it went on air
        # ffmpeg writes here; the store is this folder itself (the default: no copying)
        # or somewhere else, which the publisher fills from here in a safe order.
        self.output_dir = output_dir or store.local_folder() or work_dir / "hls"
        # When each programme frame reached the encoder: the publisher dates segments by it.
        self.feed_clock = FeedClock(spec.fps)
        # The one writer of the store: master, playlists, subtitles, segments.
        self.output = SessionOutput(
            spec,
            store,
            self.output_dir,
            self.feed_clock,
            subtitle_languages,
            encoders=encoders,
            session_clock=session_clock,
        )
        self.on_cue_finished = on_cue_finished
        self.live_source = live_source
        # Per ladder language: the relay URL of a live interpreter sending now, or None.
        self.interpreters = interpreters
        self._live_interpreters: tuple[str | None, ...] = ()
        # Set when the feeder stops only because interpreters came or went: the same cue
        # then resumes where it was (``_resume``: the cue and its programme start).
        self._interpreters_changed = False
        self._resume: tuple[Cue, float] | None = None
        self.min_free_bytes = min_free_bytes
        # False: feeders read files as fast as the encoder takes them (tests, benchmarks).
        self.realtime = realtime
        self.wanted: Cue | None = None
        self.on_air = OnAir()
        self.alarm: str | None = None
        self.fallbacks: list[int] = []
        self.programme_s = 0.0
        self._changed = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._helpers: list[asyncio.Task[None]] = []  # output, disk and interpreter watchers
        self.encoder = self._encoder()

    def _encoder(self) -> Supervisor:
        """The ladder encoder reading the feed on its stdin, restarted if it dies."""
        # The feed's streams are known, so probing is cut from ffmpeg's default 5 s
        # (which would hold the first segment back by as much) to about 1 s.
        probe_options = ("-f", "mpegts", "-probesize", "1000000", "-analyzeduration", "1000000")
        feed = [LadderInput("pipe:0", probe_options)]
        out = self.output_dir
        # A session resumed after an app restart continues the playlists already there.
        resume = (out / self.spec.rungs[0].name / ENCODER_PLAYLIST_NAME).is_file()
        return Supervisor(
            ladder_argv(self.ffmpeg, feed, self.spec, out, resume=resume),
            name="ladder",
            stdin_pipe=True,
            restart_on_success=False,
            restart_argv=ladder_argv(self.ffmpeg, feed, self.spec, out, resume=True),
        )

    @property
    def publisher(self) -> SegmentPublisher:
        """The writer of the session's store (ffmpeg's output, our files)."""
        return self.output.publisher

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

    def cue(self, cue: Cue, *, on_air_at: float | None = None) -> None:
        """Put cue on air now, replacing whatever plays.

        on_air_at (seconds since the epoch): when the session put it on air; with a
        session clock the cue is played from where it is by then (a late joiner seeks).
        """
        self.wanted = cue
        self._on_air_at = None if on_air_at is None else (cue, on_air_at)
        self._changed.set()

    async def start(self) -> None:
        """Start playing in the background (the first cue may come later)."""
        self._task = asyncio.create_task(self._run(), name="session-playout")

    def end(self) -> None:
        """End the programme now, without waiting: from on_cue_finished, no hold slate follows."""
        self._stopping = True
        self._changed.set()

    async def wait(self) -> None:
        """Wait until the programme has ended (end(), stop(), or the output became unwritable)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        """Stop feeding, let the encoder close its playlists, and stop it."""
        self.end()
        if self._task is not None:
            await self._task
        for task in self._helpers:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _wait_for_disk(self) -> None:
        """Wait until the output folder is writable (a low disk only raises the alarm)."""
        while not self._stopping:
            self.alarm = disk_problem(self.output_dir, min_free_bytes=self.min_free_bytes)
            if self.alarm is None or "left on the disk" in self.alarm:
                return
            # No encoder while the folder is unwritable: it would only crash and restart.
            logger.error("playout waits: %s", self.alarm)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), DISK_CHECK_INTERVAL_S)
            if not self._stopping:
                self._changed.clear()

    async def _run(self) -> None:
        """Wait for a writable folder, start the encoder, then feed cue after cue."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        await self._wait_for_disk()
        if self._stopping:
            return
        try:
            self.output.start()
            await self.encoder.start()
            if self.session_clock is not None:
                # The first frame is fed on the session's segment boundary, so this node's
                # segment k is every node's segment first_sequence + k.
                await asyncio.sleep(max(0.0, self.session_clock.start_wall - time.time()))
            self._helpers = [
                asyncio.create_task(self.output.run(lambda: self.encoder.health.out_time_s)),
                # Its own task: a hold slate or a live input may stay on air for hours.
                asyncio.create_task(self._disk_loop()),
                asyncio.create_task(self._interpreter_loop()),
            ]
            await self._cue_after_cue()
            await self._finish_encoder()
        except OSError as exc:
            self.alarm = f"Cannot write segments: {exc}"
            logger.error("playout stopped: %s", self.alarm)
        finally:
            await self.encoder.stop()
            with contextlib.suppress(OSError, ValidationError):
                await asyncio.to_thread(self.output.finish, self.programme_s)

    async def _cue_after_cue(self) -> None:
        """Play the wanted cue; when one ends by itself, report it and hold unless told."""
        while not self._stopping:
            cue = self.wanted
            if cue is None:
                await self._changed.wait()
                self._changed.clear()
                continue
            self._changed.clear()
            ended_by_itself = await self._play(cue)
            if not self.output.codecs_known:
                self.output.write_master()
            if ended_by_itself and self.wanted is cue and not self._stopping:
                await self.on_cue_finished(cue)
                if self.wanted is cue:
                    # Nobody said what comes next: hold rather than repeat the item.
                    self.wanted = Cue(
                        cue.generation, SourceKind.SLATE, cue.reason, slate=Slate(HOLD_HEADING)
                    )

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
        resume_s = late_s = 0.0
        if self._resume is not None and self._resume[0] is cue:
            resume_s = self.programme_s - self._resume[1]
        else:
            late_s = self._late_by(cue)
        self._resume = None
        start_s = self.programme_s - resume_s - late_s
        source, duration, kind, label = self._resolve(cue)
        seek_s = resume_s + late_s
        if seek_s > 0 and cue.source is not SourceKind.LIVE:
            if duration is not None:
                if duration - seek_s < 1 / self.spec.fps:
                    return True  # it ended just as the interpreters changed (or before we came)
                duration -= seek_s
            source = replace(source, seek_s=self._seek_within(source, seek_s))
        since = self.on_air.since if resume_s > 0 else time.monotonic()
        self.on_air = OnAir(cue, kind, label, since)
        if kind == "file" and resume_s == 0:
            self.output.collect_cues(cue, start_s)
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
            self.output.trim_cues(start_s, self.programme_s)
        if kind in ("live", "fallback") and cue.source is SourceKind.LIVE:
            return False  # live plays until the producer moves on; look for the input again
        return not replaced and not self._stopping

    def _late_by(self, cue: Cue) -> float:
        """How far into cue the session is where this node's programme stands (0: not late)."""
        if self.session_clock is None or self._on_air_at is None or self._on_air_at[0] is not cue:
            return 0.0
        return max(0.0, self.session_clock.wall_at(self.programme_s) - self._on_air_at[1])

    async def _feed(self, source: FeedSource, duration: float | None) -> tuple[int, bool]:
        """Copy one feeder's MPEG-TS into the encoder; return (bytes sent, replaced?)."""
        argv = feed_argv(
            self.ffmpeg,
            source,
            self.spec,
            offset_s=self.programme_s,
            duration_s=duration,
            realtime=self.realtime,
        )
        fed = await run_feeder(argv, self.encoder, self.feed_clock, self._changed)
        if fed.end_s is not None:
            self.programme_s = max(self.programme_s, fed.end_s)
        return fed.sent, fed.replaced

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


def step_cue(step: PlayoutStep, generation: int) -> Cue:
    """A step of a fixed plan as the cue that plays it."""
    return Cue(
        generation,
        step.source,
        step.reason,
        item_id=step.item_id,
        duration_s=step.duration_s,
        path=step.path,
        slate=step.slate,
        subtitle_paths=(("", step.subtitle_path),) if step.subtitle_path else (),
    )


async def play_steps(playout: SessionPlayout, steps: Sequence[PlayoutStep]) -> None:
    """Play a fixed plan through the playout on air: each step as the last one ends, then stop."""
    if not steps:
        raise ValidationError("nothing to play: the plan is empty")
    cues = [step_cue(step, generation) for generation, step in enumerate(steps)]

    async def next_cue(cue: Cue) -> None:
        if cue.generation + 1 < len(cues):
            playout.cue(cues[cue.generation + 1])
        else:
            playout.end()  # the programme ends with the plan: no hold slate after it

    playout.on_cue_finished = next_cue
    await playout.start()
    playout.cue(cues[0])
    await playout.wait()
    await playout.stop()
