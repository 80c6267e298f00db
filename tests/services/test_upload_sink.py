"""ChunkSink writes, checksums and starts the writeback of a chunk; its record awaits its sync."""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path

import pytest

from summitcast.domain.uploads import UploadKind, crc32c_digest
from summitcast.errors import ValidationError
from summitcast.services import upload_chunks, uploads
from summitcast.services.upload_chunks import ChunkDigests, ChunkSink, ChunkTicket
from summitcast.storage import chunks
from summitcast.storage.chunks import BackgroundSyncs, DiskChunkFiles

pytestmark = pytest.mark.unit


def _ticket(path: Path, offset: int, length: int, *, synced: int = 0) -> ChunkTicket:
    """A claimed chunk of the upload file at path (its folder: DiskChunkFiles(path.parent))."""
    return ChunkTicket(
        upload_id=1,
        name=path.name,
        offset=offset,
        length=length,
        index=offset // max(1, length),
        claim="held",
        stored_digest=b"",
        kind=UploadKind.PROGRAMME,
        sniff=False,
        size=offset + length,
        digests_before=b"",
        synced=synced,
    )


def _sink_write(path: Path, offset: int, pieces: list[bytes]) -> ChunkDigests:
    """Write one chunk of these pieces at offset through a ChunkSink; its digests."""
    sink = ChunkSink(
        _ticket(path, offset, sum(len(piece) for piece in pieces)), DiskChunkFiles(path.parent)
    )
    try:
        for piece in pieces:
            sink.write([piece])
        return sink.finish()
    finally:
        sink.close()


def _record_writebacks(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Record each writeback the sink starts as (offset, length), and start it for real."""
    started: list[tuple[int, int]] = []
    real_start = chunks.start_writeback

    def recording(fd: int, offset: int, length: int) -> None:
        started.append((offset, length))
        real_start(fd, offset, length)

    monkeypatch.setattr(chunks, "start_writeback", recording)
    return started


def test_each_written_piece_starts_its_writeback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(7)
    before = b"\xff" * 8192  # the chunks stored already
    data = rng.randbytes(3 * 4096 + 100)
    path = tmp_path / "upload"
    path.write_bytes(before)
    started = _record_writebacks(monkeypatch)

    digests = _sink_write(path, len(before), [data[:8192], data[8192:]])

    assert path.read_bytes() == before + data
    assert digests.crc32c == crc32c_digest(data)
    assert started == [(8192, 8192), (16384, len(data) - 8192)]


def test_a_short_chunk_is_refused_and_a_long_one_stops_at_its_length(tmp_path: Path) -> None:
    path = tmp_path / "upload"
    path.write_bytes(b"")
    sink = ChunkSink(_ticket(path, 0, 10), DiskChunkFiles(path.parent))
    try:
        sink.write([b"12345"])
        with pytest.raises(ValidationError, match="ended after 5 of its 10 bytes"):
            sink.finish()
        with pytest.raises(ValidationError, match="more than the 10 bytes"):
            sink.write([b"1234567"])
    finally:
        sink.close()
    assert path.read_bytes() == b"12345"


def _record_syncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the size of the file at each fdatasync (what the sync covers), then sync it."""
    sizes: list[int] = []
    real_fdatasync = os.fdatasync

    def recording(fd: int) -> None:
        sizes.append(os.fstat(fd).st_size)
        real_fdatasync(fd)

    monkeypatch.setattr(os, "fdatasync", recording)
    return sizes


def test_the_next_chunk_waits_for_the_sync_still_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "upload"
    path.write_bytes(b"a" * 300)
    release = threading.Event()
    real_fdatasync = os.fdatasync

    def slow(fd: int) -> None:
        release.wait(10)
        real_fdatasync(fd)

    monkeypatch.setattr(os, "fdatasync", slow)
    syncs = BackgroundSyncs()
    syncs.start(1, path, 300)  # the upload of _ticket
    files = DiskChunkFiles(tmp_path, machine="m")
    files.syncs = syncs
    store = uploads.ChunkStore(files, uploads.UploadLimits(10_000, 300, 60))
    result: list[int] = []
    waiter = threading.Thread(
        target=lambda: result.append(
            upload_chunks._durable_before(store, _ticket(path, 300, 300, synced=0))
        )
    )

    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive()  # the record of the next chunk waits for the disk
    release.set()
    waiter.join(10)

    assert result == [300]  # durable up to the next chunk, which is synced in its turn


def test_without_a_sync_in_this_process_the_next_chunk_syncs_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The previous chunk came through another process (or a restarted one)."""
    path = tmp_path / "upload"
    path.write_bytes(b"a" * 600)
    sizes = _record_syncs(monkeypatch)
    store = uploads.ChunkStore(
        DiskChunkFiles(tmp_path, machine="m"), uploads.UploadLimits(10_000, 300, 60)
    )

    synced = upload_chunks._durable_before(store, _ticket(path, 300, 300, synced=0))

    assert synced == 600  # this chunk too: the sync covered it
    assert sizes == [600]
