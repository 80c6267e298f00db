"""The adaptive HLS ladder: its spec, the ffmpeg argv that encodes it, its master playlist.

One ffmpeg process decodes the programme once, splits the picture into one scaled
copy per rung, and writes every rendition with keyframes at the same instants, so
a player can switch rungs at any segment boundary.

Measured quirks of the ffmpeg 9 shipped by imageio-ffmpeg (see tests/media/test_ladder.py):

* A WebVTT stream inside ``-var_stream_map`` fails ("No streams to mux") on its own
  and segfaults when put beside a video stream, so subtitles are segmented by
  summitcast (``summitcast.media.subtitles``), not by ffmpeg.
* ffmpeg's own master playlist names audio renditions ``audio_2``…, has no
  AUTOSELECT, and leaves out audio-only variants, so summitcast writes
  ``master.m3u8`` itself (``master_playlist``); ffmpeg's is kept beside it as
  ``ffmpeg_master.m3u8`` because its CODECS strings are exact.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from summitcast.errors import ValidationError

MASTER_NAME = "master.m3u8"
FFMPEG_MASTER_NAME = "ffmpeg_master.m3u8"
MEDIA_PLAYLIST_NAME = "index.m3u8"  # the live window players reload (publisher.py writes it)
VOD_PLAYLIST_NAME = "vod.m3u8"  # the whole session, written when it ends
# ffmpeg's own media playlist: private (the HLS route hides dot files), read by the publisher.
ENCODER_PLAYLIST_NAME = ".encoder.m3u8"
# Segments in ffmpeg's private playlist: the publisher reads it every 50 ms, so a
# minute of slack means it never misses a segment, even on a stalled machine.
ENCODER_LIST_SIZE = 30
AUDIO_GROUP = "aud"
AUDIO_ONLY_GROUP = "aud_low"
SUBTITLE_GROUP = "subs"
AAC_CODEC = "mp4a.40.2"  # AAC-LC, what ffmpeg's native aac encoder writes
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


@dataclass(frozen=True)
class Rung:
    """One video rendition of the ladder."""

    name: str
    width: int
    height: int
    video_kbps: int
    # What a player spends on audio beside this rung; interpretation audio is
    # shared by all rungs, so it is encoded once at the highest rung's rate.
    audio_kbps: int = 128

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ValidationError(f"rung name {self.name!r} must be a short lowercase slug")
        # x264 with 4:2:0 chroma needs even dimensions.
        if self.width <= 0 or self.height <= 0 or self.width % 2 or self.height % 2:
            raise ValidationError(f"rung {self.name}: width and height must be even and positive")
        if self.video_kbps <= 0 or self.audio_kbps <= 0:
            raise ValidationError(f"rung {self.name}: bitrates must be positive")


@dataclass(frozen=True)
class AudioLanguage:
    """One interpretation language: an audio rendition in every audio group."""

    code: str  # BCP 47 / ISO 639 code written to LANGUAGE=
    name: str  # shown in the player's menu, in the language itself ideally
    default: bool = False

    def __post_init__(self) -> None:
        if not _LANGUAGE_RE.match(self.code):
            raise ValidationError(f"language code {self.code!r} is not an ISO 639 code")


@dataclass(frozen=True)
class SubtitleTrack:
    """One WebVTT subtitle language; path is the programme-wide .vtt file, if any."""

    code: str
    name: str
    path: Path | None = None

    def __post_init__(self) -> None:
        if not _LANGUAGE_RE.match(self.code):
            raise ValidationError(f"subtitle code {self.code!r} is not an ISO 639 code")


@dataclass(frozen=True)
class LadderInput:
    """One ffmpeg input: a URL or path plus the options that must precede its -i."""

    url: str
    options: tuple[str, ...] = ()


DEFAULT_RUNGS: tuple[Rung, ...] = (
    # Bitrates follow Apple's HLS authoring table for 30 fps H.264, rounded down a
    # little: the programme is mostly talking heads and slates.
    Rung("1080p", 1920, 1080, 5000, 128),
    Rung("720p", 1280, 720, 2800, 128),
    Rung("480p", 854, 480, 1400, 96),
    Rung("360p", 640, 360, 800, 96),
)
DEFAULT_LANGUAGES: tuple[AudioLanguage, ...] = (AudioLanguage("und", "Programme", True),)


@dataclass(frozen=True)
class LadderSpec:
    """Everything that decides what the ladder encoder writes."""

    rungs: tuple[Rung, ...] = DEFAULT_RUNGS
    audio_only_kbps: int = 48
    segment_s: int = 2
    fps: int = 30
    container: Literal["fmp4", "ts"] = "fmp4"
    languages: tuple[AudioLanguage, ...] = DEFAULT_LANGUAGES
    subtitles: tuple[SubtitleTrack, ...] = ()
    preset: str = "veryfast"
    # Seconds of programme in the live playlists. Three minutes: hls.js starts
    # 1.75 segments from the live edge and jumps back to it past 10 segments
    # (20 s, player.js), so live players never use more than ~25 s of it; the rest
    # lets a viewer who pauses, or a hall screen whose link drops, for up to ~2.5
    # minutes resume where they were. Replay is the session's vod.m3u8, so the live
    # window need not serve it. 90 segments of 2 s are ~8 KB per playlist.
    live_window_s: int = 180
    # zerolatency: no B-frames, no lookahead, no macroblock tree, sliced threads. It
    # costs some quality per bit (no B-frames, no mbtree) but the default ladder's
    # x264 work drops by about a quarter (1.43 → 1.08 CPU-s per programme second,
    # measured 2026-11-28), which is what lets it keep up on two cores, and each frame
    # leaves the encoder at once instead of ~0.5 s later (glass-to-glass latency).
    tune: str | None = "zerolatency"
    languages_by_input: bool = False

    def __post_init__(self) -> None:
        if not self.rungs:
            raise ValidationError("a ladder needs at least one video rung")
        if len({r.name for r in self.rungs}) != len(self.rungs):
            raise ValidationError("rung names must be unique")
        if not self.languages:
            raise ValidationError("a ladder needs at least one audio language")
        if len({lang.code for lang in self.languages}) != len(self.languages):
            raise ValidationError("audio language codes must be unique")
        if sum(lang.default for lang in self.languages) != 1:
            raise ValidationError("exactly one audio language must be the default")
        if len({s.code for s in self.subtitles}) != len(self.subtitles):
            raise ValidationError("subtitle codes must be unique")
        if self.segment_s < 1 or self.fps < 1 or self.audio_only_kbps < 8:
            raise ValidationError("segment length, fps and audio-only bitrate must be positive")
        if self.live_window_s < 3 * self.segment_s:
            # A live playlist must span three target durations (RFC 8216 §6.2.2).
            raise ValidationError("the live window must hold at least three segments")

    @property
    def segment_extension(self) -> str:
        """File extension of media segments for this container."""
        return "m4s" if self.container == "fmp4" else "ts"

    @property
    def window_segments(self) -> int:
        """Segments listed in a live playlist."""
        return self.live_window_s // self.segment_s

    @property
    def gop_frames(self) -> int:
        """Frames per GOP: exactly one segment, so every segment starts on a keyframe."""
        return self.fps * self.segment_s

    @property
    def shared_audio_kbps(self) -> int:
        """Bitrate of the interpretation renditions heard beside the video rungs."""
        return max(r.audio_kbps for r in self.rungs)


def audio_dir(code: str) -> str:
    """Folder of the full-quality audio rendition of one language."""
    return f"audio_{code}"


def audio_only_dir(code: str) -> str:
    """Folder of the low-bitrate audio-only rendition of one language."""
    return f"audio_low_{code}"


def subtitle_dir(code: str) -> str:
    """Folder of the WebVTT rendition of one language."""
    return f"subs_{code}"


def live_playlists(spec: LadderSpec) -> tuple[str, ...]:
    """Every rendition's live playlist the master names (relative to the session's folder)."""
    folders = [rung.name for rung in spec.rungs]
    for lang in spec.languages:
        folders += [audio_dir(lang.code), audio_only_dir(lang.code)]
    folders += [subtitle_dir(sub.code) for sub in spec.subtitles]
    return tuple(f"{folder}/{MEDIA_PLAYLIST_NAME}" for folder in folders)


def _var_stream_map(spec: LadderSpec) -> str:
    """The -var_stream_map value: one variant per rung, two audio groups per language."""
    entries = [f"v:{i},agroup:{AUDIO_GROUP},name:{r.name}" for i, r in enumerate(spec.rungs)]
    n = len(spec.languages)
    for group, offset, folder in (
        (AUDIO_GROUP, 0, audio_dir),
        (AUDIO_ONLY_GROUP, n, audio_only_dir),
    ):
        for k, lang in enumerate(spec.languages):
            entry = f"a:{offset + k},agroup:{group},language:{lang.code},name:{folder(lang.code)}"
            entries.append(entry + (",default:yes" if lang.default else ""))
    return " ".join(entries)


def _fit(rung: Rung, scale_flags: str = "") -> str:
    """Filters that fit a picture inside a rung, letterboxed, with square pixels."""
    # Speakers upload any aspect ratio: fit inside the rung, pad the rest black.
    return (
        f"scale={rung.width}:{rung.height}:force_original_aspect_ratio=decrease{scale_flags},"
        f"pad={rung.width}:{rung.height}:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p"
    )


def _filter_graph(spec: LadderSpec) -> str:
    """Decode once, then scale in a cascade: each rung from the next larger one's picture."""
    # Largest first; each smaller rung is scaled from the one above it rather than from
    # the source, so every scaler reads a smaller picture (the default ladder's
    # decoding and scaling cost 0.21 instead of 0.29 CPU-seconds per second, measured).
    order = sorted(
        range(len(spec.rungs)), key=lambda i: -spec.rungs[i].width * spec.rungs[i].height
    )
    # fps= makes every rung constant-frame-rate, which -g and segment lengths rely on.
    source = f"[0:v:0]fps={spec.fps}"
    parts = []
    for step, i in enumerate(order):
        # The top rung is fitted from the source with the default (bicubic) scaler, a
        # no-op when the playout feed already has its size; later steps shrink by small
        # ratios (1.5x or less in the default ladder), where bilinear is cheaper and
        # does not alias.
        flags = ":flags=bilinear" if step else ""
        last = step == len(order) - 1
        chain = f"{source}{',' if step == 0 else ''}{_fit(spec.rungs[i], flags)}"
        # Every rung but the smallest also feeds the next step of the cascade.
        parts.append(chain + (f"[v{i}]" if last else f",split=2[v{i}][c{i}]"))
        source = f"[c{i}]"
    for k in range(len(spec.languages)):
        # async=1000 stretches or pads audio by up to 1000 samples/s, so the small
        # overlaps and gaps where playout items meet never reach the AAC encoder;
        # asplit feeds the full-quality and the audio-only renditions.
        parts.append(f"[{_audio_source(spec, k)}]aresample=async=1000,asplit=2[a{k}][l{k}]")
    return ";".join(parts)


