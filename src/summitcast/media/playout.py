"""The feed of ONE continuous HLS programme: feeders and what they write.

Design: one long-running ladder encoder (``ladder_argv`` reading MPEG-TS on its
stdin, kept alive by a ``Supervisor``; ``SessionPlayout`` in
``summitcast.media.broadcast`` runs it) and, per cue, a short-lived *feeder*
ffmpeg that turns the step's source (file, live URL, slate PNG) into a uniform
MPEG-TS: same size, frame rate, audio layout and one audio track per language,
with ``-output_ts_offset`` set to the cue's programme offset. The feeders'
outputs are copied one after the other into the encoder's stdin (``run_feeder``), so the encoder
sees a single stream whose timestamps never restart: the master and media
playlists are written once and only grow. Only if the encoder itself dies does
a seam appear; ``append_list`` then marks it with EXT-X-DISCONTINUITY.

The feed is MPEG-2 video at a fixed quantiser and PCM (SMPTE 302M) audio: cheap
to encode and decode (a fraction of the ladder's x264 cost) and nearly transparent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass

from summitcast.domain.playout import Slate
from summitcast.media.feed_clock import FeedClock
from summitcast.media.ladder import LadderSpec
from summitcast.media.supervisor import Supervisor

logger = logging.getLogger(__name__)

PIPE_CHUNK = 64 * 1024
FEED_AUDIO_RATE = 48000
TS_PACKET = 188
FEEDER_STOP_TIMEOUT_S = 3.0
FEED_BASE_S = 10.0  # programme time 0 on the feed's clock (the encoder rebases it to 0)
TECHNICAL_SLATE = Slate("We will be back in a moment", ("Technical difficulties",))


@dataclass(frozen=True)
class FeedSource:
    """What a feeder reads: its ffmpeg input and how many audio tracks it has."""

    url: str
    input_options: tuple[str, ...] = ()
    has_video: bool = True
    audio_tracks: int = 0
    is_image: bool = False
    # Pre-recorded interpretation: one audio file (or None) per ladder language, in order.
    language_files: tuple[str | None, ...] = ()
    # A live stream: no padding and no end of its own (it plays until it is stopped).
    live: bool = False
    # A ticking clock drawn over the picture (countdown slates): a drawtext text file.
    clock_file: str | None = None
    # Start this far into the file and its interpretation files (an item resumed when a
    # live interpreter joins or leaves mid-item); live streams and images ignore it.
    seek_s: float = 0.0


# -re alone never makes up time lost while the encoder could not take the feed (its
# restart, a moment of load): the programme then runs late for good, and a player
# that stalled waits for segments at 1x. Up to 1.5x until the feeder is back on its
# clock (measured: 8 s of feed blocked for 3 s ended at 9.9 s without, 7.6 s with).
CATCH_UP = ("-readrate_catchup", "1.5")

CLOCK_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def countdown_text(remaining_s: float) -> str:
    """drawtext text (expansion=normal) showing mm:ss left from remaining_s at the feeder's t=0."""
    left = f"max(0,{remaining_s:.3f}-t)"
    # eif's third argument pads with zeros; ":" between the fields is literal text.
    return f"%{{eif:floor({left}/60):d:2}}:%{{eif:mod(floor({left}),60):d:2}}"


def _is_stream(url: str) -> bool:
    """Whether an input is a live network stream (read as it comes, never with -re)."""
    return url.startswith(("rtmp:", "srt:", "udp:", "rtp:"))


def _seek(seconds: float) -> list[str]:
    """Input seeking to seconds (accurate: the feeder decodes and re-encodes), if any."""
    return ["-ss", f"{seconds:.3f}"] if seconds > 0 else []


def _clock_filter(text_file: str, height: int) -> str:
    """The drawtext that ticks a countdown in the lower third (its text read from a file)."""
    # A text file needs no filtergraph escaping of the expressions' commas.
    return (
        f",drawtext=fontfile={CLOCK_FONT}:textfile={text_file}:expansion=normal:"
        f"fontsize={height // 7}:fontcolor=white:x=(w-tw)/2:y=h*0.72"
    )


