"""The green room's listeners: one RTMP (gated) and one SRT listener per live speaker.

Each speaker's feed is a listener pair (``summitcast.media.listeners``), as a studio's
ingest is. Each listener is one ffmpeg with two outputs: the same loopback MPEG-TS
relay as the studio ingest (``summitcast.media.ingest``), which a feeder reads only once
the producer takes the feed, and a small JPEG preview rewritten a few times a
second, which the control room polls. A speaker sending therefore costs one
small decode, and nothing reaches the programme until the feed is taken.

``GreenRoomManager`` polls the open feeds (``summitcast.services.greenroom``),
runs their listeners, and points each session's playout at the taken feed.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from summitcast.config import Settings
from summitcast.domain.broadcast import ingest_key_matches
from summitcast.domain.playout import SourceKind
from summitcast.media.listeners import ListenerPair, ListenerPorts, free_port, srt_script_input
from summitcast.media.playout import FeedSource
from summitcast.runtime.broadcast_manager import BroadcastManager
from summitcast.runtime.periodic import Reconciler
from summitcast.services import greenroom as service
from summitcast.storage.database import Database

logger = logging.getLogger(__name__)

PREVIEW_WIDTH = 320  # enough to recognise the speaker and check framing, cheap to encode
PREVIEW_NAME = "preview.jpg"


def listener_output_argv(
    relay_port: int, preview: Path, preview_fps: float, level: Path
) -> list[str]:
    """The outputs of a green-room listener: the TS relay, the JPEG preview, the audio level."""
    return [
        "-map",
        "0:v:0?",  # the speaker's picture
        "-map",
        "0:a:0?",  # and their sound
        "-c",
        "copy",  # no re-encode: the ladder encodes once, if the feed is taken
        "-f",
        "mpegts",
        # 7 TS packets per datagram; nobody listening until the feed is taken (unconnected UDP).
        f"udp://127.0.0.1:{relay_port}?pkt_size=1316",
        "-map",
        "0:v:0?",  # the preview is the picture only
        "-vf",
        # A few small frames a second; -2 keeps the aspect ratio with an even height.
        f"fps={preview_fps:g},scale={PREVIEW_WIDTH}:-2",
        "-q:v",
        "5",  # mid JPEG quality: a few KB a frame
        "-update",
        "1",  # overwrite one file rather than numbering frames
        "-atomic_writing",
        "1",  # write to a temporary file and rename: a poll never reads half a JPEG
        "-f",
        "image2",
        str(preview),
        "-map",
        "0:a:0?",  # the sound, measured only (a speaker without one simply has no level)
        "-af",
        # RMS level of each half second (24,000 samples at 48 kHz; reset: per block, not
        # since the start), printed as "lavfi.astats.Overall.RMS_level=-21.1" lines; about
        # 90 bytes a block, and the file starts afresh with each connection. direct=1:
        # unbuffered, or the lines would wait for 32 KiB (minutes) before reaching the file.
        "asetnsamples=n=24000,astats=metadata=1:reset=1,"
        f"ametadata=mode=print:key=lavfi.astats.Overall.RMS_level:direct=1:file={_filter_path(level)}",
        "-f",
        "null",  # nothing to keep but the level lines
        "-",
    ]


def _filter_path(path: Path) -> str:
    """A path as a filter option value: ':' and '\\' escaped for the filtergraph parser."""
    return str(path).replace("\\", "\\\\").replace(":", "\\:").replace(",", "\\,")


def rtmp_listener_argv(
    ffmpeg: str, port: int, relay_port: int, preview: Path, preview_fps: float, level: Path
) -> list[str]:
    """ffmpeg accepting one RTMP publisher on loopback (behind the gate): relay and preview."""
    return [
        ffmpeg,
        "-hide_banner",
        "-nostdin",  # stdin is not ours
        # Overwrite the preview a previous publisher left: without it every restart after
        # the first publisher exits at "File 'rtmp.jpg' already exists" (no reconnect).
        "-y",
        "-loglevel",
        "error",  # errors only: at info ffmpeg would log the stream URL
        "-progress",
        "pipe:1",  # bitrate and timing: "receiving" in the green room
        "-stats_period",
        "1",
        "-listen",
        "1",  # be the RTMP server; the gate in front checks the speaker's key
        "-i",
        f"rtmp://127.0.0.1:{port}/live/stream",  # the gate forwards here; the key is not in it
        *listener_output_argv(relay_port, preview, preview_fps, level),
    ]


def srt_listener_argv(
    ffmpeg: str,
    script: Path,
    relay_port: int,
    preview: Path,
    preview_fps: float,
    level: Path,
) -> list[str]:
    """ffmpeg accepting one SRT caller as the script says (the speaker's key inside it)."""
    return [
        ffmpeg,
        "-hide_banner",
        "-nostdin",
        "-y",  # overwrite the last caller's preview (as the RTMP listener)
        "-loglevel",
        "error",  # at info ffmpeg prints the input URL
        "-progress",
        "pipe:1",
        "-stats_period",
        "1",
        # URL and passphrase from a 0600 script, so the key is in no process's cmdline.
        *srt_script_input(script),
        *listener_output_argv(relay_port, preview, preview_fps, level),
    ]


class SpeakerFeed(ListenerPair):
    """The running listeners of one speaker's feed, with their previews and sound levels."""

    def __init__(
        self,
        ffmpeg: str,
        host: str,
        ports: ListenerPorts,
        key: str,
        folder: Path,
        preview_fps: float,
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        super().__init__(
            host,
            ports,
            key,
            check_key=lambda sent: ingest_key_matches(key, sent),
            rtmp_argv=rtmp_listener_argv(
                ffmpeg,
                ports.rtmp_upstream,
                ports.rtmp_relay,
                folder / "rtmp.jpg",
                preview_fps,
                folder / "rtmp.level",
            ),
            srt_argv=lambda script: srt_listener_argv(
                ffmpeg,
                script,
                ports.srt_relay,
                folder / "srt.jpg",
                preview_fps,
                folder / "srt.level",
            ),
            name="greenroom",
        )
        self.folder = folder

    async def stop(self) -> None:
        """Close both listeners and forget the preview."""
        await super().stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def preview_path(self) -> Path | None:
        """The JPEG of whichever listener is receiving (the last one seen, if none is)."""
        protocol = self.receiving()
        candidates = [protocol] if protocol else ["rtmp", "srt"]
        found = [self.folder / f"{p}.jpg" for p in candidates]
        found = [path for path in found if path.is_file()]
        return max(found, key=lambda p: p.stat().st_mtime) if found else None

    def audio_level_db(self) -> float | None:
        """The speaker's sound level (RMS dBFS of the last half second), while they send."""
        protocol = self.receiving()
        if protocol is None:
            return None
        return last_level(self.folder / f"{protocol}.level")

    def status(self) -> dict[str, Any]:
        """The green room's view of this feed."""
        preview = self.preview_path()
        age = None if preview is None else max(0.0, time.time() - preview.stat().st_mtime)
        protocol = self.receiving()
        health = (self.srt if protocol == "srt" else self.rtmp).health
        return {
            "listening": True,
            "receiving": protocol,
            "bitrate_kbps": health.bitrate_kbps if protocol else None,
            "refused": self.gate.refused,
            "preview_age_s": None if age is None else round(age, 1),
            "audio_level_db": self.audio_level_db(),
        }


LEVEL_TAIL_BYTES = 256  # the last two blocks' lines, whatever the file's length
LEVEL_FRESH_S = 2.0  # an older level means the sound stopped (or the speaker has none)
SILENCE_DB = -99.0  # astats prints "-inf" for digital silence


def last_level(path: Path) -> float | None:
    """The last RMS level ffmpeg printed to path, if it is recent."""
    try:
        if time.time() - path.stat().st_mtime > LEVEL_FRESH_S:
            return None
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - LEVEL_TAIL_BYTES))
            tail = handle.read().decode("ascii", "replace")
    except OSError:
        return None
    for line in reversed(tail.splitlines()):
        _key, sep, value = line.partition("RMS_level=")
        if sep:
            try:
                return max(SILENCE_DB, round(float(value), 1))
            except ValueError:
                return None
    return None