def _audio_source(spec: LadderSpec, index: int) -> str:
    """Which input stream carries the audio of language number index."""
    # Interpreters can arrive as separate inputs (input 1, 2, …) or as extra
    # audio tracks of the programme feed (input 0, tracks 0, 1, …).
    return f"{index + 1}:a:0" if spec.languages_by_input else f"0:a:{index}"


def ladder_argv(
    ffmpeg: str,
    inputs: Sequence[LadderInput],
    spec: LadderSpec,
    out_dir: Path,
    *,
    resume: bool = False,
) -> list[str]:
    """Build the argv of the one ffmpeg process that encodes and packages the whole ladder.

    resume=True is the argv of a restart: it continues the playlists already written.
    """
    expected_inputs = 1 + len(spec.languages) if spec.languages_by_input else 1
    if len(inputs) != expected_inputs:
        raise ValidationError(f"the ladder needs {expected_inputs} input(s), got {len(inputs)}")
    argv = [
        ffmpeg,
        "-hide_banner",  # the build banner is noise in supervisor logs
        "-nostdin",  # never read the terminal; stdin may be the programme feed
        "-loglevel",
        "error",  # only real errors reach stderr, which the supervisor keeps as last_error
        "-progress",
        "pipe:1",  # key=value progress on stdout for EncoderHealth
        "-stats_period",
        "1",  # one progress block per second
    ]
    for item in inputs:
        argv += [*item.options, "-i", item.url]
    n_lang = len(spec.languages)
    argv += ["-filter_complex", _filter_graph(spec)]
    for i in range(len(spec.rungs)):
        argv += ["-map", f"[v{i}]"]
    # Each language twice: once for the rungs' audio group, once for the audio-only rung.
    for label in ("a", "l"):
        for k in range(n_lang):
            argv += ["-map", f"[{label}{k}]"]
    argv += [
        "-c:v",
        "libx264",  # H.264 plays everywhere HLS does
        "-preset",
        spec.preset,  # speed/quality trade; veryfast holds 1080p30 live on ~1 core
        "-profile:v",
        "main",  # main profile: every HLS client decodes it
        "-level:v",
        "4.0",  # covers 1080p30; a fixed level keeps CODECS stable across restarts
        "-pix_fmt",
        "yuv420p",  # 4:2:0, the only chroma format browsers decode
        "-g",
        str(spec.gop_frames),  # at most one GOP per segment
        "-keyint_min",
        str(spec.gop_frames),  # and no shorter GOPs, so rungs stay aligned
        "-sc_threshold",
        "0",  # no extra keyframes on scene cuts: they would misalign the rungs
        "-force_key_frames",
        f"expr:gte(t,n_forced*{spec.segment_s})",  # a keyframe exactly at each segment start
    ]
    if spec.tune:
        argv += ["-tune", spec.tune]  # zerolatency by default (LadderSpec.tune says why)
    for i, r in enumerate(spec.rungs):
        argv += [
            f"-b:v:{i}",
            f"{r.video_kbps}k",  # target bitrate of this rung
            f"-maxrate:v:{i}",
            f"{r.video_kbps * 107 // 100}k",  # capped VBR: peaks stay near BANDWIDTH
            f"-bufsize:v:{i}",
            f"{r.video_kbps * 3 // 2}k",  # 1.5 s of VBV buffer
        ]
    argv += [
        "-c:a",
        "aac",  # AAC-LC: the audio codec every HLS client has
        "-ar",
        "48000",  # one sample rate for every rendition
    ]
    for k in range(n_lang):
        argv += [f"-b:a:{k}", f"{spec.shared_audio_kbps}k", f"-ac:a:{k}", "2"]  # full stereo
    for k in range(n_lang):
        j = n_lang + k
        # Audio-only rung for censored and slow links: mono keeps 48 kbit/s intelligible.
        argv += [f"-b:a:{j}", f"{spec.audio_only_kbps}k", f"-ac:a:{j}", "1"]
    # Every segment starts on a keyframe. No program_date_time: ffmpeg stamps from its
    # start time plus durations, which runs ahead of the wall clock; the publisher
    # stamps each segment from the clock at which it was fed (feed_clock.py).
    flags = ["independent_segments"]
    if resume:
        # A restarted encoder continues the existing playlists (and marks the seam
        # with EXT-X-DISCONTINUITY) instead of starting them over at segment 0. Not
        # on a first start: there ffmpeg 9 writes a needless DISCONTINUITY before
        # segment 0 (measured).
        flags.append("append_list")
    argv += [
        "-f",
        "hls",  # the HLS muxer writes playlists and segments itself
        "-hls_time",
        str(spec.segment_s),  # target segment length in seconds
        "-hls_segment_type",
        "fmp4" if spec.container == "fmp4" else "mpegts",  # fMP4 (CMAF) or MPEG-TS segments
        "-hls_flags",
        "+".join(flags),
        "-hls_list_size",
        # A short private list, no delete_segments: every segment stays on disk for
        # the replay and the recordings; the publisher keeps the session's list.
        str(ENCODER_LIST_SIZE),
    ]
    if spec.container == "fmp4":
        # One init segment per rendition, named after it so the folders stay tidy.
        argv += ["-hls_fmp4_init_filename", "init_%v.mp4"]
    argv += [
        "-hls_segment_filename",
        str(out_dir / "%v" / f"seg_%05d.{spec.segment_extension}"),  # %v = variant name
        "-master_pl_name",
        FFMPEG_MASTER_NAME,  # ffmpeg's master, read for CODECS; summitcast writes master.m3u8
        "-var_stream_map",
        _var_stream_map(spec),
        str(out_dir / "%v" / ENCODER_PLAYLIST_NAME),  # private; players read the publisher's
    ]
    return argv


