"""DiskChunkFiles: each written piece's writeback starts at once; BackgroundSyncs syncs a chunk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from summitcast.storage import chunks
from summitcast.storage.chunks import BackgroundSyncs

pytestmark = pytest.mark.unit


def test_writeback_starter_takes_a_real_file(tmp_path: Path) -> None:
    """sync_file_range from libc is called with the right types (no ctypes error)."""
    path = tmp_path / "upload"
    path.write_bytes(b"x" * 4096)
    fd = os.open(path, os.O_WRONLY)
    try:
        chunks.start_writeback(fd, 0, 4096)
        chunks.start_writeback(fd, 1 << 40, 4096)  # beyond the end: nothing to write, no error
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


def test_machine_id_is_this_boot_or_a_name_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert chunks.machine_id() == chunks.machine_id()
    monkeypatch.setattr(chunks, "BOOT_ID", tmp_path / "missing")
    unknown = chunks.machine_id()
    assert unknown.startswith("process-")
    assert unknown != chunks.machine_id()  # no other process may take it for its own
