"""The chunk use cases over the in-memory upload files: whole, and after a crash."""

from __future__ import annotations

import os

import pytest

from summitcast.config import Settings
from summitcast.domain.uploads import UploadState
from summitcast.runtime.upload_jobs import chunk_store
from summitcast.services import upload_chunks, uploads
from summitcast.storage.chunks import MemoryChunkFiles
from summitcast.storage.database import Database
from tests.services.test_uploads_lifecycle import CHUNK, MP4_HEAD, _create, _invitation, _send

pytestmark = pytest.mark.integration


@pytest.fixture
def small(settings: Settings) -> Settings:
    """64 KiB chunks, no background workers."""
    return settings.model_copy(update={"upload_chunk_bytes": CHUNK, "job_workers": False})


def _stored(database: Database, public_id: str) -> tuple[str, int, int, str]:
    with database.session() as db:
        upload = uploads.upload_by_public_id(db, public_id)
        return upload.state, upload.received, upload.synced, upload.stored_name


def test_a_whole_upload_lands_durable_in_memory(small: Settings, database: Database) -> None:
    files = MemoryChunkFiles(machine="boot-a")
    store = uploads.ChunkStore(files, chunk_store(small).limits)
    data = MP4_HEAD + os.urandom(3 * CHUNK - len(MP4_HEAD) + 100)
    public_id = _create(database, store, _invitation(database), len(data))

    for offset in range(0, len(data), CHUNK):
        _send(database, store, public_id, offset, data[offset : offset + CHUNK])

    state, received, synced, name = _stored(database, public_id)
    assert (state, received, synced) == (UploadState.CHECKING, len(data), len(data))
    assert files.read(name, 0, len(data) + 1) == data
    assert files.durable(name) == len(data)


def test_a_chunk_lost_with_its_machine_is_asked_for_again(
    small: Settings, database: Database
) -> None:
    before = MemoryChunkFiles(machine="boot-a")
    limits = chunk_store(small).limits
    store = uploads.ChunkStore(before, limits)
    data = MP4_HEAD + os.urandom(5 * CHUNK - len(MP4_HEAD))
    public_id = _create(database, store, _invitation(database), len(data))
    for offset in range(0, 3 * CHUNK, CHUNK):
        _send(database, store, public_id, offset, data[offset : offset + CHUNK])

    before.lose_unsynced()  # the third chunk's sync was still in flight
    after = uploads.ChunkStore(before.on_machine("boot-b"), limits)
    with database.session() as db:
        changed = upload_chunks.recover_unsynced(
            db, after, uploads.upload_by_public_id(db, public_id)
        )

    assert changed
    assert _stored(database, public_id)[:3] == (UploadState.RECEIVING, 2 * CHUNK, 2 * CHUNK)
    for offset in range(2 * CHUNK, len(data), CHUNK):  # the client follows the offset
        _send(database, after, public_id, offset, data[offset : offset + CHUNK])
    assert after.files.read(_stored(database, public_id)[3], 0, len(data)) == data
