"""One suite for every ChunkFiles implementation: the disk folder and its in-memory twin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from summitcast.storage.chunks import (
    BUFFERS_PER_CHUNK,
    SPARE_BUFFERS,
    ChunkFiles,
    DiskChunkFiles,
    MemoryChunkFiles,
)

pytestmark = pytest.mark.integration


@pytest.fixture(params=["memory", "disk"])
def files(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ChunkFiles]:
    if request.param == "memory":
        yield MemoryChunkFiles(machine="boot-a", buffer_bytes=4096)
    else:
        yield DiskChunkFiles(tmp_path / "uploads", machine="boot-a")


def _write(files: ChunkFiles, name: str, position: int, *pieces: bytes) -> None:
    writer = files.writer(name)
    try:
        writer.write(position, list(pieces))
    finally:
        writer.close()


def test_files_created_empty_and_never_twice(files: ChunkFiles) -> None:
    files.create("a1")

    assert files.read("a1", 0, 100) == b""
    with pytest.raises(FileExistsError):
        files.create("a1")


def test_files_pieces_land_one_after_another_in_place(files: ChunkFiles) -> None:
    files.create("a1")
    _write(files, "a1", 0, b"abc", memoryview(b"defg"))
    _write(files, "a1", 7, b"hij")
    _write(files, "a1", 2, b"C")

    assert files.read("a1", 0, 100) == b"abCdefghij"
    assert files.read("a1", 3, 4) == b"defg"
    assert files.read("a1", 20, 4) == b""  # past the end: nothing


def test_files_truncate_cuts_and_tolerates_missing(files: ChunkFiles) -> None:
    files.create("a1")
    _write(files, "a1", 0, b"0123456789")

    files.truncate("a1", 4)
    files.truncate("missing", 4)

    assert files.read("a1", 0, 100) == b"0123"
    with pytest.raises(FileNotFoundError):
        files.read("missing", 0, 1)


def test_files_delete_removes_and_tolerates_missing(files: ChunkFiles) -> None:
    files.create("a1")
    files.delete("a1")
    files.delete("a1")

    with pytest.raises(FileNotFoundError):
        files.read("a1", 0, 1)
    with pytest.raises(FileNotFoundError):
        files.writer("a1")
    with pytest.raises(FileNotFoundError):
        files.sync("a1")


def test_files_sync_now_whole_or_data_only(files: ChunkFiles) -> None:
    files.create("a1")
    _write(files, "a1", 0, b"x" * 300)

    files.sync("a1")
    files.sync("a1", whole=True)
    files.sync("a1", release_before=200)

    assert files.read("a1", 0, 400) == b"x" * 300


def test_files_background_sync_is_told_once_per_upload(files: ChunkFiles) -> None:
    files.create("a1")
    _write(files, "a1", 0, b"x" * 300)

    files.sync_in_background(7, "a1", 300)

    assert [files.wait_for_sync(7), files.wait_for_sync(7), files.wait_for_sync(8)] == [300, 0, 0]


def test_files_machine_is_the_name_given(files: ChunkFiles) -> None:
    assert files.machine == "boot-a"


def test_files_buffers_are_writable_and_reused(files: ChunkFiles) -> None:
    lent = files.lend_buffers()
    views = [memoryview(buffer) for buffer in lent]
    views[0][:3] = b"abc"

    files.give_back(lent)
    again = files.lend_buffers()

    assert len(lent) == BUFFERS_PER_CHUNK
    assert len({len(buffer) for buffer in lent}) == 1
    assert {id(buffer) for buffer in again} == {id(buffer) for buffer in lent}


def test_files_spare_buffers_are_capped(files: ChunkFiles) -> None:
    lent = [files.lend_buffers() for _ in range(SPARE_BUFFERS)]
    for buffers in lent:
        files.give_back(buffers)

    kept = {id(b) for _ in range(SPARE_BUFFERS) for b in files.lend_buffers()}

    assert len(kept & {id(b) for buffers in lent for b in buffers}) == SPARE_BUFFERS


def test_memory_twin_loses_only_what_was_not_synced() -> None:
    files = MemoryChunkFiles()
    files.create("a1")
    _write(files, "a1", 0, b"x" * 300)
    files.sync("a1")
    _write(files, "a1", 300, b"y" * 100)

    files.lose_unsynced()

    assert (files.durable("a1"), files.read("a1", 0, 1000)) == (300, b"x" * 300)
