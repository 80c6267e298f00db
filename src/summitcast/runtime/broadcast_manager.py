"""BroadcastManager: runs one playout (and its ingest) per session on air, as the database says.

The producer's buttons only change rows (``summitcast.services.broadcast``);
the manager polls the rows of active sessions, starts a ``SessionPlayout`` for
each, sends it the new cue when the row's generation changes, and stops it
when the session ends. A restarted app therefore picks its sessions up again,
and a button pressed on another app node reaches the node with the encoders.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import imageio_ffmpeg

from summitcast.config import Settings
from summitcast.domain.broadcast import BroadcastStatus, Cue
from summitcast.errors import ConfigurationError
from summitcast.media.broadcast import SessionPlayout, health_view, segment_age_s
from summitcast.media.feed_clock import SessionClock
from summitcast.media.ingest import IngestPorts, SessionIngest, free_port
from summitcast.media.ladder import (
    DEFAULT_RUNGS,
    MEDIA_PLAYLIST_NAME,
    AudioLanguage,
    LadderSpec,
    Rung,
    SubtitleTrack,
    live_playlists,
)
from summitcast.media.recording import write_recordings
from summitcast.media.segment_store import InMemorySegmentStore, SegmentStore, SessionStores
from summitcast.presence import MemoryPubSub, PubSub
from summitcast.runtime.encoder_lease import EncoderLease, holder_id
from summitcast.runtime.health_board import PUBLISH_INTERVAL_S, HealthBoard
from summitcast.runtime.periodic import Periodic, Reconciler
from summitcast.services import broadcast as service
from summitcast.services.broadcast_control import language_name
from summitcast.storage.database import Database
from summitcast.storage.leases import SqlLeases

logger = logging.getLogger(__name__)

RECORDING_WAIT_S = 60.0  # at shutdown, let remuxes of just-ended sessions finish this long
SMALL_RUNGS = (Rung("360p", 640, 360, 800, 96), Rung("240p", 426, 240, 400, 64))
# A redundant encoder joining a session starts its output on a boundary of the session's
# clock at least this far ahead: time to start the encoder before the first frame is due.
JOIN_LEAD_S = 1.0


def ladder_for(settings: Settings, plan: service.BroadcastPlan) -> LadderSpec:
    """The ladder of one session: the configured rungs, the summit's languages, its subtitles."""
    codes = list(dict.fromkeys(plan.languages)) or ["en"]
    return LadderSpec(
        rungs=DEFAULT_RUNGS if settings.broadcast_ladder == "default" else SMALL_RUNGS,
        fps=settings.broadcast_fps,
        preset=settings.broadcast_preset,
        languages=tuple(
            AudioLanguage(code, language_name(code), default=i == 0) for i, code in enumerate(codes)
        ),
        subtitles=tuple(
            SubtitleTrack(code, language_name(code)) for code in plan.subtitle_languages
        ),
    )


@dataclass
class SessionRuntime:
    """One session's running playout and ingest."""

    plan: service.BroadcastPlan
    spec: LadderSpec
    store: SegmentStore
    playout: SessionPlayout
    ingest: SessionIngest | None
    slot: int
    generation: int
    # One audio-only ingest per ladder language (None where its ports could not open).
    interpreters: list[SessionIngest | None]


