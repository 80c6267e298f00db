"""The bad-input matrix of issue 5: each file gets a clear message, no worker crash, none ready.

Stand-ins are small: the "4K 60 fps phone video rotated 90°" is 320x180 at 60 fps with
the same display-rotation flag a phone writes (3840x2160 would only cost CPU here).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import imageio_ffmpeg
import pytest

from summitcast.config import Settings
from summitcast.media.testclips import make_clip
from summitcast.runtime.job_worker import JobWorker
from summitcast.runtime.upload_jobs import UploadJobs, chunk_store
from summitcast.services import jobs, programme, upload_chunks, upload_results, uploads
from summitcast.storage.database import Database
from summitcast.storage.tables import Item, Job, SpeakerInvitation, Upload
from tests import factories
from tests.conftest import make_summit

pytestmark = pytest.mark.e2e
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def _ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-v", "error", "-y", *args], check=True, timeout=60)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every bad file, made once by the real ffmpeg."""
    d = tmp_path_factory.mktemp("bad")
    ok = make_clip(FFMPEG, d / "ok.mp4", duration_s=3.0, fps=15)
    good = ok.read_bytes()
    # moov at the end (no faststart), then cut in half: the index never arrives.
    _ffmpeg("-i", str(ok), "-c", "copy", str(d / "slow.mov"))
    (d / "truncated.mov").write_bytes((d / "slow.mov").read_bytes()[: len(good) // 2])
    # faststart file cut in half: the index says 3 s, the data stops early.
    (d / "cut.mp4").write_bytes(good[: len(good) // 3])
    _ffmpeg("-f", "lavfi", "-i", "sine=f=440:d=2", "-c:a", "aac", str(d / "audio-only.mp4"))
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x180:d=1", "-frames:v", "1", str(d / "s.jpg"))
    (d / "still.mp4").write_bytes((d / "s.jpg").read_bytes())
    (d / "archive.mov").write_bytes(b"PK\x03\x04\x14\x00\x00\x00" + good[:4000])
    (d / "empty.mp4").write_bytes(b"")
    _ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=15:d=2",
        "-f", "lavfi", "-i", "sine=f=440:d=2",
        "-filter_complex", "[1:a]pan=7.1|c0=c0|c1=c0|c2=c0|c3=c0|c4=c0|c5=c0|c6=c0|c7=c0[a]",
        "-map", "0:v", "-map", "[a]", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
        str(d / "surround.mp4"),
    )  # fmt: skip
    _ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30:d=3",
        "-f", "lavfi", "-i", "sine=f=440:d=3",
        "-vf", r"select='lt(n\,30)+not(mod(n\,3))'", "-fps_mode", "vfr",
        "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(d / "vfr.mp4"),
    )  # fmt: skip
    _ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=60:d=2",
        "-f", "lavfi", "-i", "sine=f=440:d=2",
        "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(d / "flat.mp4"),
    )  # fmt: skip
    _ffmpeg(
        "-display_rotation", "-90", "-i", str(d / "flat.mp4"), "-c", "copy", str(d / "phone.mp4")
    )
    srt = "1\n00:00:01,000 --> 00:00:03,000\nBienvenue à tous, chère assemblée\n"
    (d / "latin1.srt").write_bytes(srt.encode("latin-1"))
    (d / "good.srt").write_bytes(srt.encode("utf-8"))
    _ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=15:d=20",
        "-f", "lavfi", "-i", "sine=f=440:d=20",
        "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(d / "long.mp4"),
    )  # fmt: skip
    return {p.stem: p for p in d.iterdir()}


@pytest.fixture
def env(settings: Settings, database: Database) -> tuple[Settings, Database]:
    small = settings.model_copy(
        update={
            "programme_width": 320,
            "programme_height": 180,
            "programme_fps": 15,
            "normalise_preset": "ultrafast",
            "max_upload_bytes": 2 * 1024 * 1024,
            "upload_chunk_bytes": 1024 * 1024,
        }
    )
    return small, database


