"""Golden tests of the playout feeder argv."""

from __future__ import annotations

from summitcast.media.ladder import AudioLanguage, LadderSpec, Rung
from summitcast.media.playout import FeedSource, feed_argv

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
        *["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re", "-i", "/m/a.mp4"],
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
        *["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re", "-i", "/m/a.mp4"],
        *["-re", "-i", "/m/a.fr.m4a"],
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
    graph = ";".join([VIDEO.format(src="0:v:0"), live_audio.format(k=0), live_audio.format(k=1)])
    assert argv == [
        *["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error"],
        *["-probesize", "500000", "-analyzeduration", "1000000", "-i", url],
        *["-filter_complex", graph, "-map", "[v]", "-map", "[a0]", "-map", "[a1]", *ENCODE],
        *["-output_ts_offset", "18.500", *MUX],
    ]