def feed_argv(
    ffmpeg: str,
    source: FeedSource,
    spec: LadderSpec,
    *,
    offset_s: float,
    duration_s: float | None,
    realtime: bool,
) -> list[str]:
    """Build the argv of one feeder: any source → uniform MPEG-TS on stdout at offset_s.

    duration_s=None plays until the source ends or the feeder is stopped (live input).
    """
    top = spec.rungs[0]
    width, height, fps = top.width, top.height, spec.fps
    argv = [
        ffmpeg,
        "-hide_banner",
        "-nostdin",  # stdin is not ours to read
        "-loglevel",
        "error",  # errors only; they end up in the worker's log
    ]
    if realtime and not _is_stream(source.url):
        argv += ["-re", *CATCH_UP]  # read files at their own speed: the programme runs on the clock
    if source.is_image:
        argv += ["-loop", "1", "-framerate", str(fps)]  # a still image becomes a video stream
    seek = _seek(source.seek_s)
    if not source.is_image and not _is_stream(source.url):
        argv += seek  # resume where the item was when its feeder was restarted
    argv += [*source.input_options, "-i", source.url]
    inputs = 1
    language_inputs: dict[int, int] = {}
    for k, path in enumerate(source.language_files[: len(spec.languages)]):
        if path is not None:
            if _is_stream(path):
                # A live interpreter's relay: it arrives in real time by itself; probe
                # briefly, it is one AAC/Opus track.
                argv += ["-probesize", "200000", "-analyzeduration", "500000"]
            else:
                if realtime:
                    argv += ["-re", *CATCH_UP]  # interpretation files run on the same clock
                argv += seek  # and resume at the same point of the item
            argv += ["-i", path]
            language_inputs[k] = inputs
            inputs += 1
    video_in = "0:v:0"
    if not source.has_video:
        # Audio-only uploads get a black picture rather than no picture.
        argv += ["-f", "lavfi", "-i", f"color=c=black:s={width}x{height}:r={fps}"]
        video_in = f"{inputs}:v:0"
        inputs += 1
    graph = [
        f"[{video_in}]fps={fps},"
        f"scale={width}:{height}:force_original_aspect_ratio=decrease,"
        f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p"
        # A file shorter than its slot holds its last frame instead of ending early. Not
        # a live stream: it has no slot, and after the studio left the clone ran on
        # forever as fast as it could (measured), so the hold slate never came back.
        + ("" if source.live else ",tpad=stop=-1:stop_mode=clone")
        + (_clock_filter(source.clock_file, height) if source.clock_file else "")
        + "[v]"
    ]
    for k in range(len(spec.languages)):
        if k in language_inputs:
            # A pre-recorded interpretation file of its own for this language.
            audio_in = f"{language_inputs[k]}:a:0"
        elif source.audio_tracks:
            # Interpretation k if the file has it, otherwise the floor (track 0).
            track = k if k < source.audio_tracks else 0
            audio_in = f"0:a:{track}"
        else:
            argv += ["-f", "lavfi", "-i", f"anullsrc=r={FEED_AUDIO_RATE}:cl=stereo"]
            audio_in = f"{inputs}:a:0"
            inputs += 1
        graph.append(
            f"[{audio_in}]aresample={FEED_AUDIO_RATE},"
            # s302m takes s16 stereo at 48 kHz; every language becomes exactly that.
            "aformat=sample_fmts=s16:channel_layouts=stereo"
            # Silence after a short soundtrack, until -t ends the step; not for a live
            # floor (it ends the feeder when the studio leaves), but for an interpreter
            # who drops out while the studio goes on.
            + (f"[a{k}]" if source.live and k not in language_inputs else f",apad[a{k}]")
        )
    argv += ["-filter_complex", ";".join(graph), "-map", "[v]"]
    for k in range(len(spec.languages)):
        argv += ["-map", f"[a{k}]"]
    if duration_s is not None:
        argv += ["-t", f"{duration_s:.3f}"]  # exactly the planned slot, so the next offset is exact
    argv += [
        "-c:v",
        "mpeg2video",  # cheap intermediate codec; the ladder re-encodes anyway
        "-q:v",
        "2",  # near-transparent fixed quantiser
        "-g",
        str(fps),  # a keyframe a second: the encoder can resync after a restart
        "-bf",
        "0",  # no reordering: lower latency through the pipe
        "-c:a",
        # SMPTE 302M is PCM inside MPEG-TS: no encoder frames, so a step's audio ends
        # exactly at -t (MP2 padded each step by up to 24 ms, which overlapped the next).
        "s302m",
        "-strict",
        "experimental",  # ffmpeg marks its s302m encoder experimental
        "-output_ts_offset",
        # The step's place in the programme, so timestamps continue across feeders.
        # FEED_BASE_S keeps the first feeder's DTS positive: mpeg2video delays DTS
        # by one frame, and a negative DTS made the muxer shift only that feeder.
        f"{FEED_BASE_S + offset_s:.3f}",
        "-muxdelay",
        "0",  # no extra mux delay: FEED_BASE_S already keeps timestamps positive
        "-muxpreload",
        "0",
        "-f",
        "mpegts",  # self-delimiting, so feeders can be concatenated on one pipe
        "pipe:1",
    ]
    return argv


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


@dataclass(frozen=True)
class Fed:
    """What one feeder put into the encoder."""

    sent: int  # bytes
    replaced: bool  # stopped because something else goes on air
    end_s: float | None  # programme time just after its last video frame (None: no frame)


async def _stop_on(
    changed: asyncio.Event, feeder: asyncio.subprocess.Process, replaced: list[bool]
) -> None:
    """Stop the feeder when changed is set (something else goes on air)."""
    await changed.wait()
    replaced.append(True)
    # SIGTERM: ffmpeg stops reading, flushes and closes the TS cleanly.
    with contextlib.suppress(ProcessLookupError):
        feeder.send_signal(signal.SIGTERM)
    await asyncio.sleep(FEEDER_STOP_TIMEOUT_S)
    with contextlib.suppress(ProcessLookupError):
        feeder.kill()


async def run_feeder(
    argv: list[str], encoder: Supervisor, feed_clock: FeedClock, changed: asyncio.Event
) -> Fed:
    """Copy one feeder's MPEG-TS into the encoder until it ends or changed is set."""
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
    clock = TsClock(round(1 / feed_clock.frame_s))
    sent = 0
    replaced: list[bool] = []
    watcher = asyncio.create_task(_stop_on(changed, feeder, replaced))
    errors_task = asyncio.create_task(feeder.stderr.read())
    try:
        while chunk := await feeder.stdout.read(PIPE_CHUNK):
            clock.feed(chunk)
            await encoder.write_stdin(chunk)
            if clock.end_s is not None:
                # Into which encoder process: a restarted one starts a new timeline.
                feed_clock.fed(clock.end_s - FEED_BASE_S, encoder.health.pid)
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
    end_s = None if clock.end_s is None else clock.end_s - FEED_BASE_S
    return Fed(sent, bool(replaced), end_s)
