"""Upload chunks on SQLite and PostgreSQL: checksums, the running hash, resumption, expiry."""

from __future__ import annotations

import hashlib
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from summitcast.app import create_app
from summitcast.config import Settings
from summitcast.domain.programme import ItemStatus
from summitcast.domain.uploads import UploadState
from summitcast.errors import ConflictError, ValidationError
from summitcast.media.upload_worker import chunk_store
from summitcast.services import programme, speakers, uploads
from summitcast.storage.database import Database
from summitcast.storage.tables import Item, SpeakerInvitation, Upload
from tests.conftest import make_summit

pytestmark = pytest.mark.integration

CHUNK = 64 * 1024
MP4_HEAD = b"\x00\x00\x00\x18ftypmp42"  # sniffed as MP4; the checks never run here


@pytest.fixture
def small(settings: Settings) -> Settings:
    """64 KiB chunks, no background workers (tests drive them)."""
    return settings.model_copy(update={"upload_chunk_bytes": CHUNK, "job_workers": False})


def _invitation(database: Database) -> int:
    make_summit(database, "uploads")
    with database.session() as db:
        summit = programme.get_summit(db, "uploads")
        session = programme.add_session(
            db,
            summit,
            programme.SessionInput(
                title="S",
                planned_start=datetime(2027, 7, 17, 10, tzinfo=UTC),
                planned_end=datetime(2027, 7, 17, 11, tzinfo=UTC),
            ),
        )
        item = programme.add_item(db, session, programme.ItemInput(title="Talk"))
        speaker = programme.add_speaker(db, summit, programme.SpeakerInput(name="Ana"))
        return speakers.invite_speaker(db, summit, item, speaker.id, valid_days=1).id


def _create(database: Database, store: uploads.ChunkStore, invitation_id: int, size: int) -> str:
    with database.session() as db:
        invitation = db.get(SpeakerInvitation, invitation_id)
        assert invitation is not None
        return uploads.create_upload(db, store, invitation, size=size, kind="programme").public_id


def _send(
    database: Database,
    store: uploads.ChunkStore,
    public_id: str,
    offset: int,
    data: bytes,
    checksum: bytes | None = None,
) -> Upload:
    with database.session() as db:
        upload = uploads.upload_by_public_id(db, public_id)
        digest = hashlib.sha256(data).digest() if checksum is None else checksum
        return uploads.write_chunk(db, store, upload, offset=offset, data=data, checksum=digest)


def _row(database: Database, public_id: str) -> tuple[str, int, str]:
    with database.session() as db:
        upload = uploads.upload_by_public_id(db, public_id)
        return upload.state, upload.received, upload.sha256


def _file(store: uploads.ChunkStore, database: Database, public_id: str) -> Path:
    with database.session() as db:
        return store.path_of(uploads.upload_by_public_id(db, public_id))


def test_damaged_chunk_is_refused_and_leaves_no_trace_in_file_or_hash(
    small: Settings, database: Database
) -> None:
    store = chunk_store(small)
    data = MP4_HEAD + os.urandom(3 * CHUNK - len(MP4_HEAD))
    public_id = _create(database, store, _invitation(database), len(data))
    _send(database, store, public_id, 0, data[:CHUNK])

    bad = bytearray(data[CHUNK : 2 * CHUNK])
    bad[100] ^= 0xFF  # one bit flipped in transit; the client's checksum is of the good bytes
    with pytest.raises(ValidationError, match="arrived damaged"):
        good = hashlib.sha256(data[CHUNK : 2 * CHUNK]).digest()
        _send(database, store, public_id, CHUNK, bytes(bad), good)
    after_damage = (_row(database, public_id), _file(store, database, public_id).stat().st_size)
    _send(database, store, public_id, CHUNK, data[CHUNK : 2 * CHUNK])
    _send(database, store, public_id, 2 * CHUNK, data[2 * CHUNK :])

    assert after_damage == ((UploadState.RECEIVING, CHUNK, ""), CHUNK)
    state, received, sha = _row(database, public_id)
    assert (state, received) == (UploadState.CHECKING, len(data))
    assert sha == hashlib.sha256(data).hexdigest()
    assert _file(store, database, public_id).read_bytes() == data