class GreenRoomManager:
    """Keeps listeners open for every open feed and the taken feed wired to its session."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        broadcasts: BroadcastManager,
        *,
        poll_s: float = 0.5,
    ) -> None:
        self.settings = settings
        self.database = database
        self.broadcasts = broadcasts
        self.poll_s = poll_s
        self.feeds: dict[int, SpeakerFeed] = {}
        self.plans: dict[int, service.FeedPlan] = {}
        # Sessions whose playout reads a speaker's feed because of us (session → feed id).
        self.wired: dict[int, int] = {}
        # Every poll_s, or at once when kicked.
        self._sync = Reconciler("green room", self.sync, poll_s, logger)

    async def start(self) -> None:
        """Start polling (only on the node that runs the broadcast workers)."""
        if self.settings.broadcast_workers:
            self._sync.task.start()

    async def stop(self) -> None:
        """Close every listener this node runs."""
        # Graceful: a sync half-way through starting a listener finishes first.
        await self._sync.task.stop(graceful=True)
        await asyncio.gather(*(feed.stop() for feed in self.feeds.values()))
        self.feeds.clear()

    def kick(self) -> None:
        """Have the green room and the broadcast look at the database now (a button was pressed)."""
        self._sync.task.wake()
        self.broadcasts.kick()  # a take or release also cut the session to live or back

    @property
    def last_error(self) -> str | None:
        """Why the last look at the database failed (None once one succeeds)."""
        return self._sync.last_error

    def _read(self) -> list[service.FeedPlan]:
        with self.database.session() as db:
            return service.open_feeds(db)

    def _ports(self, slot: int) -> ListenerPorts:
        return ListenerPorts(
            rtmp=self.settings.greenroom_rtmp_port + slot,
            srt=self.settings.greenroom_srt_port + slot,
            rtmp_upstream=free_port(),
            rtmp_relay=free_port(socket.SOCK_DGRAM),
            srt_relay=free_port(socket.SOCK_DGRAM),
        )

    async def sync(self) -> None:
        """Bring the listeners and the live inputs in line with the database."""
        plans = {p.feed_id: p for p in await asyncio.to_thread(self._read)}
        for feed_id in [f for f in self.feeds if f not in plans]:
            await self.feeds.pop(feed_id).stop()
            self.plans.pop(feed_id, None)
        for feed_id, plan in plans.items():
            running = self.feeds.get(feed_id)
            old = self.plans.get(feed_id)
            if (
                running is not None
                and old is not None
                and (old.ingest_key, old.slot)
                != (
                    plan.ingest_key,
                    plan.slot,
                )
            ):
                await self.feeds.pop(feed_id).stop()
                running = None
            if running is None:
                feed = SpeakerFeed(
                    self.broadcasts.ffmpeg,
                    self.settings.ingest_host,
                    self._ports(plan.slot),
                    plan.ingest_key,
                    self.settings.data_dir / "greenroom" / str(feed_id),
                    self.settings.greenroom_preview_fps,
                )
                try:
                    await feed.start()
                except OSError as exc:
                    logger.error("green room feed %d cannot listen: %s", feed_id, exc.strerror)
                    await feed.stop()
                    continue
                self.feeds[feed_id] = feed
            self.plans[feed_id] = plan
        self._wire_live_inputs()

    def _wire_live_inputs(self) -> None:
        """Point each session's playout at its taken feed, or back at the studio ingest."""
        taken = {p.session_id: p.feed_id for p in self.plans.values() if p.taken}
        for session_id in [s for s in self.wired if s not in self.broadcasts.runtimes]:
            del self.wired[session_id]
        for session_id, runtime in self.broadcasts.runtimes.items():
            feed = self.feeds.get(taken.get(session_id, -1))
            wanted: Callable[[], FeedSource | None]
            if feed is not None:
                wanted = feed.live_source
                self.wired[session_id] = taken[session_id]
            elif session_id in self.wired and runtime.ingest is not None:
                # Sessions we never touched keep whatever the broadcast manager set.
                wanted = runtime.ingest.live_source
                del self.wired[session_id]
            else:
                continue
            playout = runtime.playout
            if playout.live_source == wanted:
                continue
            playout.live_source = wanted
            cue = playout.wanted
            if cue is not None and cue.source is SourceKind.LIVE:
                # The live cue already resolved its input: play it again from the new one.
                playout.cue(cue)

    def status(self, feed_id: int) -> dict[str, Any] | None:
        """The green room's view of one feed, or None if its listeners do not run here."""
        feed = self.feeds.get(feed_id)
        return None if feed is None else feed.status()

    def preview(self, feed_id: int) -> Path | None:
        """The latest preview JPEG of one feed, if any frame arrived yet."""
        feed = self.feeds.get(feed_id)
        return None if feed is None else feed.preview_path()

    def preview_frame(self, feed_id: int) -> bytes | None:
        """The latest preview JPEG of one feed, if any frame arrived yet."""
        path = self.preview(feed_id)
        try:
            # Read whole, not streamed: the listener renames a new frame over this one about
            # twice a second, and a streamed file could change size under its Content-Length.
            return path.read_bytes() if path is not None else None
        except OSError:  # the feed closed meanwhile
            return None

    def urls(self, plan: service.FeedPlan) -> dict[str, str]:
        """The URLs the speaker sends to (key included: for them and producers only)."""
        host = self.broadcasts.ingest_urls(plan.session_id, plan.ingest_key)["rtmp_server"]
        host = host.split("://", 1)[1].rsplit(":", 1)[0]
        rtmp_port = self.settings.greenroom_rtmp_port + plan.slot
        srt_port = self.settings.greenroom_srt_port + plan.slot
        return {
            "rtmp_server": f"rtmp://{host}:{rtmp_port}/live",
            "rtmp_url": f"rtmp://{host}:{rtmp_port}/live/{plan.ingest_key}",
            "srt_url": f"srt://{host}:{srt_port}?passphrase={plan.ingest_key}&pbkeylen=16",
        }


if TYPE_CHECKING:
    # The web reaches the manager only through this port: mypy checks that it fits.
    _PORT: type[service.GreenRoom] = GreenRoomManager
