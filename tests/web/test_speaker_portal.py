"""The speaker portal over HTTP: link, upload protocol, checks, normalisation, approval."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path

import imageio_ffmpeg
import pytest
from fastapi.testclient import TestClient

from summitcast.domain.accounts import Role
from summitcast.domain.uploads import crc32c_digest, file_checksum
from summitcast.media.testclips import make_clip
from summitcast.services import audit_trail, programme, speakers
from summitcast.storage.database import Database
from summitcast.storage.tables import Item, ItemMedia, Upload
from tests.conftest import grant, log_in, make_summit, make_user

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(settings):  # type: ignore[no-untyped-def]
    """Small programme format and small chunks, so real ffmpeg stays quick; no background worker."""
    return settings.model_copy(
        update={
            "programme_width": 320,
            "programme_height": 180,
            "programme_fps": 15,
            "normalise_preset": "ultrafast",
            "upload_chunk_bytes": 64 * 1024,
            "max_upload_bytes": 50 * 1024 * 1024,
            "job_workers": False,
        }
    )


def _setup(database: Database, secret: bytes, *, duration_s: int = 60) -> tuple[str, int]:
    summit = make_summit(database, "portal")
    with database.session() as db:
        summit = programme.get_summit(db, "portal")
        session = programme.add_session(
            db,
            summit,
            programme.SessionInput(
                title="Opening",
                planned_start=datetime(2027, 7, 17, 10, tzinfo=UTC),
                planned_end=datetime(2027, 7, 17, 11, tzinfo=UTC),
            ),
        )
        item = programme.add_item(
            db, session, programme.ItemInput(title="Keynote", planned_duration_s=duration_s)
        )
        speaker = programme.add_speaker(db, summit, programme.SpeakerInput(name="Ana Lima"))
        invitation = speakers.invite_speaker(db, summit, item, speaker.id, valid_days=30)
        return speakers.invitation_token(invitation, secret), item.id


def _secret(app) -> bytes:  # type: ignore[no-untyped-def]
    return app.state.settings.secret_key.get_secret_value().encode()


def _upload(
    client: TestClient, token: str, data: bytes, *, chunk: int = 64 * 1024, checksum: str = ""
) -> str:
    """Upload data as upload.js does (chunks with their CRC-32C); the upload's address."""
    created = client.post(
        f"/speak/{token}/uploads",
        json={
            "size": len(data),
            "kind": "programme",
            "filename": "talk.mp4",
            "checksum": checksum,
        },
    )
    assert created.status_code == 201, created.text
    url = created.json()["url"]
    for offset in range(0, len(data), chunk):
        part = data[offset : offset + chunk]
        digest = base64.b64encode(crc32c_digest(part)).decode()
        response = client.patch(
            url,
            content=part,
            headers={"Upload-Offset": str(offset), "Upload-Checksum": f"crc32c {digest}"},
        )
        if response.status_code == 422:
            break
        assert response.status_code == 204, response.text
    return url


def test_portal_page_shows_slot_in_local_time_and_limit(
    client: TestClient, app, database: Database
) -> None:  # type: ignore[no-untyped-def]
    token, _item = _setup(database, _secret(app), duration_s=8 * 60)

    page = client.get(f"/speak/{token}")

    assert page.status_code == 200
    assert 'datetime="2027-07-17T10:00:00+00:00" data-local' in page.text
    assert '<dd id="limit">8 minutes</dd>' in page.text
    assert "Hello Ana Lima" in page.text
    assert page.headers["cache-control"] == "no-store"