def _run(env: tuple[Settings, Database], path: Path, *, kind: str = "programme",
         language: str = "", slot_s: int = 10) -> tuple[Upload, str, list[Job]]:  # fmt: skip
    settings, database = env
    store = chunk_store(settings)
    handlers = UploadJobs(settings, database, store)
    worker = JobWorker(database, handlers.handlers(), on_failure=handlers.failure_hooks())
    make_summit(database, f"s{abs(hash(path.name)) % 10**6}")
    with database.session() as db:
        summit = programme.list_summits(db)[-1]
        invitation = factories.invitation(
            db, summit, speaker_name="S", planned_duration_s=slot_s, valid_days=5
        )
        data = path.read_bytes()
        upload = uploads.create_upload(
            db, store, invitation, size=len(data), kind=kind, language=language
        )
        for offset in range(0, len(data), store.limits.chunk_bytes):
            upload = upload_chunks.write_chunk(
                db,
                store,
                upload,
                offset=offset,
                data=data[offset : offset + store.limits.chunk_bytes],
            )
            if upload.state == "rejected":
                break
        upload_id, item_id = upload.id, invitation.item_id
    worker.drain()
    with database.session() as db:
        return (
            db.get(Upload, upload_id),
            db.get(Item, item_id).status,
            jobs.jobs_of_upload(db, upload_id),
        )


def _problems(upload: Upload) -> list[str]:
    return [f["message"] for f in upload.findings if f["level"] == "problem"]


def test_truncated_video_without_index_is_refused(env, clips) -> None:  # type: ignore[no-untyped-def]
    upload, status, ran = _run(env, clips["truncated"])

    assert (upload.state, status) == ("rejected", "problem")
    assert _problems(upload) == [
        "Your file is cut off before its end: the export or the copy may not have finished. "
        "Please export it again, wait until it is complete, and upload the new file."
    ]
    assert upload.facts["unreadable"].startswith("truncated: its 'mdat' box should end at byte")
    assert [j.state for j in ran] == ["done"]


