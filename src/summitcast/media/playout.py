"""Play a playout plan as ONE continuous HLS programme.

Design: one long-running ladder encoder (``ladder_argv`` reading MPEG-TS on its
stdin, kept alive by a ``Supervisor``) and, per step, a short-lived *feeder*
ffmpeg that turns the step's source (file, live URL, slate PNG) into a uniform
MPEG-TS: same size, frame rate, audio layout and one audio track per language,
with ``-output_ts_offset`` set to the step's programme offset. The feeders'
outputs are copied one after the other into the encoder's stdin, so the encoder
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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import av

from summitcast.domain.playout import PlayoutStep, Slate, SourceKind
from summitcast.errors import ValidationError
from summitcast.media.ladder import (
    FFMPEG_MASTER_NAME,
    MASTER_NAME,
    MEDIA_PLAYLIST_NAME,
    LadderInput,
    LadderSpec,
    codecs_from_ffmpeg_master,
    ladder_argv,
    master_playlist,
    subtitle_dir,
)
from summitcast.media.probe import probe
from summitcast.media.publisher import SegmentPublisher
from summitcast.media.segment_store import LocalSegmentStore
from summitcast.media.slate import render_slate
from summitcast.media.subtitles import (
    Cue,
    media_playlist,
    parse_webvtt,
    place_cues,
    segment_count,
    segment_name,
    segment_text,
)
from summitcast.media.supervisor import EncoderHealth, Supervisor

logger = logging.getLogger(__name__)

PIPE_CHUNK = 64 * 1024
FEED_AUDIO_RATE = 48000
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


class PlayoutWorker:
    """Plays the steps of a plan back to back into one ladder encoder."""

    def __init__(
        self,
        ffmpeg: str,
        steps: Sequence[PlayoutStep],
        spec: LadderSpec,
        store: LocalSegmentStore,
        work_dir: Path,
        *,
        realtime: bool = True,
    ) -> None:
        if not steps:
            raise ValidationError("nothing to play: the plan is empty")
        self.ffmpeg = ffmpeg
        self.steps = list(steps)
        self.spec = spec
        self.store = store
        self.work_dir = work_dir
        self.realtime = realtime
        self.cues: list[Cue] = []
        self.fallbacks: list[int] = []  # indexes of steps replaced at run time
        self._mpegts_base: int | None = None
        self._codecs_known = False
        # The feed's streams are known, so probing is cut from ffmpeg's default 5 s
        # (which would hold the first segment back by as much) to about 1 s.
        probe_options = ("-f", "mpegts", "-probesize", "1000000", "-analyzeduration", "1000000")
        feed = [LadderInput("pipe:0", probe_options)]
        # Writes the live playlists from ffmpeg's private ones. No feed clock here (this
        # worker is for tests and benchmarks): segments are dated when they are listed.
        self.publisher = SegmentPublisher(
            store.folder, store, window_segments=spec.window_segments, segment_s=spec.segment_s
        )
        # restart_on_success=False: the encoder exits 0 when the programme ends.
        self.encoder = Supervisor(
            ladder_argv(ffmpeg, feed, spec, store.folder),
            name="ladder",
            stdin_pipe=True,
            restart_on_success=False,
            restart_argv=ladder_argv(ffmpeg, feed, spec, store.folder, resume=True),
        )

    @property
    def health(self) -> EncoderHealth:
        """The encoder's health, for the producer's dashboard."""
        return self.encoder.health

    async def run(self) -> None:
        """Play every step, then let the encoder finish its last segment and stop."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        # Players may fetch the master before the first segment; it never changes
        # afterwards except to take ffmpeg's exact CODECS once they are known.
        self.store.put(MASTER_NAME, master_playlist(self.spec).encode())
        await self.encoder.start()
        publishing = asyncio.create_task(self.publisher.run())
        try:
            for step in self.steps:
                self._collect_cues(step)
                await self._play(step)
                if not self._codecs_known:
                    self._write_master()
                self._write_subtitles(step.end_s, ended=False)
            await self._finish_encoder()
        finally:
            await self.encoder.stop()
            publishing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await publishing
        await asyncio.to_thread(self.publisher.finish)  # EXT-X-ENDLIST and vod.m3u8
        self._write_master()
        self._write_subtitles(self.steps[-1].end_s, ended=True)

    async def _finish_encoder(self) -> None:
        """Close the feed and wait for the encoder to flush and write EXT-X-ENDLIST."""
        proc = self.encoder.process
        if proc is not None and proc.stdin is not None:
            proc.stdin.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.encoder.finished.wait(), 30)

    def _source_for(self, step: PlayoutStep) -> FeedSource:
        """Turn a step into a feeder source, rendering slates and probing files."""
        if step.source is SourceKind.FILE and step.path is not None:
            info = probe(Path(step.path))  # raises ValidationError for unreadable files
            return FeedSource(
                step.path, has_video=info.video is not None, audio_tracks=len(info.audio)
            )
        if step.source is SourceKind.LIVE and step.url is not None:
            # RTMP/SRT from OBS carries one audio track: every language hears the floor
            # until interpreters arrive as inputs of their own (not built yet).
            return FeedSource(step.url, audio_tracks=1)
        return self._slate_source(step.slate or TECHNICAL_SLATE, f"slate_{step.index}")

    def _slate_source(self, slate: Slate, stem: str) -> FeedSource:
        """Render a slate at the top rung's size and feed it as a looped image."""
        top = self.spec.rungs[0]
        png = render_slate(slate, self.work_dir / f"{stem}.png", top.width, top.height)
        return FeedSource(str(png), is_image=True)

    async def _play(self, step: PlayoutStep) -> None:
        """Run the feeder of one step; if it produces nothing, a slate fills the slot."""
        try:
            source = self._source_for(step)
        except ValidationError as exc:
            logger.warning("step %d cannot play (%s); slate instead", step.index, exc.message)
            source = self._slate_source(TECHNICAL_SLATE, f"fallback_{step.index}")
            self.fallbacks.append(step.index)
        sent = await self._feed(source, step)
        if sent == 0 and not source.is_image:
            logger.warning("step %d produced no output; slate instead", step.index)
            self.fallbacks.append(step.index)
            await self._feed(self._slate_source(TECHNICAL_SLATE, f"fallback_{step.index}"), step)

    async def _feed(self, source: FeedSource, step: PlayoutStep) -> int:
        """Copy one feeder's MPEG-TS into the encoder; return the bytes sent."""
        argv = feed_argv(
            self.ffmpeg,
            source,
            self.spec,
            offset_s=step.offset_s,
            duration_s=step.duration_s,
            realtime=self.realtime,
        )
        feeder = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert feeder.stdout is not None
        assert feeder.stderr is not None
        sent = 0
        try:
            errors_task = asyncio.create_task(feeder.stderr.read())
            while chunk := await feeder.stdout.read(PIPE_CHUNK):
                await self.encoder.write_stdin(chunk)
                sent += len(chunk)
            errors = (await errors_task).decode("utf-8", "replace").strip()
            code = await feeder.wait()
            if code != 0:
                logger.warning("feeder of step %d exited %d: %s", step.index, code, errors)
        finally:
            if feeder.returncode is None:
                feeder.kill()
                await feeder.wait()
        return sent

    def _collect_cues(self, step: PlayoutStep) -> None:
        """Add the step's subtitles, placed at its programme offset."""
        if step.subtitle_path is None or not self.spec.subtitles:
            return
        try:
            text = Path(step.subtitle_path).read_text(encoding="utf-8")
            cues = parse_webvtt(text)
        except (OSError, UnicodeDecodeError, ValidationError) as exc:
            logger.warning("subtitles of step %d unreadable: %s", step.index, exc)
            return
        self.cues += place_cues(cues, step.offset_s, step.duration_s)

    def _find_mpegts_base(self) -> int:
        """The 90 kHz timestamp of programme time 0 in the media segments."""
        playlist = self.store.local_path(f"{self.spec.rungs[0].name}/{MEDIA_PLAYLIST_NAME}")
        try:
            with av.open(str(playlist)) as container:
                for packet in container.demux(video=0):
                    if packet.pts is not None and packet.time_base is not None:
                        return round(float(packet.pts * packet.time_base) * 90000)
        except (av.error.FFmpegError, OSError):
            pass
        # ffmpeg's TS muxer starts at 1.4 s; fMP4 starts at 0.
        return 126000 if self.spec.container == "ts" else 0

    def _write_subtitles(self, until_s: float, *, ended: bool) -> None:
        """Write the subtitle segments before until_s, and the subtitle playlists."""
        if not self.spec.subtitles:
            return
        if not ended:
            # Later steps' cues start at their offsets, so whole segments before
            # until_s are final; a partial one waits for the next call.
            until_s = (until_s // self.spec.segment_s) * self.spec.segment_s
        count = segment_count(until_s, self.spec.segment_s)
        if self._mpegts_base is None:
            self._mpegts_base = self._find_mpegts_base()
        for track in self.spec.subtitles:
            folder = subtitle_dir(track.code)
            # Segments are immutable once published: write each one only once.
            for index in range(count):
                name = f"{folder}/{segment_name(index)}"
                if not self.store.exists(name):
                    text = segment_text(self.cues, index, self.spec.segment_s, self._mpegts_base)
                    self.store.put(name, text.encode())
            playlist = media_playlist(until_s, self.spec.segment_s, ended=ended)
            self.store.put(f"{folder}/{MEDIA_PLAYLIST_NAME}", playlist.encode())

    def _write_master(self) -> None:
        """Rewrite master.m3u8 with ffmpeg's exact CODECS strings, when known."""
        ffmpeg_master = self.store.get(FFMPEG_MASTER_NAME)
        codecs = codecs_from_ffmpeg_master(ffmpeg_master.decode()) if ffmpeg_master else {}
        self._codecs_known = bool(codecs)
        self.store.put(MASTER_NAME, master_playlist(self.spec, codecs).encode())
