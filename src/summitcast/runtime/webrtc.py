"""Going live from the browser: an aiortc peer pushing a speaker's camera to their ingest.

A browser cannot speak RTMP or SRT, so the server takes its place: one aiortc peer per
speaker receives the picture and sound (VP8/H.264 and Opus, decoded by aiortc in its
own threads), ``FlvPusher`` encodes them to H.264 + AAC in a thread of its own, and a
child ffmpeg publishes that over RTMP to the speaker's green-room listener, as OBS
would. From there on nothing differs from an OBS push: the same listener makes the
producer's preview, sound level and relay, and taking the feed on air is the
producer's button as before (``summitcast.runtime.greenroom``).

- The publisher connects to the listener behind the RTMP key gate: the speaker's signed
  link already said who this is, so the key is in no URL, argv or log line. The gate
  still guards the public port; the listener takes one publisher at a time, so OBS
  cannot join a browser's feed (and an offer is refused while OBS is sending).
- No third-party STUN/TURN: ``Settings.webrtc_ice_servers`` is empty by default (aiortc
  would otherwise ask Google's STUN server), so peers offer host candidates only, and
  ``Settings.webrtc_host_addresses`` can pin which (aioice leaves out loopback).
- One browser per speaker: a new offer for the same feed replaces the running peer (a
  reloaded tab or another laptop takes over at once, instead of waiting for the old
  one to time out); an OBS/SRT push already arriving is not ours to end, so an offer
  is refused (409) while one is.
- A closed tab ends the feed: the page deletes its session on ``pagehide``, the peer
  closes when the connection does, and, whatever happens, after ``FRAME_TIMEOUT_S``
  without a frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import queue
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import av

from summitcast.config import Settings
from summitcast.domain.contribution import Offer
from summitcast.errors import ConflictError, SummitcastError, ValidationError
from summitcast.media.listeners import LIVE_FRESH_S
from summitcast.runtime.greenroom import GreenRoomManager
from summitcast.services.greenroom import FeedPlan

if TYPE_CHECKING:
    # aiortc and aioice are imported where a peer is made, not with the app: they cost
    # every worker ~30 MiB, and most nodes never see a browser speaker.
    from aiortc import MediaStreamTrack, RTCIceServer, RTCPeerConnection

    from summitcast.services.browser_live import BrowserBridge
    from summitcast.services.greenroom import BrowserSenders

logger = logging.getLogger(__name__)

MAX_WIDTH, MAX_HEIGHT = 1280, 720  # larger pictures are scaled down: the ladder tops at 1080p
VIDEO_BITRATE = 2_500_000  # contribution quality for 720p; the ladder re-encodes anyway
AUDIO_BITRATE = 128_000
AUDIO_RATE = 48_000  # what aiortc's Opus decoder gives
KEYFRAME_S = 1.0  # a keyframe a second: a feed taken on air starts within a second
RESYNC_S = 0.3  # sound this far behind the clock (lost packets) jumps forward to it
QUEUE_FRAMES = 150  # ~2 s of picture and sound between the network and the encoder
FRAME_TIMEOUT_S = 5.0  # no frame this long: the browser has gone
FIRST_FRAME_TIMEOUT_S = 20.0  # from the answer to the first picture (ICE + DTLS + keyframe)
GATHER_TIMEOUT_S = 10.0  # local candidates (quick with host candidates only)
UPSTREAM_WAIT_S = 12.0  # as the RTMP gate: longer than the listener's longest restart backoff
PUBLISHER_SETTLED_S = 3.0  # a publisher that ran this long had connected; its end is final
PUBLISHER_EXIT_S = 5.0  # for the publisher to send what it holds after its input ends
RECENT_END_S = LIVE_FRESH_S + 1.0  # how long the listener may still report a push that ended
ENDED_KEPT = 256  # ends remembered for pages still polling (a page polls every 2 s)
MILLISECOND = Fraction(1, 1000)  # FLV's time base

_HOST_ADDRESSES: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "summitcast_webrtc_host_addresses", default=()
)
_hook_installed = False


class NotServedHereError(SummitcastError):
    """This node does not run the green room's listeners, so it cannot take a browser's feed."""

    status_code = 503


def _install_host_address_hook() -> None:
    """Let the peer being set up choose its host candidates (aioice has no option for it)."""
    global _hook_installed
    if _hook_installed:
        return
    import aioice.ice

    original = aioice.ice.get_host_addresses

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        pinned = _HOST_ADDRESSES.get()
        return list(pinned) if pinned else original(use_ipv4, use_ipv6)

    # aioice looks the function up in its module on every gathering, so this reaches it;
    # without a pinned list (the context variable unset) it is aioice's own answer.
    aioice.ice.get_host_addresses = host_addresses
    _hook_installed = True


@contextlib.contextmanager
def host_addresses(addresses: tuple[str, ...]) -> Iterator[None]:
    """Gather only these host candidates in this block (empty: every interface but loopback)."""
    _install_host_address_hook()
    token = _HOST_ADDRESSES.set(addresses)
    try:
        yield
    finally:
        _HOST_ADDRESSES.reset(token)


def ice_servers(settings: Settings) -> list[RTCIceServer]:
    """The STUN/TURN servers of the settings (none by default: host candidates only)."""
    from aiortc import RTCIceServer

    username = settings.webrtc_ice_username or None
    credential = settings.webrtc_ice_credential.get_secret_value() or None
    return [RTCIceServer(url, username, credential) for url in settings.webrtc_ice_servers]


def browser_ice_servers(settings: Settings) -> list[dict[str, str]]:
    """The same servers as the browser's RTCPeerConnection takes them."""
    servers = []
    for server in ice_servers(settings):
        entry = {"urls": str(server.urls)}
        if server.username and server.credential:
            entry |= {"username": server.username, "credential": str(server.credential)}
        servers.append(entry)
    return servers