def default_video_codec(preset: str) -> str:
    """The RFC 6381 CODECS string x264 produces for main@4.0 with this preset."""
    # ultrafast turns CABAC off, and x264 then signals constrained baseline (measured).
    return "avc1.42c028" if preset == "ultrafast" else "avc1.4d4028"


def codecs_from_ffmpeg_master(text: str) -> dict[str, str]:
    """Map each variant folder of ffmpeg's master to its video CODECS entry."""
    codecs: dict[str, str] = {}
    pending: str | None = None
    for line in text.splitlines():
        if line.startswith("#EXT-X-STREAM-INF:"):
            match = re.search(r'CODECS="([^"]*)"', line)
            pending = match.group(1) if match else None
        elif line and not line.startswith("#") and pending is not None:
            video = [c for c in pending.split(",") if c.startswith("avc1")]
            if video:
                codecs[line.split("/")[0]] = video[0]
            pending = None
    return codecs


def _attr_quote(value: str) -> str:
    """Quote an HLS attribute string (double quotes and line breaks are not allowed)."""
    return '"' + value.replace('"', "'").replace("\n", " ").replace("\r", " ") + '"'


def _rung_bandwidth(spec: LadderSpec, rung: Rung) -> int:
    """Peak bits per second of a rung with its audio, including ~10% container overhead."""
    peak_kbps = rung.video_kbps * 107 // 100 + spec.shared_audio_kbps
    return peak_kbps * 1100


