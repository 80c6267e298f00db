"""Golden tests of the ladder argv and master playlist, plus one real ffmpeg run."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import imageio_ffmpeg
import m3u8
import pytest

from summitcast.errors import ValidationError
from summitcast.media.ladder import (
    AudioLanguage,
    LadderInput,
    LadderSpec,
    Rung,
    SubtitleTrack,
    codecs_from_ffmpeg_master,
    ladder_argv,
    live_playlists,
    master_playlist,
)

EN_FR = (AudioLanguage("en", "English", True), AudioLanguage("fr", "Français"))


def _fit(w: int, h: int, flags: str = "") -> str:
    """Fit inside w x h (scale down, pad), square pixels, 4:2:0."""
    return (
        f"scale={w}:{h}:force_original_aspect_ratio=decrease{flags},"
        f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p"
    )


HEAD = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error"]
HEAD += ["-progress", "pipe:1", "-stats_period", "1"]


def test_ladder_argv_single_rung_ts_from_pipe() -> None:
    spec = LadderSpec(
        rungs=(Rung("360p", 640, 360, 800, 96),),
        fps=25,
        preset="ultrafast",
        container="ts",
        live_window_s=12,  # the publisher's window: not ffmpeg's business
        tune=None,
    )
    argv = ladder_argv("ffmpeg", [LadderInput("pipe:0", ("-f", "mpegts"))], spec, Path("/srv/hls"))
    assert argv == [
        *HEAD,
        *["-f", "mpegts", "-i", "pipe:0"],
        "-filter_complex",
        f"[0:v:0]fps=25,{_fit(640, 360)}[v0];[0:a:0]aresample=async=1000,asplit=2[a0][l0]",
        *["-map", "[v0]", "-map", "[a0]", "-map", "[l0]"],
        *["-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "main", "-level:v", "4.0"],
        *["-pix_fmt", "yuv420p", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0"],
        *["-force_key_frames", "expr:gte(t,n_forced*2)"],
        *["-b:v:0", "800k", "-maxrate:v:0", "856k", "-bufsize:v:0", "1200k"],
        *["-c:a", "aac", "-ar", "48000"],
        *["-b:a:0", "96k", "-ac:a:0", "2", "-b:a:1", "48k", "-ac:a:1", "1"],
        *["-f", "hls", "-hls_time", "2", "-hls_segment_type", "mpegts"],
        # No program_date_time (the publisher dates segments by the feed clock), no
        # delete_segments (replay and recordings need every segment), no playlist type:
        # ffmpeg's own playlist is a private 30-segment list the publisher reads.
        *["-hls_flags", "independent_segments", "-hls_list_size", "30"],
        *["-hls_segment_filename", "/srv/hls/%v/seg_%05d.ts"],
        *["-master_pl_name", "ffmpeg_master.m3u8"],
        "-var_stream_map",
        "v:0,agroup:aud,name:360p a:0,agroup:aud,language:und,name:audio_und,default:yes "
        "a:1,agroup:aud_low,language:und,name:audio_low_und,default:yes",
        "/srv/hls/%v/.encoder.m3u8",
    ]


def test_ladder_argv_default_rungs_fmp4_interpreters_as_inputs() -> None:
    spec = LadderSpec(languages=EN_FR, languages_by_input=True)
    inputs = [LadderInput("srt://127.0.0.1:9000?mode=listener"), LadderInput("en.wav")]
    inputs.append(LadderInput("fr.wav"))
    argv = ladder_argv("ffmpeg", inputs, spec, Path("/srv/hls"))
    bilinear = ":flags=bilinear"
    # A cascade: 1080p from the source, each smaller rung from the one above it.
    graph = ";".join(
        [
            f"[0:v:0]fps=30,{_fit(1920, 1080)},split=2[v0][c0]",
            f"[c0]{_fit(1280, 720, bilinear)},split=2[v1][c1]",
            f"[c1]{_fit(854, 480, bilinear)},split=2[v2][c2]",
            f"[c2]{_fit(640, 360, bilinear)}[v3]",
            "[1:a:0]aresample=async=1000,asplit=2[a0][l0]",
            "[2:a:0]aresample=async=1000,asplit=2[a1][l1]",
        ]
    )
    assert argv == [
        *HEAD,
        *["-i", "srt://127.0.0.1:9000?mode=listener", "-i", "en.wav", "-i", "fr.wav"],
        *["-filter_complex", graph],
        *["-map", "[v0]", "-map", "[v1]", "-map", "[v2]", "-map", "[v3]"],
        *["-map", "[a0]", "-map", "[a1]", "-map", "[l0]", "-map", "[l1]"],
        *["-c:v", "libx264", "-preset", "veryfast", "-profile:v", "main", "-level:v", "4.0"],
        *["-pix_fmt", "yuv420p", "-g", "60", "-keyint_min", "60", "-sc_threshold", "0"],
        *["-force_key_frames", "expr:gte(t,n_forced*2)", "-tune", "zerolatency"],
        *["-b:v:0", "5000k", "-maxrate:v:0", "5350k", "-bufsize:v:0", "7500k"],
        *["-b:v:1", "2800k", "-maxrate:v:1", "2996k", "-bufsize:v:1", "4200k"],
        *["-b:v:2", "1400k", "-maxrate:v:2", "1498k", "-bufsize:v:2", "2100k"],
        *["-b:v:3", "800k", "-maxrate:v:3", "856k", "-bufsize:v:3", "1200k"],
        *["-c:a", "aac", "-ar", "48000"],
        *["-b:a:0", "128k", "-ac:a:0", "2", "-b:a:1", "128k", "-ac:a:1", "2"],
        *["-b:a:2", "48k", "-ac:a:2", "1", "-b:a:3", "48k", "-ac:a:3", "1"],
        *["-f", "hls", "-hls_time", "2", "-hls_segment_type", "fmp4"],
        *["-hls_flags", "independent_segments", "-hls_list_size", "30"],
        *["-hls_fmp4_init_filename", "init_%v.mp4"],
        *["-hls_segment_filename", "/srv/hls/%v/seg_%05d.m4s"],
        *["-master_pl_name", "ffmpeg_master.m3u8"],
        "-var_stream_map",
        "v:0,agroup:aud,name:1080p v:1,agroup:aud,name:720p v:2,agroup:aud,name:480p "
        "v:3,agroup:aud,name:360p a:0,agroup:aud,language:en,name:audio_en,default:yes "
        "a:1,agroup:aud,language:fr,name:audio_fr "
        "a:2,agroup:aud_low,language:en,name:audio_low_en,default:yes "
        "a:3,agroup:aud_low,language:fr,name:audio_low_fr",
        "/srv/hls/%v/.encoder.m3u8",
    ]


def test_ladder_argv_cascade_runs_largest_first_whatever_the_rung_order() -> None:
    small, large = Rung("240p", 426, 240, 400, 64), Rung("360p", 640, 360, 800, 96)
    argv = ladder_argv(
        "ffmpeg", [LadderInput("in.ts")], LadderSpec(rungs=(small, large)), Path("/o")
    )
    graph = argv[argv.index("-filter_complex") + 1].split(";")
    assert graph[:2] == [
        f"[0:v:0]fps=30,{_fit(640, 360)},split=2[v1][c1]",
        f"[c1]{_fit(426, 240, ':flags=bilinear')}[v0]",
    ]


def test_ladder_argv_resume_appends_to_playlists() -> None:
    spec = LadderSpec()
    first = ladder_argv("ffmpeg", [LadderInput("in.ts")], spec, Path("/srv/hls"))
    again = ladder_argv("ffmpeg", [LadderInput("in.ts")], spec, Path("/srv/hls"), resume=True)
    flags = first.index("-hls_flags") + 1
    assert again[flags] == "independent_segments+append_list"
    assert again[:flags] + again[flags + 1 :] == first[:flags] + first[flags + 1 :]


def test_ladder_argv_wrong_input_count_refused() -> None:
    spec = LadderSpec(languages=EN_FR, languages_by_input=True)
    with pytest.raises(ValidationError):
        ladder_argv("ffmpeg", [LadderInput("in.mp4")], spec, Path("/srv/hls"))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rungs": ()},
        {"rungs": (Rung("a", 2, 2, 1), Rung("a", 4, 4, 1))},
        {"languages": (AudioLanguage("en", "English"),)},
        {"languages": (AudioLanguage("en", "E", True), AudioLanguage("fr", "F", True))},
        {"segment_s": 0},
        {"live_window_s": 5},  # under three 2 s segments
    ],
)
def test_ladder_spec_invalid_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        LadderSpec(**kwargs)  # type: ignore[arg-type]


def test_rung_odd_size_refused() -> None:
    with pytest.raises(ValidationError):
        Rung("odd", 641, 360, 800)


def test_master_playlist_lists_rungs_languages_audio_only_and_subtitles() -> None:
    spec = LadderSpec(
        rungs=(Rung("720p", 1280, 720, 2800, 128), Rung("360p", 640, 360, 800, 96)),
        languages=EN_FR,
        subtitles=(SubtitleTrack("en", "English"),),
    )
    text = master_playlist(spec, {"720p": "avc1.64001f"})
    assert text == (
        "#EXTM3U\n"
        "#EXT-X-VERSION:7\n"
        "#EXT-X-INDEPENDENT-SEGMENTS\n"
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="English",LANGUAGE="en",DEFAULT=YES,'
        'AUTOSELECT=YES,CHANNELS="2",URI="audio_en/index.m3u8"\n'
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="Français",LANGUAGE="fr",DEFAULT=NO,'
        'AUTOSELECT=YES,CHANNELS="2",URI="audio_fr/index.m3u8"\n'
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud_low",NAME="English",LANGUAGE="en",DEFAULT=YES,'
        'AUTOSELECT=YES,CHANNELS="1",URI="audio_low_en/index.m3u8"\n'
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud_low",NAME="Français",LANGUAGE="fr",DEFAULT=NO,'
        'AUTOSELECT=YES,CHANNELS="1",URI="audio_low_fr/index.m3u8"\n'
        '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="English",LANGUAGE="en",DEFAULT=NO,'
        'AUTOSELECT=YES,FORCED=NO,URI="subs_en/index.m3u8"\n'
        "#EXT-X-STREAM-INF:BANDWIDTH=3436400,RESOLUTION=1280x720,FRAME-RATE=30.000,"
        'CODECS="avc1.64001f,mp4a.40.2",AUDIO="aud",SUBTITLES="subs"\n'
        "720p/index.m3u8\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=1082400,RESOLUTION=640x360,FRAME-RATE=30.000,"
        'CODECS="avc1.4d4028,mp4a.40.2",AUDIO="aud",SUBTITLES="subs"\n'
        "360p/index.m3u8\n"
        '#EXT-X-STREAM-INF:BANDWIDTH=52800,CODECS="mp4a.40.2",AUDIO="aud_low",SUBTITLES="subs"\n'
        "audio_low_en/index.m3u8\n"
    )


def test_master_playlist_parses_with_m3u8() -> None:
    spec = LadderSpec(languages=EN_FR, subtitles=(SubtitleTrack("fr", "Français"),))
    parsed = m3u8.loads(master_playlist(spec))
    assert [p.uri for p in parsed.playlists] == [
        "1080p/index.m3u8",
        "720p/index.m3u8",
        "480p/index.m3u8",
        "360p/index.m3u8",
        "audio_low_en/index.m3u8",
    ]
    assert [(m.type, m.group_id, m.language) for m in parsed.media] == [
        ("AUDIO", "aud", "en"),
        ("AUDIO", "aud", "fr"),
        ("AUDIO", "aud_low", "en"),
        ("AUDIO", "aud_low", "fr"),
        ("SUBTITLES", "subs", "fr"),
    ]


def test_master_playlist_of_an_ended_session_names_the_replay_lists() -> None:
    spec = LadderSpec(languages=EN_FR, subtitles=(SubtitleTrack("fr", "Français"),))
    parsed = m3u8.loads(master_playlist(spec, ended=True))
    assert [p.uri for p in parsed.playlists] == [
        "1080p/vod.m3u8",
        "720p/vod.m3u8",
        "480p/vod.m3u8",
        "360p/vod.m3u8",
        "audio_low_en/vod.m3u8",
    ]
    assert [m.uri for m in parsed.media] == [
        "audio_en/vod.m3u8",
        "audio_fr/vod.m3u8",
        "audio_low_en/vod.m3u8",
        "audio_low_fr/vod.m3u8",
        "subs_fr/vod.m3u8",
    ]


def test_live_window_is_three_minutes_of_segments_by_default() -> None:
    assert LadderSpec().window_segments == 90
    assert LadderSpec(segment_s=4, live_window_s=60).window_segments == 15


def test_codecs_from_ffmpeg_master_reads_video_codec_per_folder() -> None:
    text = (
        "#EXTM3U\n#EXT-X-VERSION:7\n"
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="group_aud",NAME="audio_2",URI="audio_en/index.m3u8"\n'
        '#EXT-X-STREAM-INF:BANDWIDTH=1,RESOLUTION=320x180,CODECS="avc1.42c00c,mp4a.40.2",'
        'AUDIO="group_aud"\n180p/index.m3u8\n\n'
    )
    assert codecs_from_ffmpeg_master(text) == {"180p": "avc1.42c00c"}


def test_ladder_argv_runs_in_real_ffmpeg(tmp_path: Path) -> None:
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    rungs = (Rung("180p", 320, 180, 300, 64), Rung("90p", 160, 90, 100, 64))
    spec = LadderSpec(
        rungs=rungs, fps=10, preset="ultrafast", languages=EN_FR, languages_by_input=True
    )
    source = LadderInput("testsrc2=size=320x180:rate=10:duration=3", ("-f", "lavfi"))
    en = LadderInput("sine=frequency=440:duration=3", ("-f", "lavfi"))
    fr = LadderInput("sine=frequency=880:duration=3", ("-f", "lavfi"))
    argv = ladder_argv(ffmpeg, [source, en, fr], spec, tmp_path)
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert (result.returncode, result.stderr) == (0, "")
    folders = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert folders == ["180p", "90p", "audio_en", "audio_fr", "audio_low_en", "audio_low_fr"]
    playlist = m3u8.load(str(tmp_path / "180p" / ".encoder.m3u8"))
    assert [s.duration for s in playlist.segments] == [2.0, 1.0]
    assert playlist.segment_map[0].uri == "init_180p.mp4"
    assert codecs_from_ffmpeg_master((tmp_path / "ffmpeg_master.m3u8").read_text()) == {
        "180p": "avc1.42c028",
        "90p": "avc1.42c028",
    }


def test_live_playlists_name_every_rendition_of_the_master() -> None:
    """What a screen waits for: each live playlist the master names (none more, none less)."""
    spec = LadderSpec(
        rungs=(Rung("360p", 640, 360, 800, 96), Rung("240p", 426, 240, 400, 64)),
        languages=(AudioLanguage("en", "English", default=True), AudioLanguage("fr", "French")),
        subtitles=(SubtitleTrack("en", "English"),),
    )
    named = {
        uri
        for line in master_playlist(spec).splitlines()
        for uri in (
            [line] if line and not line.startswith("#") else re.findall(r'URI="([^"]+)"', line)
        )
    }

    assert set(live_playlists(spec)) == named
