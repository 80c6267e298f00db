"""Golden command lines of normalisation, and one real run on a 2-second clip."""

from __future__ import annotations

from pathlib import Path

import av
import imageio_ffmpeg
import pytest

from summitcast.media import normalise
from summitcast.media.testclips import make_clip
from summitcast.media.upload_probe import Loudness, measure_loudness, parse_loudnorm

FMT = normalise.ProgrammeFormat()
MEASURED = Loudness(
    input_i=-30.5, input_tp=-9.1, input_lra=3.2, input_thresh=-40.7, target_offset=0.3
)


def test_normalise_argv_is_golden() -> None:
    argv = normalise.normalise_argv(
        "ffmpeg", Path("in.mov"), Path("out.mp4"), FMT, measured=MEASURED
    )

    assert argv == [
        "ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-nostats",
        "-progress", "pipe:1", "-i", "in.mov", "-map", "0:v:0", "-map", "0:a:0",
        "-vf",
        "scale=1920:1080:force_original_aspect_ratio=decrease,"
        "pad=1920:1080:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1,fps=30,format=yuv420p",
        "-af",
        "aformat=channel_layouts=stereo,loudnorm=I=-23.0:TP=-1.0:LRA=11.0:measured_I=-30.5"
        ":measured_TP=-9.1:measured_LRA=3.2:measured_thresh=-40.7:offset=0.3:linear=true,"
        "aresample=48000",
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-profile:v", "high",
        "-g", "60", "-c:a", "aac", "-b:a", "160k", "-ar", "48000", "-ac", "2",
        "-map_metadata", "-1", "-movflags", "+faststart", "out.mp4",
    ]  # fmt: skip


def test_normalise_argv_without_audio_adds_a_silent_bed() -> None:
    argv = normalise.normalise_argv(
        "ffmpeg", Path("in.mp4"), Path("out.mp4"), FMT, measured=None, has_audio=False
    )

    assert argv[11:15] == ["-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo"]
    assert argv[15:19] == ["-map", "0:v:0", "-map", "1:a:0"]
    assert argv[-2:] == ["-shortest", "out.mp4"]
    assert argv[argv.index("-af") + 1] == "anull"


def test_single_pass_loudnorm_when_nothing_was_measured() -> None:
    assert normalise.audio_filter(FMT, None) == (
        "aformat=channel_layouts=stereo,loudnorm=I=-23.0:TP=-1.0:LRA=11.0,aresample=48000"
    )


def test_poster_argv_is_golden() -> None:
    assert normalise.poster_argv("ffmpeg", Path("o.mp4"), Path("p.jpg"), at_s=2.0) == [
        "ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-ss", "2.000",
        "-i", "o.mp4", "-frames:v", "1", "-vf", "scale=640:-2", "-q:v", "4", "p.jpg",
    ]  # fmt: skip


def test_poster_time_stays_inside_short_clips() -> None:
    assert [normalise.poster_time(d) for d in (0.0, 1.5, 60.0)] == [0.0, 0.5, 3.0]


def test_parse_loudnorm_reads_silence_as_very_quiet() -> None:
    stderr = (
        '[Parsed_loudnorm_1 @ 0x1]\n{\n\t"input_i" : "-inf",\n\t"input_tp" : "-inf",\n'
        '\t"input_lra" : "0.00",\n\t"input_thresh" : "-inf",\n'
        '\t"output_i" : "-70",\n\t"target_offset" : "inf"\n}\n'
    )

    assert parse_loudnorm(stderr) == Loudness(-99.0, -99.0, 0.0, -99.0, -99.0)


@pytest.mark.e2e
def test_real_normalise_conforms_size_rate_loudness_and_faststart(tmp_path: Path) -> None:
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    source = make_clip(ffmpeg, tmp_path / "in.mp4", duration_s=2.0, width=320, height=240, fps=12)
    fmt = normalise.ProgrammeFormat(width=320, height=180, fps=25, preset="ultrafast")
    measured = measure_loudness(ffmpeg, source, target_lufs=-23.0, timeout_s=60)
    output = tmp_path / "out.mp4"
    progress: list[float] = []

    normalise.run(
        normalise.normalise_argv(ffmpeg, source, output, fmt, measured=measured),
        duration_s=2.0,
        on_progress=progress.append,
    )
    after = measure_loudness(ffmpeg, output, target_lufs=-23.0, timeout_s=60)

    with av.open(str(output)) as out:
        video, audio = out.streams.video[0], out.streams.audio[0]
        assert (video.codec_context.width, video.codec_context.height) == (320, 180)
        assert float(video.average_rate) == 25.0
        assert (audio.codec_context.sample_rate, audio.codec_context.channels) == (48000, 2)
    assert output.read_bytes()[4:8] == b"ftyp"
    assert output.read_bytes().find(b"moov") < output.read_bytes().find(b"mdat")  # faststart
    assert after is not None
    assert abs(after.input_i - (-23.0)) < 1.5
    assert progress[-1] == 1.0


@pytest.mark.e2e
def test_failed_ffmpeg_reports_its_stderr(tmp_path: Path) -> None:
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    (tmp_path / "bad.mp4").write_bytes(b"not media")

    with pytest.raises(
        normalise.NormaliseError, match=r"^ffmpeg exit code 183: .*Invalid data found"
    ):
        normalise.run(
            normalise.normalise_argv(
                ffmpeg, tmp_path / "bad.mp4", tmp_path / "o.mp4", FMT, measured=None
            ),
            duration_s=1.0,
        )