def encoder_dir(name: str) -> str:
    """Folder prefix of one redundant encoder's renditions in the master playlist."""
    return f"enc-{name}"


def master_playlist(
    spec: LadderSpec,
    video_codecs: Mapping[str, str] | None = None,
    *,
    ended: bool = False,
    encoders: Sequence[str] = (),
) -> str:
    """Write the master playlist: rungs, audio-only rung, audio groups, subtitle group.

    ended=True names each rendition's whole-session vod.m3u8 instead of its live window.
    encoders (redundant encoders, in order) lists every rendition once per encoder, under
    enc-{name}/, with group ids suffixed per encoder and otherwise identical attributes:
    hls.js 1.7 makes variants that differ only in URI and groups into pathways "." and
    ".." and falls back to the other on errors (level-controller.ts, onManifestLoaded).
    """
    codecs = video_codecs or {}
    # A player already playing keeps the live playlists it loaded (they end with
    # EXT-X-ENDLIST); one that loads the master after the end replays the session.
    name = VOD_PLAYLIST_NAME if ended else MEDIA_PLAYLIST_NAME
    # (URI prefix, group-id suffix) per encoder; one unprefixed copy without encoders.
    copies = [(f"{encoder_dir(e)}/", f"-{e}") for e in encoders] or [("", "")]
    lines = [
        "#EXTM3U",
        # Version 7 allows EXT-X-MAP without I-frame-only playlists (fMP4); 6 covers TS.
        "#EXT-X-VERSION:7" if spec.container == "fmp4" else "#EXT-X-VERSION:6",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    for prefix, suffix in copies:
        lines += _renditions(spec, name, prefix, suffix)
    for rung in spec.rungs:
        video_codec = codecs.get(rung.name, default_video_codec(spec.preset))
        for prefix, suffix in copies:
            subs_attr = f',SUBTITLES="{SUBTITLE_GROUP}{suffix}"' if spec.subtitles else ""
            lines.append(
                f"#EXT-X-STREAM-INF:BANDWIDTH={_rung_bandwidth(spec, rung)},"
                f"RESOLUTION={rung.width}x{rung.height},FRAME-RATE={spec.fps:.3f},"
                f'CODECS="{video_codec},{AAC_CODEC}",AUDIO="{AUDIO_GROUP}{suffix}"{subs_attr}'
            )
            lines.append(f"{prefix}{rung.name}/{name}")
    default_lang = next(lang for lang in spec.languages if lang.default)
    for prefix, suffix in copies:
        subs_attr = f',SUBTITLES="{SUBTITLE_GROUP}{suffix}"' if spec.subtitles else ""
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={spec.audio_only_kbps * 1100},"
            f'CODECS="{AAC_CODEC}",AUDIO="{AUDIO_ONLY_GROUP}{suffix}"{subs_attr}'
        )
        lines.append(f"{prefix}{audio_only_dir(default_lang.code)}/{name}")
    return "\n".join(lines) + "\n"