def test_upload_resumes_checks_normalises_and_item_turns_ready(
    client: TestClient, app, database: Database, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    token, item_id = _setup(database, _secret(app))
    clip = make_clip(imageio_ffmpeg.get_ffmpeg_exe(), tmp_path / "talk.mp4", duration_s=2.0)
    data = clip.read_bytes()
    created = client.post(
        f"/speak/{token}/uploads",
        json={
            "size": len(data),
            "kind": "programme",
            "filename": "talk.mp4",
            "checksum": file_checksum(data),
        },
    )
    url = created.json()["url"]
    half = 64 * 1024
    first = client.patch(url, content=data[:half], headers={"Upload-Offset": "0"})
    # The same chunk again (its answer was "lost"): accepted, nothing appended twice.
    again = client.patch(url, content=data[:half], headers={"Upload-Offset": "0"})
    gap = client.patch(url, content=data[2 * half :], headers={"Upload-Offset": str(2 * half)})
    head = client.head(url)
    with database.session() as db:
        assert db.get(Item, item_id).status == "uploading"
    offset = int(head.headers["upload-offset"])
    while offset < len(data):
        response = client.patch(
            url, content=data[offset : offset + half], headers={"Upload-Offset": str(offset)}
        )
        offset = int(response.headers["upload-offset"])

    assert (first.status_code, again.status_code, gap.status_code) == (204, 204, 409)
    assert gap.headers["upload-offset"] == str(half)
    assert head.headers["upload-offset"] == str(half)
    status = client.get(url).json()
    # The file's SHA-256 is the check job's first step.
    assert (status["state"], status["checksum"]) == ("checking", None)
    with database.session() as db:
        assert db.get(Item, item_id).status == "processing"

    assert _drain(app) >= 2

    status = client.get(url).json()
    assert (status["state"], status["checksum"]) == ("ready", file_checksum(data))
    with database.session() as db:
        item = db.get(Item, item_id)
        media = db.query(ItemMedia).filter_by(item_id=item_id, kind="programme").one()
        assert item.status == "ready"
        assert Path(media.path).exists()
    page = client.get(f"/speak/{token}")
    poster = re.search(r'poster="([^"]+)"', page.text)
    assert poster is not None
    assert client.get(poster.group(1)).headers["content-type"] == "image/jpeg"
    assert client.get(f"{url}/preview.mp4").headers["content-type"] == "video/mp4"


def test_file_other_than_the_one_declared_is_rejected_by_its_checksum(
    client: TestClient, app, database: Database, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    token, item_id = _setup(database, _secret(app))
    clip = make_clip(imageio_ffmpeg.get_ffmpeg_exe(), tmp_path / "talk.mp4", duration_s=1.0)
    data = clip.read_bytes()
    url = _upload(client, token, data, checksum=file_checksum(b"another"))

    assert _drain(app) == 1  # the check stops at the checksum: no probe, no normalisation

    status = client.get(url).json()
    assert (status["state"], status["checksum"]) == ("rejected", file_checksum(data))
    assert status["findings"] == [
        {
            "level": "problem",
            "message": "The file that arrived differs from the one you chose (its checksum "
            "does not match). Please upload it again.",
        }
    ]
    with database.session() as db:
        assert db.get(Item, item_id).status == "problem"
        upload = db.query(Upload).one()
        assert not (app.state.settings.effective_upload_dir / upload.stored_name).exists()


def _drain(app) -> int:  # type: ignore[no-untyped-def]
    from summitcast.runtime.job_worker import JobWorker

    upload_jobs = app.state.upload_jobs
    worker = JobWorker(
        app.state.database, upload_jobs.handlers(), on_failure=upload_jobs.failure_hooks()
    )
    return worker.drain()


def test_zip_renamed_mov_is_refused_on_its_first_chunk(
    client: TestClient, app, database: Database
) -> None:  # type: ignore[no-untyped-def]
    token, item_id = _setup(database, _secret(app))
    data = b"PK\x03\x04" + b"\x00" * 5000
    created = client.post(
        f"/speak/{token}/uploads",
        json={"size": len(data), "kind": "programme", "filename": "talk.mov"},
    )

    response = client.patch(created.json()["url"], content=data, headers={"Upload-Offset": "0"})

    assert response.status_code == 422
    assert response.json()["detail"].startswith("This is a ZIP archive, not a video")
    with database.session() as db:
        assert db.get(Item, item_id).status == "problem"


def test_empty_and_oversized_files_are_refused_before_any_byte(
    client: TestClient, app, database: Database
) -> None:  # type: ignore[no-untyped-def]
    token, _item = _setup(database, _secret(app))

    empty = client.post(f"/speak/{token}/uploads", json={"size": 0, "kind": "programme"})
    huge = client.post(
        f"/speak/{token}/uploads", json={"size": 51 * 1024 * 1024, "kind": "programme"}
    )

    assert empty.status_code == 422
    assert empty.json()["detail"] == "The file is empty (0 bytes): choose your recording again."
    assert huge.status_code == 413
    assert huge.json()["detail"].startswith("Your file is 53.5 MB; the most we accept is 52.4 MB.")


def test_chunk_with_wrong_checksum_is_refused_and_not_stored(
    client: TestClient, app, database: Database, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    token, _item = _setup(database, _secret(app))
    data = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100
    created = client.post(f"/speak/{token}/uploads", json={"size": len(data), "kind": "programme"})
    url = created.json()["url"]
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()

    response = client.patch(
        url, content=data, headers={"Upload-Offset": "0", "Upload-Checksum": f"sha256 {wrong}"}
    )

    assert response.status_code == 422
    assert client.head(url).headers["upload-offset"] == "0"


def test_organiser_approves_or_asks_for_a_new_take(
    client: TestClient, app, database: Database, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    token, item_id = _setup(database, _secret(app))
    clip = make_clip(imageio_ffmpeg.get_ffmpeg_exe(), tmp_path / "talk.mp4", duration_s=2.0)
    data = clip.read_bytes()
    _upload(client, token, data)
    _drain(app)
    organiser = make_user(database, "org@example.org")
    with database.session() as db:
        summit = programme.get_summit(db, "portal")
    grant(database, organiser, summit, Role.ORGANISER)
    csrf = log_in(client, "org@example.org")

    page = client.get(f"/backstage/s/portal/items/{item_id}/speaker")
    approved = client.post(
        f"/backstage/s/portal/items/{item_id}/approve",
        data={"csrf_token": csrf},
        follow_redirects=False,
    )
    with database.session() as db:
        status_after_approval = db.get(Item, item_id).status
    retake = client.post(
        f"/backstage/s/portal/items/{item_id}/retake",
        data={"csrf_token": csrf, "reason": "Please look into the camera."},
        follow_redirects=False,
    )

    assert page.status_code == 200
    assert 'id="approve"' in page.text
    # Whole, as `sha256sum` prints it: the speaker can compare it with their own file.
    assert f'SHA-256 <code class="checksum">{file_checksum(data)}</code>' in page.text
    assert (approved.status_code, status_after_approval) == (303, "approved")
    assert retake.status_code == 303
    with database.session() as db:
        assert db.get(Item, item_id).status == "missing"
    portal = client.get(f"/speak/{token}")
    assert "The organisers ask you for a new recording: Please look into the camera." in portal.text
    with database.session() as db:
        trail = audit_trail.events_of(db, programme.get_summit(db, "portal"))
        logged = [(e.action, e.subject, e.user_id) for e in trail]
    assert logged == [
        ("item.approved", f"item:{item_id}", organiser.id),
        ("item.retake_requested", f"item:{item_id}", organiser.id),
    ]
