"""The files speakers' uploads are written to, chunk by chunk: the seam and its two twins.

``ChunkFiles`` is what the upload use cases need of the disk: create a file, write a
chunk's pieces in place, read it back, cut it short, make it durable (now, or in the
background while the next chunk travels) and lend the write buffers a chunk is received
into. ``DiskChunkFiles`` is the real folder (shared by every node that serves the upload
protocol); ``MemoryChunkFiles`` keeps the bytes in the process, for tests. Both pass
tests/storage/test_chunk_files.py.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import mmap
import os
import secrets
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

# A chunk's bytes go to its file and checksum in pieces of this size (a thread hop each).
# Measured per GiB of server CPU (1 GiB in 8 MiB chunks): 512 KiB 1.96 s, 1 MiB 1.78 s,
# 2 MiB 2.6-4.3 s (the buffer no longer stays in cache between copy, hash and write).
WRITE_BUFFER_BYTES = 1024 * 1024
# Buffers lent to each chunk being received, and kept for the next chunks: at most SPARE.
BUFFERS_PER_CHUNK = 4
SPARE_BUFFERS = 16
# sync_file_range(2): start writing a range's dirty pages back, without waiting for them.
SYNC_FILE_RANGE_WRITE = 2
# Where Linux names this boot of the kernel (whose page cache holds unsynced bytes).
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")

# A write buffer: a page-aligned anonymous mapping on disk, plain memory in the twin.
WriteBuffer = mmap.mmap | bytearray


class ChunkWriter(Protocol):
    """An open upload file a chunk's pieces are written into, in place."""

    def write(self, position: int, pieces: Sequence[bytes | memoryview]) -> None:
        """Write the pieces one after another from position on."""

    def close(self) -> None:
        """Close the file (idempotent)."""


class ChunkFiles(Protocol):
    """The files of uploads, by their stored (random) names."""

    @property
    def machine(self) -> str:
        """This boot of this machine: bytes it wrote but did not sync are lost only with it."""

    def create(self, name: str) -> None:
        """A new empty file; FileExistsError if the name is taken (never reuse one)."""

    def writer(self, name: str) -> ChunkWriter:
        """The file opened for writing chunks; FileNotFoundError if there is none."""

    def read(self, name: str, offset: int, length: int) -> bytes:
        """Up to length bytes from offset (fewer at the end); FileNotFoundError if none."""

    def truncate(self, name: str, size: int) -> None:
        """Cut the file to size bytes; a missing file is left missing."""

    def delete(self, name: str) -> None:
        """Delete the file; a missing one is no error."""

    def sync(self, name: str, *, release_before: int = 0, whole: bool = False) -> None:
        """Make written bytes durable now (whole: with the metadata); FileNotFoundError if none.

        ``release_before``: afterwards, drop the (clean) cached pages before that offset.
        """

    def sync_in_background(self, key: int, name: str, end: int) -> None:
        """Begin making the file durable, its bytes before end all written; see wait_for_sync."""

    def wait_for_sync(self, key: int) -> int:
        """Wait for this process's background sync under key: where it made the file durable.

        0 when there was none, or it failed (the caller syncs again itself). Told once.
        """

    def path(self, name: str) -> Path:
        """Where a tool that reads files itself (ffmpeg) finds the file."""

    def lend_buffers(self) -> list[WriteBuffer]:
        """Write buffers for one chunk being received: some fill while others are written."""

    def give_back(self, buffers: Sequence[WriteBuffer]) -> None:
        """Take lent buffers back (no write may still be using them)."""


def _writeback_starter() -> Callable[[int, int, int], None]:
    """start_writeback(fd, offset, length): begin writing a range to disk, not waiting."""
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (AttributeError, OSError):
        return lambda _fd, _offset, _length: None  # not Linux: the sync writes it all
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int

    def start(fd: int, offset: int, length: int) -> None:
        # Its result is not checked: a refusal only loses the head start, never bytes.
        function(fd, offset, length, SYNC_FILE_RANGE_WRITE)

    return start


start_writeback = _writeback_starter()