def _renditions(spec: LadderSpec, name: str, prefix: str, suffix: str) -> list[str]:
    """The EXT-X-MEDIA lines of one encoder: audio, audio-only audio, subtitles."""
    lines = []
    for group, folder, channels in (
        (AUDIO_GROUP, audio_dir, 2),
        (AUDIO_ONLY_GROUP, audio_only_dir, 1),
    ):
        for lang in spec.languages:
            lines.append(
                f"#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID={_attr_quote(group + suffix)},"
                f"NAME={_attr_quote(lang.name)},LANGUAGE={_attr_quote(lang.code)},"
                f"DEFAULT={'YES' if lang.default else 'NO'},AUTOSELECT=YES,"
                f'CHANNELS="{channels}",'
                f"URI={_attr_quote(prefix + folder(lang.code) + '/' + name)}"
            )
    for sub in spec.subtitles:
        # DEFAULT=NO: captions appear when the viewer's preferences ask for them.
        lines.append(
            f"#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID={_attr_quote(SUBTITLE_GROUP + suffix)},"
            f"NAME={_attr_quote(sub.name)},LANGUAGE={_attr_quote(sub.code)},"
            f"DEFAULT=NO,AUTOSELECT=YES,FORCED=NO,"
            f"URI={_attr_quote(prefix + subtitle_dir(sub.code) + '/' + name)}"
        )
    return lines
