"""ChunkSink: aligned pieces go to disk directly (O_DIRECT), the rest through the page cache."""

from __future__ import annotations

import errno
import mmap
import os
import random
from pathlib import Path
from typing import Any

import pytest

from summitcast.domain.uploads import UploadKind, crc32c_digest
from summitcast.services import uploads
from summitcast.services.uploads import DIRECT_ALIGN, ChunkSink, ChunkTicket

pytestmark = pytest.mark.unit


def _ticket(path: Path, offset: int, length: int) -> ChunkTicket:
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
    )


def _aligned(data: bytes) -> memoryview:
    """data in page-aligned memory, as ChunkStore.lend_buffers gives it."""
    buffer = mmap.mmap(-1, max(len(data), 1))
    buffer[: len(data)] = data
    return memoryview(buffer)[: len(data)]


def _sink_with_direct_opens(
    monkeypatch: pytest.MonkeyPatch, path: Path, offset: int, length: int
) -> tuple[ChunkSink, list[int]]:
    """A sink on path whose opens are recorded: [flags of each open]."""
    opened: list[int] = []
    real_open = os.open

    def recording_open(name: Any, flags: int, *args: Any) -> int:
        opened.append(flags)
        return real_open(name, flags, *args)

    monkeypatch.setattr(uploads.os, "open", recording_open)
    return ChunkSink(_ticket(path, offset, length)), opened


def test_aligned_pieces_are_written_directly_and_an_unaligned_tail_through_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(7)
    before = b"\xff" * (2 * DIRECT_ALIGN)  # the chunks stored already
    data = rng.randbytes(3 * DIRECT_ALIGN + 100)  # the chunk's last piece is not aligned
    path = tmp_path / "upload"
    path.write_bytes(before)
    sink, opened = _sink_with_direct_opens(monkeypatch, path, len(before), len(data))
    try:
        sink.write([_aligned(data[: 2 * DIRECT_ALIGN])], aligned=True)
        sink.write([_aligned(data[2 * DIRECT_ALIGN :])], aligned=True)
        digests = sink.finish()
    finally:
        sink.close()

    assert path.read_bytes() == before + data
    assert digests.crc32c == crc32c_digest(data)
    assert [bool(flags & os.O_DIRECT) for flags in opened] == [False, True]


def test_without_direct_io_the_bytes_go_through_the_page_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = random.Random(8).randbytes(4 * DIRECT_ALIGN)
    path = tmp_path / "upload"
    path.write_bytes(b"")
    real_open = os.open

    def no_direct(name: Any, flags: int, *args: Any) -> int:
        if flags & os.O_DIRECT:  # as tmpfs answers
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(name, flags, *args)

    monkeypatch.setattr(uploads.os, "open", no_direct)
    sink = ChunkSink(_ticket(path, 0, len(data)))
    try:
        for at in range(0, len(data), DIRECT_ALIGN):
            sink.write([_aligned(data[at : at + DIRECT_ALIGN])], aligned=True)
        digests = sink.finish()
    finally:
        sink.close()

    assert path.read_bytes() == data
    assert digests.crc32c == crc32c_digest(data)


def test_a_direct_write_the_device_refuses_is_written_again_through_the_page_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = random.Random(9).randbytes(2 * DIRECT_ALIGN)
    path = tmp_path / "upload"
    path.write_bytes(b"")
    real_pwrite = os.pwrite
    direct_fds: set[int] = set()

    def refusing_pwrite(fd: int, view: Any, position: int) -> int:
        if fd in direct_fds:  # a device wanting a larger alignment
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd, view, position)

    monkeypatch.setattr(uploads.os, "pwrite", refusing_pwrite)
    real_open = os.open

    def remember_direct(name: Any, flags: int, *args: Any) -> int:
        fd = real_open(name, flags, *args)
        if flags & os.O_DIRECT:
            direct_fds.add(fd)
        return fd

    monkeypatch.setattr(uploads.os, "open", remember_direct)
    sink = ChunkSink(_ticket(path, 0, len(data)))
    try:
        sink.write([_aligned(data[:DIRECT_ALIGN])], aligned=True)
        sink.write([_aligned(data[DIRECT_ALIGN:])], aligned=True)  # no direct attempt again
        digests = sink.finish()
    finally:
        sink.close()

    assert path.read_bytes() == data
    assert digests.crc32c == crc32c_digest(data)
    assert len(direct_fds) == 1


def test_pieces_not_marked_aligned_never_use_direct_io(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = bytes(range(256)) * 64  # 4 blocks, from ordinary memory
    path = tmp_path / "upload"
    path.write_bytes(b"")
    sink, opened = _sink_with_direct_opens(monkeypatch, path, 0, len(data))
    try:
        sink.write([data])
        sink.finish()
    finally:
        sink.close()

    assert path.read_bytes() == data
    assert not any(flags & os.O_DIRECT for flags in opened)