def peer_connection(settings: Settings) -> RTCPeerConnection:
    """An aiortc peer with the configured ICE servers and nothing else (no default STUN)."""
    from aiortc import RTCConfiguration, RTCPeerConnection

    # iceServers=[] and not None: None makes aiortc fall back to stun.l.google.com.
    return RTCPeerConnection(RTCConfiguration(iceServers=ice_servers(settings)))


def picture_size(width: int, height: int) -> tuple[int, int]:
    """The encoded size of a browser's picture: at most 1280x720, aspect kept, even sides."""
    scale = min(1.0, MAX_WIDTH / width, MAX_HEIGHT / height)
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def publisher_argv(ffmpeg: str, upstream_port: int) -> list[str]:
    """ffmpeg publishing the FLV we write to its stdin to a green-room listener, as OBS would."""
    return [
        ffmpeg,
        "-hide_banner",
        "-loglevel",
        "error",  # errors only: nothing per second
        # Our stream's H.264 and AAC headers come in its first packets: start quickly.
        "-probesize",
        "500000",
        "-analyzeduration",
        "1000000",
        "-f",
        "flv",  # what FlvPusher writes
        "-i",
        "pipe:0",  # from our encoder thread (ffmpeg then reads no commands from stdin)
        "-map",
        "0",  # the picture and, if there is one, the sound
        "-c",
        "copy",  # encoded once, by us
        "-f",
        "flv",
        # The listener behind the key gate: the speaker's link already proved who this is,
        # so no key travels, and none is in this argv (/proc/<pid>/cmdline is public).
        f"rtmp://127.0.0.1:{upstream_port}/live/stream",
    ]


