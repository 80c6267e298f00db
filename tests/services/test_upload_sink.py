"""ChunkSink writes and checksums a chunk and starts its writeback; BackgroundSyncs syncs it."""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path

import pytest

from summitcast.domain.uploads import UploadKind, crc32c_digest
from summitcast.services import uploads
from summitcast.services.uploads import BackgroundSyncs, ChunkDigests, ChunkSink, ChunkTicket

pytestmark = pytest.mark.unit


def _ticket(path: Path, offset: int, length: int, *, synced: int = 0) -> ChunkTicket:
    return ChunkTicket(
        upload_id=1,
        path=path,
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
    sink = ChunkSink(_ticket(path, offset, sum(len(piece) for piece in pieces)))
    try:
        for piece in pieces:
            sink.write([piece])
        return sink.finish()
    finally:
        sink.close()


def _record_writebacks(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Record each writeback the sink starts as (offset, length), and start it for real."""
    started: list[tuple[int, int]] = []
    real_start = uploads.start_writeback

    def recording(fd: int, offset: int, length: int) -> None:
        started.append((offset, length))
        real_start(fd, offset, length)

    monkeypatch.setattr(uploads, "start_writeback", recording)
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
    sink = ChunkSink(_ticket(path, 0, 10))
    try:
        sink.write([b"12345"])
        with pytest.raises(uploads.ValidationError, match="ended after 5 of its 10 bytes"):
            sink.finish()
        with pytest.raises(uploads.ValidationError, match="more than the 10 bytes"):
            sink.write([b"1234567"])
    finally:
        sink.close()
    assert path.read_bytes() == b"12345"


def test_writeback_starter_takes_a_real_file(tmp_path: Path) -> None:
    """sync_file_range from libc is called with the right types (no ctypes error)."""
    path = tmp_path / "upload"
    path.write_bytes(b"x" * 4096)
    fd = os.open(path, os.O_WRONLY)
    try:
        uploads.start_writeback(fd, 0, 4096)
        uploads.start_writeback(fd, 1 << 40, 4096)  # beyond the end: nothing to write, no error
    finally:
        os.close(fd)


def _record_syncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the size of the file at each fdatasync (what the sync covers), then sync it."""
    sizes: list[int] = []
    real_fdatasync = os.fdatasync

    def recording(fd: int) -> None:
        sizes.append(os.fstat(fd).st_size)
        real_fdatasync(fd)

    monkeypatch.setattr(os, "fdatasync", recording)
    return sizes


def test_a_background_sync_tells_where_it_made_the_file_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "upload"
    path.write_bytes(b"a" * 300)
    sizes = _record_syncs(monkeypatch)
    syncs = BackgroundSyncs()

    syncs.start(7, path, 300)

    assert syncs.wait(7) == 300
    assert sizes == [300]
    assert syncs.wait(7) == 0  # told once: the next chunk's record takes it
    assert syncs.wait(8) == 0  # never started in this process


def test_a_background_sync_then_drops_the_synced_pages_from_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "upload"
    path.write_bytes(b"a" * 300)
    events: list[tuple[str, int, int]] = []
    real_fdatasync, real_fadvise = os.fdatasync, os.posix_fadvise

    def fdatasync(fd: int) -> None:
        events.append(("sync", 0, os.fstat(fd).st_size))
        real_fdatasync(fd)

    def fadvise(fd: int, offset: int, length: int, advice: int) -> None:
        assert advice == os.POSIX_FADV_DONTNEED
        events.append(("drop", offset, length))
        real_fadvise(fd, offset, length, advice)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    monkeypatch.setattr(os, "posix_fadvise", fadvise)
    syncs = BackgroundSyncs()
    syncs.start(7, path, 200)  # bytes from 200 on are the next chunk's, being written

    assert syncs.wait(7) == 200
    assert events == [("sync", 0, 300), ("drop", 0, 200)]  # only pages already clean


def test_a_failed_background_sync_counts_for_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "upload"
    path.write_bytes(b"a" * 300)

    def failing(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", failing)
    syncs = BackgroundSyncs()
    syncs.start(7, path, 300)

    assert syncs.wait(7) == 0


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
    store = uploads.ChunkStore(tmp_path, uploads.UploadLimits(10_000, 300, 60), machine="m")
    store.syncs = syncs
    result: list[int] = []
    waiter = threading.Thread(
        target=lambda: result.append(
            uploads._durable_before(store, _ticket(path, 300, 300, synced=0))
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
    store = uploads.ChunkStore(tmp_path, uploads.UploadLimits(10_000, 300, 60), machine="m")

    synced = uploads._durable_before(store, _ticket(path, 300, 300, synced=0))

    assert synced == 600  # this chunk too: the sync covered it
    assert sizes == [600]


def test_machine_id_is_this_boot_or_a_name_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert uploads.machine_id() == uploads.machine_id()
    monkeypatch.setattr(uploads, "BOOT_ID", tmp_path / "missing")
    unknown = uploads.machine_id()
    assert unknown.startswith("process-")
    assert unknown != uploads.machine_id()  # no other process may take it for its own