def sync_file(path: Path, *, release_before: int = 0, whole: bool = False) -> None:
    """Make a file's written bytes durable; then drop its pages before release_before."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if whole:
            os.fsync(fd)
        else:
            os.fdatasync(fd)
        if release_before:
            # Synced pages are clean: dropping them frees them at once, and the next chunks'
            # writes get these warm pages back (1.79-1.83 s per GiB instead of 2.02-2.10
            # here, 13:35), rather than memory the VM has not touched yet. An upload is not
            # read again until its check job, so it should not crowd other files out.
            os.posix_fadvise(fd, 0, release_before, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def machine_id() -> str:
    """This boot of this machine: bytes it wrote but did not sync are lost only with it."""
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        # Unknown: a name no other process has, so any other one checks what we leave unsynced.
        return f"process-{secrets.token_hex(8)}"


# Shared by every DiskChunkFiles of the process: a sync is short, threads start on demand.
_SYNC_THREADS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="upload-sync")


class BackgroundSyncs:
    """Make each upload's chunks durable in the background, while the next chunk travels.

    A chunk's answer does not wait for its sync: on the VMs we measured, a sync (the
    device flushing its cache) took 8-10 ms per 8 MiB chunk, as long as receiving the chunk,
    and the client waits for each answer. The next chunk's record waits for it instead,
    so at most one chunk per upload is unsynced (see services.upload_chunks.recover_unsynced).
    """

    def __init__(self) -> None:
        self._pending: dict[int, tuple[int, Future[None]]] = {}  # upload id: (end, its sync)
        self._lock = threading.Lock()  # the record of chunks runs in worker threads

    def start(self, upload_id: int, path: Path, end: int) -> None:
        """Begin syncing an upload's file, whose bytes before end are all written."""
        future = _SYNC_THREADS.submit(sync_file, path, release_before=end)
        with self._lock:
            self._pending[upload_id] = (end, future)
            if len(self._pending) > 1000:  # abandoned uploads: keep only syncs still running
                for key in [k for k, (_e, f) in self._pending.items() if f.done()]:
                    del self._pending[key]

    def wait(self, upload_id: int) -> int:
        """Wait for this process's sync of an upload, if any; where it made it durable (0: none)."""
        with self._lock:
            end, future = self._pending.pop(upload_id, (0, None))
        if future is None:
            return 0
        try:
            future.result()
        except OSError as exc:
            # The caller syncs again itself, and fails the chunk if the disk fails again.
            log.warning("sync of upload %s failed: %s", upload_id, exc)
            return 0
        return end


class _BufferPool:
    """Write buffers lent to each chunk being received, and kept for the next chunks."""

    def __init__(self, make: Callable[[], WriteBuffer]) -> None:
        self._make = make
        self._spare: list[WriteBuffer] = []

    def lend(self) -> list[WriteBuffer]:
        # Reused, not allocated per chunk: the received pieces are copied into them and
        # freed at once, so the allocator hands the next piece the same warm memory. Pieces
        # kept until written cost 0.24-0.43 server CPU-s more per GiB here (~0.7 in a bare
        # hash-and-write receiver; benchmarks/README.md, upload). Event loop only: no lock.
        return [
            self._spare.pop() if self._spare else self._make() for _ in range(BUFFERS_PER_CHUNK)
        ]

    def give_back(self, buffers: Sequence[WriteBuffer]) -> None:
        room = SPARE_BUFFERS - len(self._spare)
        self._spare.extend(buffers[: max(0, room)])


