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
from summitcast.services.uploads import DIRECT_ALIGN, ChunkDigests, ChunkSink, ChunkTicket

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


def _record_opens(
    monkeypatch: pytest.MonkeyPatch, *, refuse_direct: bool = False
) -> list[tuple[int, int]]:
    """Record the sink's opens as (flags, fd); fd -1 where O_DIRECT was refused, as tmpfs does."""
    opened: list[tuple[int, int]] = []
    real_open = os.open

    def recording_open(name: Any, flags: int, *args: Any) -> int:
        if refuse_direct and flags & os.O_DIRECT:
            opened.append((flags, -1))
            raise OSError(errno.EINVAL, "Invalid argument")
        fd = real_open(name, flags, *args)
        opened.append((flags, fd))
        return fd

    monkeypatch.setattr(uploads.os, "open", recording_open)
    return opened


def _sink_write(
    path: Path, offset: int, pieces: list[bytes | memoryview], *, aligned: bool = True
) -> ChunkDigests:
    """Write one chunk of these pieces at offset through a ChunkSink; its digests."""
    sink = ChunkSink(_ticket(path, offset, sum(len(piece) for piece in pieces)))
    try:
        for piece in pieces:
            sink.write([piece], aligned=aligned)
        return sink.finish()
    finally:
        sink.close()


def _direct(opened: list[tuple[int, int]]) -> list[bool]:
    return [bool(flags & os.O_DIRECT) for flags, _fd in opened]


def test_aligned_pieces_are_written_directly_and_an_unaligned_tail_through_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(7)
    before = b"\xff" * (2 * DIRECT_ALIGN)  # the chunks stored already
    data = rng.randbytes(3 * DIRECT_ALIGN + 100)  # the chunk's last piece is not aligned
    path = tmp_path / "upload"
    path.write_bytes(before)
    opened = _record_opens(monkeypatch)

    digests = _sink_write(
        path, len(before), [_aligned(data[: 2 * DIRECT_ALIGN]), _aligned(data[2 * DIRECT_ALIGN :])]
    )

    assert path.read_bytes() == before + data
    assert digests.crc32c == crc32c_digest(data)
    assert _direct(opened) == [False, True]


def test_without_direct_io_the_bytes_go_through_the_page_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = random.Random(8).randbytes(4 * DIRECT_ALIGN)
    path = tmp_path / "upload"
    path.write_bytes(b"")
    opened = _record_opens(monkeypatch, refuse_direct=True)

    digests = _sink_write(
        path,
        0,
        [_aligned(data[at : at + DIRECT_ALIGN]) for at in range(0, len(data), DIRECT_ALIGN)],
    )

    assert path.read_bytes() == data
    assert digests.crc32c == crc32c_digest(data)
    assert _direct(opened) == [False, True]  # refused once, never asked again


def test_a_direct_write_the_device_refuses_is_written_again_through_the_page_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = random.Random(9).randbytes(2 * DIRECT_ALIGN)
    path = tmp_path / "upload"
    path.write_bytes(b"")
    opened = _record_opens(monkeypatch)
    real_pwrite = os.pwrite

    def refusing_pwrite(fd: int, view: Any, position: int) -> int:
        if (os.O_WRONLY | os.O_DIRECT, fd) in opened:  # a device wanting a larger alignment
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd, view, position)

    monkeypatch.setattr(uploads.os, "pwrite", refusing_pwrite)

    # The second piece makes no direct attempt again.
    digests = _sink_write(path, 0, [_aligned(data[:DIRECT_ALIGN]), _aligned(data[DIRECT_ALIGN:])])

    assert path.read_bytes() == data
    assert digests.crc32c == crc32c_digest(data)
    assert _direct(opened) == [False, True]


def test_pieces_not_marked_aligned_never_use_direct_io(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = bytes(range(256)) * 64  # 4 blocks, from ordinary memory
    path = tmp_path / "upload"
    path.write_bytes(b"")
    opened = _record_opens(monkeypatch)

    _sink_write(path, 0, [data], aligned=False)

    assert path.read_bytes() == data
    assert _direct(opened) == [False]