class FlvPusher:
    """Encodes a browser's frames to H.264 + AAC in a thread; an ffmpeg publishes them over RTMP.

    PyAV's own network output holds the GIL while it waits on the socket (measured: a
    stalled RTMP handshake froze every thread), so the encoder only writes to a pipe and a
    child ffmpeg does the RTMP: the event loop never waits on the network.
    """

    def __init__(self, ffmpeg: str, upstream_port: int, *, has_audio: bool) -> None:
        self.argv = publisher_argv(ffmpeg, upstream_port)
        self.has_audio = has_audio
        # Called from the thread when it ends: None when told to stop, else the reason.
        self.on_end: Callable[[str | None], None] = lambda _reason: None
        self.sent = {"video": 0, "audio": 0}
        self.dropped = 0
        self._queue: queue.Queue[tuple[str, Any, float] | None] = queue.Queue(QUEUE_FRAMES)
        self._stop = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None  # the running publisher, if any
        self._thread = threading.Thread(target=self._run, name="webrtc-pusher", daemon=True)

    def start(self) -> None:
        """Start the encoding thread (it starts the publisher when the first picture arrives)."""
        self._thread.start()

    def put(self, kind: str, frame: Any, arrived: float) -> None:
        """Hand over one decoded frame (monotonic arrival time); dropped if the encoder lags."""
        try:
            self._queue.put_nowait((kind, frame, arrived))
        except queue.Full:
            self.dropped += 1  # never block the event loop for the encoder

    async def stop(self) -> None:
        """End the stream (the listener sees the publisher leave) and wait for the thread."""
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        if self._thread.is_alive():
            await asyncio.to_thread(self._thread.join, PUBLISHER_EXIT_S + 1)
        proc = self._proc
        if self._thread.is_alive() and proc is not None:
            proc.kill()  # a publisher that stopped reading: the thread's write fails now
            await asyncio.to_thread(self._thread.join, 5)

    def _run(self) -> None:
        reason: str | None = None
        first_failure: float | None = None
        try:
            while not self._stop.is_set():
                began = time.monotonic()
                failed = self._publish()
                if failed is None:
                    break
                # The listener restarts after each publisher (~0.5 s): a new connection in
                # that moment is refused, so early failures are retried for a while.
                now = time.monotonic()
                first_failure = first_failure or now
                if now - first_failure > UPSTREAM_WAIT_S or now - began > PUBLISHER_SETTLED_S:
                    reason = failed
                    break
                self._stop.wait(0.5)
        except Exception as exc:  # a bug here must end the feed visibly, not hang it
            reason = type(exc).__name__
            logger.exception("browser feed encoder failed")
        finally:
            self.on_end(None if self._stop.is_set() else reason or "the stream stopped")

    def _publish(self) -> str | None:
        """Run one publisher until told to stop (None) or until it fails (the reason)."""
        proc: subprocess.Popen[bytes] | None = None
        container: Any = None
        encoder: _Encoder | None = None
        try:
            while not self._stop.is_set():
                try:
                    item = self._queue.get(timeout=0.5)
                except queue.Empty:
                    continue
                if item is None:
                    break
                kind, frame, arrived = item
                if encoder is None:
                    if kind != "video":
                        continue  # sound before the first picture: nothing to sync it to yet
                    proc = subprocess.Popen(
                        self.argv,
                        stdin=subprocess.PIPE,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        bufsize=0,  # each muxed write goes straight to the pipe
                    )
                    self._proc = proc
                    assert proc.stdin is not None
                    container = av.open(
                        proc.stdin,
                        "w",
                        format="flv",
                        # Hand each packet over as it is muxed, not in 32 KiB lumps.
                        container_options={"flush_packets": "1"},
                    )
                    encoder = _Encoder(container, frame, arrived, has_audio=self.has_audio)
                for packet in encoder.encode(kind, frame, arrived):
                    container.mux(packet)
                self.sent[kind] += 1
            if encoder is not None:
                for packet in encoder.flush():
                    container.mux(packet)
            return None
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            # The publisher has gone (its listener refused it, or closed): the pipe broke.
            return getattr(exc, "strerror", None) or type(exc).__name__
        finally:
            if container is not None:
                with contextlib.suppress(Exception):
                    container.close()
            if proc is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()  # type: ignore[union-attr]
                try:
                    proc.wait(PUBLISHER_EXIT_S)  # it sends what it has, then leaves
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


class _Encoder:
    """The two encoders of one stream and its clock (milliseconds since the first picture)."""

    def __init__(self, container: Any, first: Any, start: float, *, has_audio: bool) -> None:
        self.start = start
        self.size = picture_size(first.width, first.height)
        self.video = container.add_stream(
            "libx264",
            rate=30,
            options={
                "preset": "veryfast",  # a few ms a 720p frame on one core
                "tune": "zerolatency",  # no lookahead or B-frames: frames leave as they come
                "maxrate": "3000k",  # capped, so a busy picture cannot flood the listener
                "bufsize": "3000k",
            },
        )
        self.video.width, self.video.height = self.size
        self.video.pix_fmt = "yuv420p"
        self.video.bit_rate = VIDEO_BITRATE
        self.video.codec_context.time_base = MILLISECOND  # frames carry their arrival time
        self.audio = None
        if has_audio:
            self.audio = container.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
            self.audio.bit_rate = AUDIO_BITRATE
        self._last_video_ms = -1
        self._last_key = -KEYFRAME_S
        self._audio_next: int | None = None  # next sound sample's pts (1/48000)

    def encode(self, kind: str, frame: Any, arrived: float) -> list[Any]:
        """Packets of one frame, stamped by its arrival since the first picture."""
        at = arrived - self.start
        if kind == "video":
            picture = frame.reformat(width=self.size[0], height=self.size[1], format="yuv420p")
            # Browsers send at a variable rate: stamp by arrival, strictly increasing.
            picture.pts = max(int(at * 1000), self._last_video_ms + 1)
            picture.time_base = MILLISECOND
            self._last_video_ms = picture.pts
            if at - self._last_key >= KEYFRAME_S:
                picture.pict_type = av.video.frame.PictureType.I
                self._last_key = at
            return list(self.video.encode(picture))
        if self.audio is None or at < 0:
            return []
        rate = frame.sample_rate
        clock = int(at * rate)
        # Sound runs on its sample count (no jitter); lost packets leave it behind the
        # clock, and then it jumps forward rather than drifting late for good.
        if self._audio_next is None or clock - self._audio_next > RESYNC_S * rate:
            self._audio_next = clock
        frame.pts = self._audio_next
        frame.time_base = Fraction(1, rate)
        self._audio_next += frame.samples
        return list(self.audio.encode(frame))

    def flush(self) -> list[Any]:
        """The packets the encoders still hold."""
        packets = list(self.video.encode(None))
        if self.audio is not None:
            packets += list(self.audio.encode(None))
        return packets