class BroadcastManager:
    """Keeps a playout running for every session whose broadcast is active."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        *,
        ffmpeg: str | None = None,
        poll_s: float = 0.5,
        pubsub: PubSub | None = None,
        stores: SessionStores | None = None,
    ) -> None:
        self.settings = settings
        # Where each session's HLS is stored and served from (the app shares it with the
        # HLS origin): the local segment folder, which ffmpeg writes into directly (no
        # copy), or memory.
        self.segment_stores = stores or SessionStores(
            settings.segment_store, settings.effective_segment_dir, settings.encoder_name
        )
        # Health of sessions on air, published by the node with the encoders, read by all.
        self.board = HealthBoard(pubsub or MemoryPubSub())
        self._health = Periodic("health-publish", self._publish_health, PUBLISH_INTERVAL_S)
        self.database = database
        self.ffmpeg = ffmpeg or imageio_ffmpeg.get_ffmpeg_exe()
        self.poll_s = poll_s
        self.runtimes: dict[int, SessionRuntime] = {}
        # Every poll_s, or at once when kicked.
        self._sync = Reconciler("broadcast manager", self.sync, poll_s, logger)
        self.recordings: set[asyncio.Task[None]] = set()  # MP4 remuxes of ended sessions
        # Redundant encoders (docs/deploy.md): every broadcast node plays every session
        # in lockstep on the session's clock; the lease holder is the primary.
        self.encoders = tuple(settings.encoder_names)
        self.lease: EncoderLease | None = None
        if self.encoders:
            self.lease = EncoderLease(
                SqlLeases(database.engine),
                holder_id(settings.encoder_name or "node", settings.node_name),
                settings.encoder_lease_s,
            )

    async def start(self) -> None:
        """Listen for stream health; poll and publish health only if this node runs encoders."""
        await self.board.start()
        if self.settings.broadcast_workers:
            if self.lease is not None:
                self.lease.start()
            self._sync.task.start()
            self._health.start()

    async def stop(self) -> None:
        """Stop every playout and ingest this node runs."""
        # Graceful: a sync half-way through starting an encoder finishes first.
        await self._sync.task.stop(graceful=True)
        await self._health.stop()
        await self.board.stop()
        if self.lease is not None:
            await self.lease.stop()  # the backup takes over at its next renewal
        # Sessions still on air are resumed by the next start, so they get no recording now.
        await asyncio.gather(*(self._stop_runtime(sid) for sid in list(self.runtimes)))
        if self.recordings:
            _done, pending = await asyncio.wait(self.recordings, timeout=RECORDING_WAIT_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def kick(self) -> None:
        """Look at the database now (a producer just pressed a button)."""
        self._sync.task.wake()

    @property
    def last_error(self) -> str | None:
        """Why the last look at the database failed (None once one succeeds)."""
        return self._sync.last_error

    def _read_plans(self) -> list[service.BroadcastPlan]:
        with self.database.session() as db:
            return service.active_plans(db)

    async def sync(self) -> None:
        """Bring the running playouts in line with the database."""
        plans = {p.session_id: p for p in await asyncio.to_thread(self._read_plans)}
        for session_id in [sid for sid in self.runtimes if sid not in plans]:
            await self._stop_runtime(session_id, ended=True)
        for session_id, plan in plans.items():
            runtime = self.runtimes.get(session_id)
            if runtime is None:
                runtime = await self._start_runtime(plan)
            elif runtime.ingest is not None and plan.ingest_key != runtime.ingest.key:
                await self._restart_ingest(runtime, plan.ingest_key)
            runtime.plan = plan
            if plan.state.generation != runtime.generation and plan.cue is not None:
                runtime.generation = plan.state.generation
                runtime.playout.cue(plan.cue, on_air_at=_on_air_at(plan))

    def _free_slot(self) -> int:
        used = {r.slot for r in self.runtimes.values()}
        # Capped: past broadcast_max_sessions the ports would run into another range, which
        # Settings keeps apart only up to the cap (Settings.port_ranges).
        free = next((i for i in range(self.settings.broadcast_max_sessions) if i not in used), None)
        if free is None:
            raise ConfigurationError(
                f"All {self.settings.broadcast_max_sessions} broadcast slots of this node are on "
                "air; raise broadcast_max_sessions (Settings keeps the port ranges apart)."
            )
        return free

    def _ports(self, slot: int) -> IngestPorts:
        return IngestPorts(
            rtmp=self.settings.ingest_rtmp_port + slot,
            srt=self.settings.ingest_srt_port + slot,
            rtmp_upstream=free_port(),
            rtmp_relay=free_port(socket.SOCK_DGRAM),
            srt_relay=free_port(socket.SOCK_DGRAM),
        )

    def store_for(self, summit_slug: str, session_id: int) -> SegmentStore:
        """The store a session's HLS is served from (read-only use: creates nothing)."""
        # Not found (memory a playout of this node never filled): an empty store.
        return self.segment_stores.find(summit_slug, session_id) or InMemorySegmentStore()

    def _work_dir(self, plan: service.BroadcastPlan) -> Path:
        return self.settings.data_dir / "playout" / plan.summit_slug / str(plan.session_id)

    async def _start_runtime(self, plan: service.BroadcastPlan) -> SessionRuntime:
        spec = ladder_for(self.settings, plan)
        if self.segment_stores.kind == "local":
            folder = self.segment_stores.folder(plan.summit_slug, plan.session_id)
        else:
            folder = self._work_dir(plan) / "hls"  # ffmpeg's output, published to the store
        top = folder / spec.rungs[0].name / MEDIA_PLAYLIST_NAME
        if top.is_file() and "#EXT-X-ENDLIST" in top.read_text(encoding="utf-8", errors="replace"):
            # A session started again after it ended: keep the finished recording aside.
            folder.rename(folder.with_name(f"{folder.name}.ended-{int(time.time())}"))
        elif self.encoders and folder.is_dir():
            # A redundant encoder rejoining: it starts afresh on the session's clock (its
            # numbers jump to the session's), its earlier output kept aside.
            folder.rename(folder.with_name(f"{folder.name}.left-{int(time.time())}"))
        # An uncreatable folder still gets its store: the playout waits on the disk alarm.
        _can_create(folder)
        store = self.segment_stores.open(plan.summit_slug, plan.session_id)
        slot = self._free_slot()
        opened = SessionIngest(
            self.ffmpeg, self.settings.ingest_host, self._ports(slot), plan.ingest_key
        )
        ingest: SessionIngest | None = opened
        try:
            await opened.start()
        except OSError as exc:
            logger.error("ingest of session %d cannot listen: %s", plan.session_id, exc.strerror)
            await opened.stop()
            ingest = None
        session_id = plan.session_id
        playout = SessionPlayout(
            self.ffmpeg,
            spec,
            store,
            self._work_dir(plan),
            on_cue_finished=lambda cue: self._cue_finished(session_id, cue),
            output_dir=folder,
            live_source=ingest.live_source if ingest is not None else (lambda: None),
            interpreters=lambda: self._interpreter_urls(session_id),
            subtitle_languages=spec_subtitles(spec),
            min_free_bytes=self.settings.broadcast_min_free_mb * 1024 * 1024,
            encoders=self.encoders,
            session_clock=self._session_clock(plan, spec) if self.encoders else None,
        )
        runtime = SessionRuntime(
            plan, spec, store, playout, ingest, slot, generation=-1, interpreters=[]
        )
        self.runtimes[session_id] = runtime
        await playout.start()
        # After the playout: the first segments should not wait for listeners needed only live.
        runtime.interpreters = await self._open_interpreters(spec, slot, plan.ingest_key)
        logger.info("session %d on air (slot %d)", session_id, slot)
        return runtime

    def _session_clock(self, plan: service.BroadcastPlan, spec: LadderSpec) -> SessionClock:
        """The session's shared clock: its epoch is when the broadcast started (in the database)."""
        started = plan.state.started_at or plan.changed_at
        epoch = started.timestamp() if started is not None else time.time()
        return SessionClock.joining(epoch, spec.segment_s, time.time(), JOIN_LEAD_S)

    def _interpreter_ports(self, slot: int, index: int) -> IngestPorts:
        offset = 16 * slot + index  # up to 16 languages per session
        return IngestPorts(
            rtmp=self.settings.ingest_interpreter_rtmp_port + offset,
            srt=self.settings.ingest_interpreter_srt_port + offset,
            rtmp_upstream=free_port(),
            rtmp_relay=free_port(socket.SOCK_DGRAM),
            srt_relay=free_port(socket.SOCK_DGRAM),
        )

    async def _open_interpreters(
        self, spec: LadderSpec, slot: int, key: str
    ) -> list[SessionIngest | None]:
        """Audio-only listeners, one per language, accepting the session's key."""
        opened: list[SessionIngest | None] = []
        for index, language in enumerate(spec.languages[:16]):
            ingest = SessionIngest(
                self.ffmpeg,
                self.settings.ingest_host,
                self._interpreter_ports(slot, index),
                key,
                audio_only=True,
            )
            try:
                await ingest.start()
            except OSError as exc:
                logger.error("interpreter ingest %s cannot listen: %s", language.code, exc.strerror)
                await ingest.stop()
                opened.append(None)
                continue
            opened.append(ingest)
        return opened

    def _interpreter_urls(self, session_id: int) -> tuple[str | None, ...]:
        """Per language, the relay of the interpreter sending right now, or None."""
        runtime = self.runtimes.get(session_id)
        if runtime is None:
            return ()
        return tuple(i.relay_url() if i is not None else None for i in runtime.interpreters)

    async def _restart_ingest(self, runtime: SessionRuntime, key: str) -> None:
        """A rotated key: the old listeners (and any studio on them) go, new ones open."""
        for interpreter in runtime.interpreters:
            if interpreter is not None:
                await interpreter.stop()
        runtime.interpreters = await self._open_interpreters(runtime.spec, runtime.slot, key)
        if runtime.ingest is not None:
            await runtime.ingest.stop()
        ports = runtime.ingest.ports if runtime.ingest else self._ports(runtime.slot)
        ingest = SessionIngest(self.ffmpeg, self.settings.ingest_host, ports, key)
        await ingest.start()
        runtime.ingest = ingest
        runtime.playout.live_source = ingest.live_source

    async def _stop_runtime(self, session_id: int, *, ended: bool = False) -> None:
        runtime = self.runtimes.pop(session_id, None)
        if runtime is None:
            return
        # All at once: each listener may take its grace period to end.
        ingests = [i for i in (runtime.ingest, *runtime.interpreters) if i is not None]
        await asyncio.gather(runtime.playout.stop(), *(ingest.stop() for ingest in ingests))
        logger.info("session %d off air", session_id)
        if ended and (self.lease is None or self.lease.primary):
            # Redundant encoders: only the primary writes the recordings.
            task = asyncio.create_task(self._record(runtime), name=f"recording-{session_id}")
            self.recordings.add(task)
            task.add_done_callback(self.recordings.discard)

    async def _record(self, runtime: SessionRuntime) -> None:
        """Write the downloadable MP4s of an ended session (in the background: it is only I/O)."""
        try:
            # From ffmpeg's local output, which every store is filled from.
            made = await write_recordings(self.ffmpeg, runtime.playout.output_dir, runtime.spec)
        except OSError as exc:
            logger.error("recordings of session %d failed: %s", runtime.plan.session_id, exc)
            return
        logger.info(
            "session %d recorded: %s", runtime.plan.session_id, ", ".join(r.path for r in made)
        )

    def _report_finished(self, session_id: int, generation: int) -> service.BroadcastPlan | None:
        with self.database.session() as db:
            return service.item_finished(db, session_id, generation)

    async def _cue_finished(self, session_id: int, cue: Cue) -> None:
        """An item ended by itself: record it and put what follows on air at once."""
        plan = await asyncio.to_thread(self._report_finished, session_id, cue.generation)
        runtime = self.runtimes.get(session_id)
        if plan is None or runtime is None or plan.cue is None:
            return
        if plan.state.generation != runtime.generation:
            runtime.generation = plan.state.generation
            runtime.plan = plan
            runtime.playout.cue(plan.cue, on_air_at=_on_air_at(plan))

    async def _publish_health(self) -> None:
        """Publish the health of every session this node runs (once a second, by Periodic)."""
        if self.lease is not None and not self.lease.primary:
            # Both redundant encoders run every session: control rooms on other nodes show
            # the primary's view only (a backup's alternating with it would flicker).
            return
        views = {sid: view for sid in list(self.runtimes) if (view := self.local_health(sid))}
        if views:
            await self.board.publish(views)

    def health(self, session_id: int) -> dict[str, Any] | None:
        """The control room's view of one session: from this node, else as another published it."""
        return self.local_health(session_id) or self.board.get(session_id)

    def local_health(self, session_id: int) -> dict[str, Any] | None:
        """The health view of a session whose playout runs on this node, else None."""
        runtime = self.runtimes.get(session_id)
        if runtime is None:
            return None
        age = segment_age_s(runtime.playout.output_dir, runtime.spec)
        view = health_view(runtime.playout.health, age)
        # Players may start once every rendition the master names has its live playlist:
        # the top rung's first segment is not enough, a lower rung's playlist can follow
        # it by a publisher pass, and a screen asking for it then logs a 404.
        view["playable"] = all(runtime.store.exists(p) for p in live_playlists(runtime.spec))
        view["node"] = self.board.node
        if self.lease is not None:
            view["encoder"] = {
                "name": self.settings.encoder_name,
                "role": self.lease.role,
                "node": self.settings.node_name or self.board.node,
            }
        view["slot"] = runtime.slot  # another node derives the ingest ports from it
        ingest = runtime.ingest
        view["input"] = {
            "listening": ingest is not None,
            "receiving": ingest.receiving() if ingest else None,
            "bitrate_kbps": ingest.bitrate_kbps() if ingest else None,
            "refused": ingest.gate.refused if ingest else 0,
        }
        pairs = list(zip(runtime.spec.languages, runtime.interpreters, strict=False))
        view["interpreters"] = {
            language.code: interpreter.receiving() if interpreter is not None else None
            for language, interpreter in pairs
        }
        # Publishers the key gate turned away, per language (a wrong or old key).
        view["interpreters_refused"] = {
            language.code: interpreter.gate.refused if interpreter is not None else 0
            for language, interpreter in pairs
        }
        return view

    def ingest_urls(self, session_id: int, key: str) -> dict[str, str]:
        """The URLs a studio sends to (key included: for the producer's eyes only)."""
        runtime = self.runtimes.get(session_id)
        # On a node without the encoders, the slot and languages come from published health.
        remote = self.board.get(session_id) if runtime is None else None
        slot = runtime.slot if runtime is not None else int((remote or {}).get("slot", 0))
        hosts = self.settings.encoder_ingest_hosts or [
            self.settings.ingest_public_host
            or urlsplit(self.settings.base_url).hostname
            or "127.0.0.1"
        ]
        host = hosts[0]
        rtmp_port = self.settings.ingest_rtmp_port + slot
        srt_port = self.settings.ingest_srt_port + slot
        urls = {
            "rtmp_server": f"rtmp://{host}:{rtmp_port}/live",
            "rtmp_url": f"rtmp://{host}:{rtmp_port}/live/{key}",
            "srt_url": f"srt://{host}:{srt_port}?passphrase={key}&pbkeylen=16",
        }
        # Redundant encoders: a studio pushes the same signal to every encoder's ingest
        # (both listen with the same key), so either can carry the session alone.
        for name, other in zip(self.settings.encoder_names[1:], hosts[1:], strict=False):
            urls[f"encoder_{name}_rtmp_url"] = f"rtmp://{other}:{rtmp_port}/live/{key}"
            urls[f"encoder_{name}_srt_url"] = (
                f"srt://{other}:{srt_port}?passphrase={key}&pbkeylen=16"
            )
        if runtime is not None:
            codes = [language.code for language in runtime.spec.languages]
        else:
            codes = [str(code) for code in (remote or {}).get("interpreters", {})]
        for index, code in enumerate(codes[:16]):
            offset = 16 * slot + index
            i_rtmp = self.settings.ingest_interpreter_rtmp_port + offset
            i_srt = self.settings.ingest_interpreter_srt_port + offset
            urls[f"interpreter_{code}_rtmp_url"] = f"rtmp://{host}:{i_rtmp}/live/{key}"
            urls[f"interpreter_{code}_srt_url"] = (
                f"srt://{host}:{i_srt}?passphrase={key}&pbkeylen=16"
            )
        return urls


def _on_air_at(plan: service.BroadcastPlan) -> float:
    """When the plan's cue went on air, for a redundant encoder that plays it late."""
    if plan.state.status is BroadcastStatus.COUNTDOWN or plan.changed_at is None:
        # A countdown's length is counted from when its plan is read (cue_for), not set.
        return time.time()
    return plan.changed_at.timestamp()


def spec_subtitles(spec: LadderSpec) -> tuple[str, ...]:
    """The subtitle language codes of a ladder."""
    return tuple(track.code for track in spec.subtitles)


def _can_create(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return True