def test_mp4_head_then_garbage_is_refused_in_plain_words(env, clips, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    hostile = tmp_path / "hostile.mp4"
    hostile.write_bytes(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\xab" * 70_000)

    upload, status, _ran = _run(env, hostile)

    assert (upload.state, status) == ("rejected", "problem")
    assert _problems(upload) == [
        "We could not read your file: it is not a video or sound format we know, or it is "
        "damaged. Please export your recording again (MP4 works best) and upload the new file."
    ]
    assert upload.facts["unreadable"] == (
        "[Errno 1094995529] Invalid data found when processing input"
    )


def test_failure_text_of_ffmpeg_stays_backstage(env, clips) -> None:  # type: ignore[no-untyped-def]
    from summitcast.services import notifications

    _settings, database = env
    upload, _status, _ran = _run(env, clips["ok"])
    tool_text = (
        "ffmpeg exit code 1: [h264 @ 0x55d] Decoder (codec none) not found for input "
        "stream #0:0 | /srv/summitcast/uploads/3f9a"
    )
    with database.session() as db:
        row = db.get(Upload, upload.id)
        row.state = "processing"
        upload_results.record_failure(db, row, tool_text)
        status = uploads.status_of(row)
        speaker_id = db.get(SpeakerInvitation, row.invitation_id).speaker_id
        told = notifications.notices_for(db, speaker_id, row.item_id)[0].message

    plain = (
        "Your file uses a picture or sound format we cannot play. Please export it as MP4 "
        "(H.264 video, AAC sound) and upload it again."
    )
    assert (status["state"], status["problem"], told) == ("failed", plain, plain)
    with database.session() as db:
        assert db.get(Upload, upload.id).problem == tool_text  # the organisers' detail


def test_video_cut_off_after_its_index_is_refused(env, clips) -> None:  # type: ignore[no-untyped-def]
    upload, status, _ran = _run(env, clips["cut"])

    assert (upload.state, status) == ("rejected", "problem")
    assert _problems(upload)[0].startswith("Your file is cut off: it should last 3 seconds")


def test_audio_only_file_is_refused_as_a_speech(env, clips) -> None:  # type: ignore[no-untyped-def]
    upload, status, _ran = _run(env, clips["audio-only"])

    assert (upload.state, status) == ("rejected", "problem")
    assert _problems(upload) == [
        "Your file has sound but no picture. Please upload the video of your speech; "
        "interpretation audio goes under 'Interpretation audio'."
    ]


def test_still_image_renamed_mp4_is_refused_on_first_chunk(env, clips) -> None:  # type: ignore[no-untyped-def]
    upload, status, ran = _run(env, clips["still"])

    assert (upload.state, status, ran) == ("rejected", "problem", [])
    assert _problems(upload)[0].startswith("This is a JPEG picture, not a video")


def test_zip_renamed_mov_is_refused_on_first_chunk(env, clips) -> None:  # type: ignore[no-untyped-def]
    upload, status, ran = _run(env, clips["archive"])

    assert (upload.state, status, ran) == ("rejected", "problem", [])
    assert _problems(upload)[0].startswith("This is a ZIP archive, not a video")


def test_empty_file_is_refused_at_creation(env, clips) -> None:  # type: ignore[no-untyped-def]
    from summitcast.errors import ValidationError

    with pytest.raises(ValidationError, match=r"^The file is empty \(0 bytes\)"):
        _run(env, clips["empty"])


def test_file_over_the_cap_is_refused_at_creation(env, clips, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from summitcast.domain.uploads import FileTooLargeError

    big = tmp_path / "big.mp4"
    big.write_bytes(clips["ok"].read_bytes() * 0 + b"\x00" * (2 * 1024 * 1024 + 1))

    with pytest.raises(
        FileTooLargeError, match=r"^Your file is 2.1 MB; the most we accept is 2.1 MB"
    ):
        _run(env, big)


def test_surround_audio_is_mixed_down_and_item_turns_ready(env, clips) -> None:  # type: ignore[no-untyped-def]
    upload, status, _ran = _run(env, clips["surround"])

    assert (upload.state, status) == ("ready", "ready")
    assert "Your sound has 8 channels (7.1 surround); we mix it down to stereo." in [
        f["message"] for f in upload.findings
    ]


def test_variable_frame_rate_is_made_constant(env, clips) -> None:  # type: ignore[no-untyped-def]
    upload, status, _ran = _run(env, clips["vfr"])

    assert (upload.state, status) == ("ready", "ready")
    assert (
        "Your video has a variable frame rate (common on phones); "
        "we convert it to a steady 15 frames per second."
    ) in [f["message"] for f in upload.findings]


def test_rotated_60fps_phone_video_is_turned_upright_and_pillarboxed(env, clips) -> None:  # type: ignore[no-untyped-def]
    import av

    upload, status, _ran = _run(env, clips["phone"])

    messages = [f["message"] for f in upload.findings]
    assert (upload.state, status) == ("ready", "ready")
    assert "Your video is stored turned by 90°; we turn it upright." in messages
    assert messages[1].startswith("Your video is upright (portrait).")
    with av.open(upload.output_path) as out:
        stream = out.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (320, 180)
        assert float(stream.average_rate) == 15.0


def test_subtitles_in_wrong_encoding_are_refused(env, clips) -> None:  # type: ignore[no-untyped-def]
    upload, status, _ran = _run(env, clips["latin1"], kind="subtitles", language="fr")

    assert upload.state == "rejected"
    assert status == "missing"  # subtitles never move the speech itself
    assert _problems(upload)[0].startswith("Your subtitle file is not saved as UTF-8 text")


def test_utf8_subtitles_become_webvtt(env, clips) -> None:  # type: ignore[no-untyped-def]
    upload, _status, _ran = _run(env, clips["good"], kind="subtitles", language="fr")

    assert upload.state == "ready"
    assert Path(upload.output_path).read_text(encoding="utf-8") == (
        "WEBVTT\n\n1\n00:00:01.000 --> 00:00:03.000\nBienvenue à tous, chère assemblée\n"
    )


def test_video_longer_than_its_slot_is_refused_in_plain_words(env, clips) -> None:  # type: ignore[no-untyped-def]
    upload, status, _ran = _run(env, clips["long"], slot_s=4)

    assert (upload.state, status) == ("rejected", "problem")
    assert _problems(upload) == [
        "Your video is 20 seconds; your slot is 4 seconds. "
        "Please shorten it to 4 seconds or less and upload it again."
    ]