class _DiskWriter:
    """Writes a chunk's pieces in place, each piece's writeback to disk started at once.

    Measured on the project's VMs (benchmarks/README.md, "Upload: fifth session"): direct
    writes (O_DIRECT), one 1 MiB write at a time, reached the disk at 600-700 MiB/s; the
    page cache with early writeback (sync_file_range) took the same GiB in 0.3-0.8 s, so
    the sync that makes the chunk durable finds little left to write.
    """

    def __init__(self, path: Path) -> None:
        self._fd: int | None = os.open(path, os.O_WRONLY)

    def write(self, position: int, pieces: Sequence[bytes | memoryview]) -> None:
        fd = self._fd
        assert fd is not None, "written after close"
        for piece in pieces:
            view = memoryview(piece)
            length = len(view)
            at = position
            while view:  # pwrite until every byte is written (a signal may cut it short)
                done = os.pwrite(fd, view, at)
                at += done
                view = view[done:]
            start_writeback(fd, position, length)
            position += length

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class DiskChunkFiles:
    """The folder of uploads (outside the web root), shared by every node of the protocol."""

    def __init__(self, folder: Path, *, machine: str = "") -> None:
        self.folder = folder
        self._machine = machine or machine_id()
        self.syncs = BackgroundSyncs()
        self._buffers = _BufferPool(lambda: mmap.mmap(-1, WRITE_BUFFER_BYTES))

    @property
    def machine(self) -> str:
        """This boot of this machine (or the name it was given)."""
        return self._machine

    def path(self, name: str) -> Path:
        """The file's path in the folder."""
        return self.folder / name

    def create(self, name: str) -> None:
        """A new empty file, readable by this user only."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        # O_EXCL: a random name that already exists means something is badly wrong.
        os.close(os.open(self.path(name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))

    def writer(self, name: str) -> ChunkWriter:
        """The file opened for writing in place."""
        return _DiskWriter(self.path(name))

    def read(self, name: str, offset: int, length: int) -> bytes:
        """Bytes read back from the file."""
        with self.path(name).open("rb") as handle:
            handle.seek(offset)
            return handle.read(length)

    def truncate(self, name: str, size: int) -> None:
        """Cut the file short, if it is there."""
        with contextlib.suppress(FileNotFoundError):
            os.truncate(self.path(name), size)

    def delete(self, name: str) -> None:
        """Delete the file, if it is there."""
        self.path(name).unlink(missing_ok=True)

    def sync(self, name: str, *, release_before: int = 0, whole: bool = False) -> None:
        """fdatasync (fsync when whole) the file now."""
        sync_file(self.path(name), release_before=release_before, whole=whole)

    def sync_in_background(self, key: int, name: str, end: int) -> None:
        """Sync on the shared sync threads; the synced pages are dropped from the cache."""
        self.syncs.start(key, self.path(name), end)

    def wait_for_sync(self, key: int) -> int:
        """Wait for the background sync under key."""
        return self.syncs.wait(key)

    def lend_buffers(self) -> list[WriteBuffer]:
        """Anonymous mappings of WRITE_BUFFER_BYTES, reused from chunk to chunk."""
        return self._buffers.lend()

    def give_back(self, buffers: Sequence[WriteBuffer]) -> None:
        """Keep up to SPARE_BUFFERS for the next chunks."""
        self._buffers.give_back(buffers)


class _MemoryWriter:
    def __init__(self, files: MemoryChunkFiles, name: str) -> None:
        self._files, self._name, self._open = files, name, True

    def write(self, position: int, pieces: Sequence[bytes | memoryview]) -> None:
        assert self._open, "written after close"
        for piece in pieces:
            self._files.write(self._name, position, bytes(piece))
            position += len(piece)

    def close(self) -> None:
        self._open = False


class MemoryChunkFiles:
    """Upload files kept in the process: the twin of DiskChunkFiles for tests.

    ``durable(name)`` tells how far a file was synced, and ``lose_unsynced`` is a crash
    of the machine: a test sees what a power cut would have kept. ``on_machine`` is the
    same files seen from another node.
    """

    def __init__(self, *, machine: str = "memory", buffer_bytes: int = WRITE_BUFFER_BYTES) -> None:
        self._machine = machine
        self._files: dict[str, bytearray] = {}
        self._durable: dict[str, int] = {}
        self._pending: dict[int, tuple[str, int]] = {}  # key: (file, end) of a sync in flight
        self._lock = threading.Lock()  # writes and syncs run in worker threads
        self._buffers = _BufferPool(lambda: bytearray(buffer_bytes))

    def on_machine(self, machine: str) -> MemoryChunkFiles:
        """The same files as another machine (or this one after a restart) sees them."""
        other = MemoryChunkFiles(machine=machine)
        other._files, other._durable, other._lock = self._files, self._durable, self._lock
        return other

    @property
    def machine(self) -> str:
        """The name this twin was given."""
        return self._machine

    def path(self, name: str) -> Path:
        """Nowhere: a tool that reads files itself cannot read these."""
        raise FileNotFoundError(f"upload file {name!r} is kept in memory")

    def _file(self, name: str) -> bytearray:
        try:
            return self._files[name]
        except KeyError:
            raise FileNotFoundError(name) from None

    def create(self, name: str) -> None:
        """A new empty file."""
        with self._lock:
            if name in self._files:
                raise FileExistsError(name)
            self._files[name] = bytearray()
            self._durable[name] = 0

    def write(self, name: str, position: int, data: bytes) -> None:
        """Write data at position (a gap before it reads as zeros, as on disk)."""
        with self._lock:
            file = self._file(name)
            if len(file) < position:
                file.extend(bytes(position - len(file)))
            file[position : position + len(data)] = data

    def writer(self, name: str) -> ChunkWriter:
        """The file opened for writing in place."""
        with self._lock:
            self._file(name)
        return _MemoryWriter(self, name)

    def read(self, name: str, offset: int, length: int) -> bytes:
        """Bytes read back."""
        with self._lock:
            return bytes(self._file(name)[offset : offset + length])

    def truncate(self, name: str, size: int) -> None:
        """Cut the file short (or extend it with zeros), if it is there."""
        with self._lock:
            file = self._files.get(name)
            if file is None:
                return
            del file[size:]
            file.extend(bytes(size - len(file)))
            self._durable[name] = min(self._durable[name], size)

    def delete(self, name: str) -> None:
        """Forget the file."""
        with self._lock:
            self._files.pop(name, None)
            self._durable.pop(name, None)

    def sync(self, name: str, *, release_before: int = 0, whole: bool = False) -> None:
        """Count every byte written so far as durable."""
        with self._lock:
            self._durable[name] = len(self._file(name))

    def sync_in_background(self, key: int, name: str, end: int) -> None:
        """A sync in flight: durable only once waited for (a crash before loses it)."""
        with self._lock:
            self._file(name)
            self._pending[key] = (name, end)

    def wait_for_sync(self, key: int) -> int:
        """Finish the background sync under key; where it made the file durable (once)."""
        with self._lock:
            name, end = self._pending.pop(key, ("", 0))
            if name not in self._files:
                return 0
            self._durable[name] = max(self._durable[name], end)
            return end

    def durable(self, name: str) -> int:
        """How many of the file's first bytes a crash would keep."""
        with self._lock:
            return self._durable.get(name, 0)

    def lose_unsynced(self) -> None:
        """A crash of the machine: every file loses what was not synced."""
        with self._lock:
            for name, file in self._files.items():
                del file[self._durable[name] :]

    def lend_buffers(self) -> list[WriteBuffer]:
        """Plain buffers, reused from chunk to chunk."""
        return self._buffers.lend()

    def give_back(self, buffers: Sequence[WriteBuffer]) -> None:
        """Keep up to SPARE_BUFFERS for the next chunks."""
        self._buffers.give_back(buffers)