class BrowserSession:
    """One speaker's browser peer and the pusher it feeds."""

    def __init__(self, feed_id: int, pc: RTCPeerConnection, pusher: FlvPusher) -> None:
        self.id = secrets.token_urlsafe(16)
        self.feed_id = feed_id
        self.pc = pc
        self.pusher = pusher
        self.started = time.monotonic()
        self.last_frame: float | None = None
        self.ended: str | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def state(self) -> str:
        """ "connecting" until the first picture arrives, then "sending"."""
        return "sending" if self.pusher.sent["video"] else "connecting"

    async def pump(self, track: MediaStreamTrack) -> None:
        """Move a received track's frames to the pusher until the track ends."""
        from aiortc.mediastreams import MediaStreamError

        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            self.last_frame = time.monotonic()
            self.pusher.put(track.kind, frame, self.last_frame)


class BrowserContributions:
    """The browser peers of this node: at most one per green-room feed."""

    def __init__(self, settings: Settings, green_room: GreenRoomManager) -> None:
        # aioice's and aiortc's INFO lines name the speaker's addresses (candidate pairs):
        # kept out of the logs whatever the root level is (threat model: no IP addresses).
        for name in ("aioice", "aiortc"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self.settings = settings
        self.green_room = green_room
        self.sessions: dict[int, BrowserSession] = {}  # by feed id
        # Why recent sessions ended, by session id, for their pages still polling.
        self.ended: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._locks: dict[int, asyncio.Lock] = {}
        self._ended_at: dict[int, float] = {}  # monotonic end of each feed's last session

    async def answer(self, plan: FeedPlan, offer: Offer) -> tuple[str, str]:
        """Answer a speaker's offer with a peer pushing to their feed; (session id, answer SDP)."""
        if not self.settings.broadcast_workers:
            raise NotServedHereError(
                "This server does not run the green room; the organisers must send browser "
                "feeds to the node that runs the broadcast."
            )
        # One offer of a feed at a time: two tabs answering at once would leave one peer
        # publishing unseen, with nobody able to stop it.
        async with self._locks.setdefault(plan.feed_id, asyncio.Lock()):
            return await self._answer(plan, offer)

    async def _answer(self, plan: FeedPlan, offer: Offer) -> tuple[str, str]:
        feed = self.green_room.feeds.get(plan.feed_id)
        if feed is None:
            raise ConflictError("Your green room is still opening: try again in a few seconds.")
        running = self.sessions.get(plan.feed_id)
        # The listener still reports our last push for a moment after it ended.
        ours_lately = time.monotonic() - self._ended_at.get(plan.feed_id, -1e9) < RECENT_END_S
        if running is not None:
            await self._end(running, "You went live from another browser window.")
        elif feed.receiving() is not None and not ours_lately:
            raise ConflictError(
                "Your green room already receives a stream from OBS or another app. "
                "Stop that one first, then go live from here."
            )
        pc = peer_connection(self.settings)
        pusher = FlvPusher(
            self.green_room.broadcasts.ffmpeg, feed.ports.rtmp_upstream, has_audio=offer.has_audio
        )
        session = BrowserSession(plan.feed_id, pc, pusher)
        loop = asyncio.get_running_loop()

        def pushed_out(reason: str | None) -> None:  # runs in the pusher's thread
            loop.call_soon_threadsafe(self._pushed_out, session, reason)

        session.pusher.on_end = pushed_out
        try:
            answer_sdp = await self._negotiate(session, offer)
        except BaseException:
            await pc.close()
            raise
        self.sessions[plan.feed_id] = session
        session.pusher.start()
        self._spawn(self._watch(session))
        return session.id, answer_sdp

    async def _negotiate(self, session: BrowserSession, offer: Offer) -> str:
        from aiortc import RTCSessionDescription

        pc = session.pc

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            task = asyncio.create_task(session.pump(track), name="webrtc-track")
            session.tasks.add(task)
            task.add_done_callback(session.tasks.discard)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed") and session.ended is None:
                await self._end(session, "The connection to your browser was lost.")

        try:
            await pc.setRemoteDescription(RTCSessionDescription(offer.sdp, "offer"))
        except ValueError as exc:
            raise ValidationError(f"The offer cannot be used: {exc}", field="sdp") from exc
        with host_addresses(tuple(self.settings.webrtc_host_addresses)):
            await asyncio.wait_for(
                pc.setLocalDescription(await pc.createAnswer()), GATHER_TIMEOUT_S
            )
        return str(pc.localDescription.sdp)

    async def stop(self, feed_id: int, session_id: str) -> bool:
        """End a browser's session (its page asked); False if it is not the running one."""
        session = self.sessions.get(feed_id)
        if session is None or not secrets.compare_digest(session.id, session_id):
            return False
        await self._end(session, "You stopped.")
        return True

    def sending(self, feed_id: int) -> bool:
        """Whether a browser session of this node pushes to this feed."""
        return feed_id in self.sessions

    def browser_ice_servers(self) -> list[dict[str, str]]:
        """The STUN/TURN servers as the browser's RTCPeerConnection takes them."""
        return browser_ice_servers(self.settings)

    def status(self, feed_id: int, session_id: str) -> dict[str, Any]:
        """Where a page's own session stands: connecting, sending, or ended and why."""
        session = self.sessions.get(feed_id)
        if session is not None and secrets.compare_digest(session.id, session_id):
            return {
                "state": session.state(),
                "frames": session.pusher.sent["video"],
                "green_room": self._green_room_status(feed_id),
            }
        # The id is 128 random bits: looking it up reveals nothing a guess could use.
        return {"state": "ended", "reason": self.ended.get(session_id, "This session is over.")}

    def _green_room_status(self, feed_id: int) -> str | None:
        """Whether the green room's listener receives the push ("rtmp") yet."""
        feed = self.green_room.feeds.get(feed_id)
        return None if feed is None else feed.receiving()

    async def close(self) -> None:
        """End every browser session of this node (the app is stopping)."""
        for session in list(self.sessions.values()):
            await self._end(session, "The server is restarting.")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro, name="webrtc-session")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _pushed_out(self, session: BrowserSession, reason: str | None) -> None:
        """The pusher's stream ended by itself (listener gone, key refused): end the session."""
        if reason is None or session.ended is not None:
            return
        logger.warning(
            "browser feed %d: the push to the green room ended (%s)", session.feed_id, reason
        )
        self._spawn(self._end(session, "Your picture could not reach the green room."))

    async def _watch(self, session: BrowserSession) -> None:
        """End a session whose browser stopped sending (closed tab, lost network)."""
        while session.ended is None:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            if session.last_frame is None:
                if now - session.started > FIRST_FRAME_TIMEOUT_S:
                    await self._end(session, "No picture arrived from your browser.")
            elif now - session.last_frame > FRAME_TIMEOUT_S:
                await self._end(session, "Your browser stopped sending.")

    async def _end(self, session: BrowserSession, reason: str) -> None:
        """Close a session's peer and stream (once), and remember why for its page."""
        if session.ended is not None:
            return
        session.ended = reason
        if self.sessions.get(session.feed_id) is session:
            del self.sessions[session.feed_id]
            self._ended_at[session.feed_id] = time.monotonic()
        self.ended[session.id] = reason
        while len(self.ended) > ENDED_KEPT:
            del self.ended[next(iter(self.ended))]  # the oldest (dicts keep insertion order)
        await session.pc.close()
        for task in list(session.tasks):
            task.cancel()
        await asyncio.gather(*session.tasks, return_exceptions=True)
        await session.pusher.stop()


if TYPE_CHECKING:
    # The web reaches the bridge only through these ports: mypy checks that it fits.
    _BRIDGE: type[BrowserBridge] = BrowserContributions
    _SENDERS: type[BrowserSenders] = BrowserContributions
