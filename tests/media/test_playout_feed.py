"""Golden tests of the playout feeder argv."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import imageio_ffmpeg
from PIL import Image

from summitcast.media.ladder import AudioLanguage, LadderSpec, Rung
from summitcast.media.playout import CLOCK_FONT, FeedSource, countdown_text, feed_argv

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()

SPEC = LadderSpec(
    rungs=(Rung("240p", 426, 240, 400, 64),),
    fps=10,
    languages=(AudioLanguage("en", "English", True), AudioLanguage("fr", "Français")),
)
VIDEO = (
    "[{src}]fps=10,scale=426:240:force_original_aspect_ratio=decrease,"
    "pad=426:240:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p,tpad=stop=-1:stop_mode=clone[v]"
)
AUDIO = "[{src}]aresample=48000,aformat=sample_fmts=s16:channel_layouts=stereo,apad[a{k}]"
TAIL = [
    *["-map", "[v]", "-map", "[a0]", "-map", "[a1]"],
    "-t",
]
ENCODE = [
    *["-c:v", "mpeg2video", "-q:v", "2", "-g", "10", "-bf", "0"],
    *["-c:a", "s302m", "-strict", "experimental"],
]
MUX = ["-muxdelay", "0", "-muxpreload", "0", "-f", "mpegts", "pipe:1"]

# After -re: a feeder held up (encoder restart, load) catches up at 1.5x.
CATCH_UP = ["-readrate_catchup", "1.5"]


def test_feed_argv_file_with_one_track_serves_floor_to_every_language() -> None:
    argv = feed_argv(
        "ffmpeg",
        FeedSource("/m/a.mp4", audio_tracks=1),
        SPEC,
        offset_s=4.0,
        duration_s=2.5,
        realtime=True,
    )
    graph = ";".join(
        [VIDEO.format(src="0:v:0"), AUDIO.format(src="0:a:0", k=0), AUDIO.format(src="0:a:0", k=1)]
    )
    assert argv == [
        *[
            "ffmpeg",
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-re",
            *CATCH_UP,
            "-i",
            "/m/a.mp4",
        ],
        *["-filter_complex", graph, *TAIL, "2.500", *ENCODE],
        *["-output_ts_offset", "14.000", *MUX],
    ]


def test_feed_argv_slate_gets_silence_per_language() -> None:
    argv = feed_argv(
        "ffmpeg",
        FeedSource("/w/s.png", is_image=True),
        SPEC,
        offset_s=0,
        duration_s=2,
        realtime=False,
    )
    silence = ["-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo"]
    graph = ";".join(
        [VIDEO.format(src="0:v:0"), AUDIO.format(src="1:a:0", k=0), AUDIO.format(src="2:a:0", k=1)]
    )
    assert argv == [
        *["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error"],
        *["-loop", "1", "-framerate", "10", "-i", "/w/s.png", *silence, *silence],
        *["-filter_complex", graph, *TAIL, "2.000", *ENCODE],
        *["-output_ts_offset", "10.000", *MUX],
    ]


def test_feed_argv_live_audio_only_gets_black_picture_and_no_re() -> None:
    argv = feed_argv(
        "ffmpeg",
        FeedSource("srt://127.0.0.1:9000?mode=listener", has_video=False, audio_tracks=2),
        SPEC,
        offset_s=1,
        duration_s=2,
        realtime=True,
    )
    assert "-re" not in argv
    assert argv[5:11] == [
        *["-i", "srt://127.0.0.1:9000?mode=listener"],
        *["-f", "lavfi", "-i", "color=c=black:s=426x240:r=10"],
    ]
    assert argv[12].split(";")[1:] == [
        AUDIO.format(src="0:a:0", k=0),
        AUDIO.format(src="0:a:1", k=1),
    ]


def test_feed_argv_interpretation_files_become_their_languages() -> None:
    argv = feed_argv(
        "ffmpeg",
        FeedSource("/m/a.mp4", audio_tracks=1, language_files=(None, "/m/a.fr.m4a")),
        SPEC,
        offset_s=6.0,
        duration_s=2,
        realtime=True,
    )
    # English has no file of its own: the floor (track 0); French plays its file (input 1).
    graph = ";".join(
        [VIDEO.format(src="0:v:0"), AUDIO.format(src="0:a:0", k=0), AUDIO.format(src="1:a:0", k=1)]
    )
    assert argv == [
        *[
            "ffmpeg",
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-re",
            *CATCH_UP,
            "-i",
            "/m/a.mp4",
        ],
        *["-re", *CATCH_UP, "-i", "/m/a.fr.m4a"],
        *["-filter_complex", graph, *TAIL, "2.000", *ENCODE],
        *["-output_ts_offset", "16.000", *MUX],
    ]


def test_feed_argv_live_relay_has_no_padding_and_no_end() -> None:
    url = "udp://127.0.0.1:50000?timeout=2000000&fifo_size=1000000&overrun_nonfatal=1"
    argv = feed_argv(
        "ffmpeg",
        FeedSource(
            url,
            input_options=("-probesize", "500000", "-analyzeduration", "1000000"),
            audio_tracks=1,
            live=True,
        ),
        SPEC,
        offset_s=8.5,
        duration_s=None,
        realtime=True,
    )
    live_audio = "[0:a:0]aresample=48000,aformat=sample_fmts=s16:channel_layouts=stereo[a{k}]"
    live_video = VIDEO.format(src="0:v:0").replace(",tpad=stop=-1:stop_mode=clone", "")
    graph = ";".join([live_video, live_audio.format(k=0), live_audio.format(k=1)])
    assert argv == [
        *["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error"],
        *["-probesize", "500000", "-analyzeduration", "1000000", "-i", url],
        *["-filter_complex", graph, "-map", "[v]", "-map", "[a0]", "-map", "[a1]", *ENCODE],
        *["-output_ts_offset", "18.500", *MUX],
    ]


def test_countdown_text_counts_down_minutes_and_seconds() -> None:
    assert countdown_text(90.5) == (
        "%{eif:floor(max(0,90.500-t)/60):d:2}:%{eif:mod(floor(max(0,90.500-t)),60):d:2}"
    )


def test_feed_argv_countdown_slate_ticks_a_clock() -> None:
    argv = feed_argv(
        "ffmpeg",
        FeedSource("/w/s.png", is_image=True, clock_file="/w/clock.txt"),
        SPEC,
        offset_s=0,
        duration_s=2,
        realtime=False,
    )
    video = argv[argv.index("-filter_complex") + 1].split(";")[0]
    assert video == VIDEO.format(src="0:v:0").removesuffix("[v]") + (
        f",drawtext=fontfile={CLOCK_FONT}:textfile=/w/clock.txt:expansion=normal:"
        "fontsize=34:fontcolor=white:x=(w-tw)/2:y=h*0.72[v]"
    )


def test_countdown_clock_really_ticks_in_ffmpeg(tmp_path: Path) -> None:
    png = tmp_path / "slate.png"
    Image.new("RGB", (426, 240), (16, 32, 64)).save(png)
    clock = tmp_path / "clock.txt"
    clock.write_text(countdown_text(65.0), encoding="utf-8")
    source = FeedSource(str(png), is_image=True, clock_file=str(clock))
    argv = feed_argv(FFMPEG, source, SPEC, offset_s=0, duration_s=2.2, realtime=False)
    out = tmp_path / "feed.ts"
    subprocess.run([*argv[:-1], str(out)], check=True, capture_output=True, timeout=60)
    with av.open(str(out)) as container:
        frames = [f.to_image() for f in container.decode(video=0)]
    # 01:05 at the start, 01:03 two seconds later: the lower third changed, the rest did not.
    first, last = frames[0], frames[-1]
    assert first.crop((0, 0, 426, 160)).tobytes() == last.crop((0, 0, 426, 160)).tobytes()
    assert first.crop((0, 160, 426, 240)).tobytes() != last.crop((0, 160, 426, 240)).tobytes()