def test_upload_resumed_by_another_process_hashes_the_whole_file(
    small: Settings, database: Database
) -> None:
    data = MP4_HEAD + os.urandom(5 * CHUNK)
    first = chunk_store(small)
    public_id = _create(database, first, _invitation(database), len(data))
    _send(database, first, public_id, 0, data[:CHUNK])
    _send(database, first, public_id, CHUNK, data[CHUNK : 2 * CHUNK])

    # Another node (or a restarted app): no running hash in memory, the prefix is re-read.
    other = chunk_store(small)
    half = CHUNK + CHUNK // 2  # overlaps what was received: a retry after a lost answer
    _send(database, other, public_id, half, data[half : half + CHUNK])
    for offset in range(half + CHUNK, len(data), CHUNK):
        _send(database, other, public_id, offset, data[offset : offset + CHUNK])

    assert _row(database, public_id)[2] == hashlib.sha256(data).hexdigest()


def test_chunk_that_differs_from_bytes_received_before_is_refused(
    small: Settings, database: Database
) -> None:
    store = chunk_store(small)
    data = MP4_HEAD + os.urandom(2 * CHUNK)
    public_id = _create(database, store, _invitation(database), len(data))
    _send(database, store, public_id, 0, data[:CHUNK])

    with pytest.raises(ConflictError, match="differ from what was received"):
        _send(database, store, public_id, 0, b"\x00" * CHUNK)

    assert _row(database, public_id)[1] == CHUNK


def test_expiry_task_of_the_running_app_deletes_stale_partial_uploads(
    small: Settings, database: Database
) -> None:
    settings = small.model_copy(
        update={
            "job_workers": True,
            "job_poll_interval_s": 0.05,
            "upload_partial_expiry_s": 1.0,
            "upload_sweep_interval_s": 0.1,
        }
    )
    invitation_id = _invitation(database)
    with database.session() as db:
        token = speakers.invitation_token(
            db.get(SpeakerInvitation, invitation_id),  # type: ignore[arg-type]
            settings.secret_key.get_secret_value().encode(),
        )
    app = create_app(settings, database=database)
    store = app.state.upload_store
    data = MP4_HEAD + os.urandom(2 * CHUNK)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        created = client.post(f"/speak/{token}/uploads", json={"size": len(data)}).json()
        public_id = created["id"]
        sent = client.patch(created["url"], content=data[:CHUNK], headers={"Upload-Offset": "0"})
        assert sent.status_code == 204
        path = _file(store, database, public_id)
        assert path.stat().st_size == CHUNK
        with database.session() as db:
            item = db.get(Item, db.get(SpeakerInvitation, invitation_id).item_id)  # type: ignore[union-attr]
            assert item is not None
            assert item.status == ItemStatus.UPLOADING

        deadline = time.monotonic() + 15
        while _row(database, public_id)[0] != UploadState.EXPIRED:
            assert time.monotonic() < deadline, "the cleanup task never expired the upload"
            time.sleep(0.1)
        late = client.patch(
            created["url"], content=data[CHUNK : 2 * CHUNK], headers={"Upload-Offset": str(CHUNK)}
        )

    assert not path.exists()
    assert late.status_code == 409
    assert "expired" in late.json()["detail"]
    with database.session() as db:
        item = db.get(Item, db.get(SpeakerInvitation, invitation_id).item_id)  # type: ignore[union-attr]
        assert item is not None
        assert item.status == ItemStatus.MISSING


def test_expiry_spares_fresh_partials_and_finished_uploads(
    small: Settings, database: Database
) -> None:
    store = chunk_store(small)
    invitation_id = _invitation(database)
    data = MP4_HEAD + os.urandom(CHUNK - len(MP4_HEAD))
    finished = _create(database, store, invitation_id, len(data))
    _send(database, store, finished, 0, data)
    stale = _create(database, store, invitation_id, 2 * len(data))
    _send(database, store, stale, 0, data)
    fresh = _create(database, store, invitation_id, 2 * len(data))
    _send(database, store, fresh, 0, data)
    later = datetime.now(UTC) + timedelta(seconds=small.upload_partial_expiry_s + 60)
    with database.session() as db:
        uploads.upload_by_public_id(db, fresh).expires_at = later + timedelta(hours=1)

    with database.session() as db:
        count = uploads.expire_partials(db, store, now=later)

    assert count == 1
    assert [_row(database, p)[0] for p in (finished, stale, fresh)] == [
        UploadState.CHECKING,
        UploadState.EXPIRED,
        UploadState.RECEIVING,
    ]
    assert _file(store, database, finished).exists()
    assert not _file(store, database, stale).exists()
    assert _file(store, database, fresh).exists()
