"""After a crash: the chunk not yet synced is read back and kept only if it reached the disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from summitcast.config import Settings
from summitcast.domain.uploads import UploadState, crc32c_digest
from summitcast.runtime.upload_jobs import chunk_store
from summitcast.services import upload_chunks, uploads
from summitcast.storage.chunks import DiskChunkFiles
from summitcast.storage.database import Database
from tests.services.test_uploads_lifecycle import CHUNK, MP4_HEAD, _create, _invitation, _send

pytestmark = pytest.mark.integration


@pytest.fixture
def small(settings: Settings) -> Settings:
    """64 KiB chunks, no background workers."""
    return settings.model_copy(update={"upload_chunk_bytes": CHUNK, "job_workers": False})


def _store(settings: Settings, machine: str) -> uploads.ChunkStore:
    """The upload folder as seen by one boot of one machine."""
    return uploads.ChunkStore(
        DiskChunkFiles(settings.effective_upload_dir, machine=machine),
        chunk_store(settings).limits,
    )


def _state(database: Database, public_id: str) -> tuple[int, int, str, bytes]:
    with database.session() as db:
        upload = uploads.upload_by_public_id(db, public_id)
        return upload.received, upload.synced, upload.synced_on, bytes(upload.chunk_digests)


def _recover(database: Database, store: uploads.ChunkStore, public_id: str) -> bool:
    with database.session() as db:
        return upload_chunks.recover_unsynced(db, store, uploads.upload_by_public_id(db, public_id))


def _three_chunks_on(small: Settings, database: Database) -> tuple[str, bytes, Path]:
    """An upload of 5 chunks, 3 of them sent through machine "boot-a"; (id, data, file)."""
    data = MP4_HEAD + os.urandom(5 * CHUNK - len(MP4_HEAD))
    before = _store(small, "boot-a")
    public_id = _create(database, before, _invitation(database), len(data))
    for offset in range(0, 3 * CHUNK, CHUNK):
        _send(database, before, public_id, offset, data[offset : offset + CHUNK])
    path = next(small.effective_upload_dir.iterdir())
    return public_id, data, path


def _digests(data: bytes, count: int) -> bytes:
    return b"".join(crc32c_digest(data[at : at + CHUNK]) for at in range(0, count * CHUNK, CHUNK))


def test_a_chunk_lost_in_a_crash_is_asked_for_again(small: Settings, database: Database) -> None:
    public_id, data, path = _three_chunks_on(small, database)
    assert _state(database, public_id) == (3 * CHUNK, 2 * CHUNK, "boot-a", _digests(data, 3))
    # The machine lost power before its sync: the last chunk's pages never reached the disk.
    with path.open("r+b") as handle:
        handle.seek(2 * CHUNK + 1000)
        handle.write(bytes(5000))

    after = _store(small, "boot-b")  # the same machine after its restart, or another one
    assert _recover(database, after, public_id)

    assert _state(database, public_id) == (2 * CHUNK, 2 * CHUNK, "boot-b", _digests(data, 2))
    assert path.stat().st_size == 2 * CHUNK
    for offset in range(2 * CHUNK, len(data), CHUNK):  # the client follows the offset
        _send(database, after, public_id, offset, data[offset : offset + CHUNK])
    assert path.read_bytes() == data
    with database.session() as db:
        assert uploads.upload_by_public_id(db, public_id).state == UploadState.CHECKING


def test_a_torn_chunk_is_asked_for_again_whole(small: Settings, database: Database) -> None:
    public_id, data, path = _three_chunks_on(small, database)
    with path.open("r+b") as handle:  # only the chunk's first 100 bytes reached the disk
        handle.truncate(2 * CHUNK + 100)

    assert _recover(database, _store(small, "boot-b"), public_id)

    assert _state(database, public_id)[:2] == (2 * CHUNK, 2 * CHUNK)
    assert path.read_bytes() == data[: 2 * CHUNK]


def test_an_unsynced_chunk_that_survived_is_kept_and_counted_synced(
    small: Settings, database: Database
) -> None:
    public_id, data, path = _three_chunks_on(small, database)

    assert _recover(database, _store(small, "boot-b"), public_id)

    assert _state(database, public_id) == (3 * CHUNK, 3 * CHUNK, "boot-b", _digests(data, 3))
    assert path.read_bytes() == data[: 3 * CHUNK]


def test_the_machine_that_wrote_the_chunk_checks_nothing(
    small: Settings, database: Database
) -> None:
    """Its kernel still holds the pages: a restarted process loses nothing."""
    public_id, _data, path = _three_chunks_on(small, database)
    with path.open("r+b") as handle:
        handle.truncate(2 * CHUNK)  # would be noticed, were it checked

    assert not _recover(database, _store(small, "boot-a"), public_id)
    assert _state(database, public_id)[:2] == (3 * CHUNK, 2 * CHUNK)


def test_no_check_while_a_writer_holds_the_next_chunk(small: Settings, database: Database) -> None:
    """A live claim means the machine that wrote the last chunk is not gone."""
    public_id, _data, _path = _three_chunks_on(small, database)
    with database.session() as db:
        upload = uploads.upload_by_public_id(db, public_id)
        upload_chunks.begin_chunk(
            db, _store(small, "boot-a"), upload, offset=3 * CHUNK, length=CHUNK
        )

    assert not _recover(database, _store(small, "boot-b"), public_id)
    assert _state(database, public_id)[:3] == (3 * CHUNK, 2 * CHUNK, "boot-a")
