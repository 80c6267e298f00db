"""Speaker uploads: create, append chunks, finish, record check and normalisation results.

Bytes go to ``settings.upload_dir`` (outside the web root) under random names; the
speaker's file name is kept only to be shown back. The protocol is described in
``summitcast.domain.uploads``.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import hmac
import logging
import mmap
import os
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import crc32c
from sqlalchemy import ColumnElement, CursorResult, func, or_, select, update
from sqlalchemy.orm import Session as DbSession

from summitcast.domain import paging
from summitcast.domain import uploads as rules
from summitcast.domain.media_checks import Finding, Level, Verdict, speaker_reason
from summitcast.domain.programme import ItemStatus
from summitcast.domain.uploads import UploadKind, UploadState
from summitcast.errors import ConflictError, NotFoundError, ValidationError
from summitcast.services import jobs, notifications
from summitcast.services.broadcast import MediaKind, attach_media
from summitcast.services.speakers import UPLOAD_OPEN, speaker_uploads
from summitcast.storage.tables import Item, Speaker, SpeakerInvitation, Summit, Upload, utcnow

log = logging.getLogger(__name__)

JOB_CHECK = "check_upload"
JOB_NORMALISE = "normalise_upload"
# Each stored chunk's CRC-32C, 4 bytes: how a chunk sent again is compared.
DIGEST_BYTES = 4
# A chunk's writer holds a claim on the upload row for this long, renewed every
# CLAIM_RENEW_S while bytes keep coming; a writer that crashed frees it by expiry.
CLAIM_S = 60.0
CLAIM_RENEW_S = 15.0
# A writer stops writing this long before its claim runs out by its own clock, so a
# node whose clock is up to this much behind another's never writes after losing it.
CLAIM_MARGIN_S = 20.0
DAMAGED = "This chunk arrived damaged (its checksum does not match); send it again."
# A chunk's bytes go to its file and checksum in pieces of this size (a thread hop each).
# Measured per GiB of server CPU (1 GiB in 8 MiB chunks): 512 KiB 1.96 s, 1 MiB 1.78 s,
# 2 MiB 2.6-4.3 s (the buffer no longer stays in cache between copy, hash and write).
WRITE_BUFFER_BYTES = 1024 * 1024
# sync_file_range(2): start writing a range's dirty pages back, without waiting for them.
SYNC_FILE_RANGE_WRITE = 2
# Where Linux names this boot of the kernel (whose page cache holds unsynced bytes).
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


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


def sync_file(path: Path, *, release_before: int = 0) -> None:
    """Make a file's written bytes durable; then drop its pages before release_before."""
    fd = os.open(path, os.O_RDONLY)
    try:
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


# Shared by every ChunkStore of the process: a sync is short, and threads start on demand.
_SYNC_THREADS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="upload-sync")


class BackgroundSyncs:
    """Make each upload's chunks durable in the background, while the next chunk travels.

    A chunk's answer does not wait for its sync: on the VMs we measured, a sync (the
    device flushing its cache) took 8-10 ms per 8 MiB chunk, as long as receiving the chunk,
    and the client waits for each answer. The next chunk's record waits for it instead,
    so at most one chunk per upload is unsynced (see recover_unsynced).
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


@dataclass(frozen=True, slots=True)
class UploadLimits:
    """The caps an upload is held to."""

    max_bytes: int
    chunk_bytes: int
    partial_expiry_s: float


class ChunkStore:
    """The folder of uploads (shared by every node that serves the upload protocol)."""

    # Buffers of WRITE_BUFFER_BYTES lent to each chunk being received, and kept for the
    # next chunks: at most SPARE_BUFFERS.
    BUFFERS_PER_CHUNK = 4
    SPARE_BUFFERS = 16

    def __init__(self, folder: Path, limits: UploadLimits, *, machine: str = "") -> None:
        self.folder = folder
        self.limits = limits
        self.machine = machine or machine_id()
        self.syncs = BackgroundSyncs()
        self._spare: list[mmap.mmap] = []

    def path_of(self, upload: Upload) -> Path:
        """Where an upload's bytes live."""
        return self.folder / upload.stored_name

    def lend_buffers(self) -> list[mmap.mmap]:
        """Write buffers for one chunk: some fill while others are written."""
        # Reused, not allocated per chunk: the received pieces are copied into them and
        # freed at once, so the allocator hands the next piece the same warm memory. Pieces
        # kept until written cost 0.24-0.43 server CPU-s more per GiB here (~0.7 in a bare
        # hash-and-write receiver; benchmarks/README.md, upload). Event loop only: no lock.
        return [
            self._spare.pop() if self._spare else mmap.mmap(-1, WRITE_BUFFER_BYTES)
            for _ in range(self.BUFFERS_PER_CHUNK)
        ]

    def give_back(self, buffers: Sequence[mmap.mmap]) -> None:
        """Take lent buffers back (no write may still be using them)."""
        room = self.SPARE_BUFFERS - len(self._spare)
        self._spare.extend(buffers[: max(0, room)])


class ChunkBusyError(ConflictError):
    """Another connection is writing this chunk right now; try again shortly."""

    def __init__(self, offset: int, retry_after_s: int) -> None:
        super().__init__(
            "Another connection is sending this part of the file right now (an older tab?); "
            f"trying again in {retry_after_s} s."
        )
        self.offset = offset
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class ChunkTicket:
    """A chunk the caller may now receive: where its bytes go and what they must match."""

    upload_id: int
    path: Path
    offset: int
    length: int
    index: int
    claim: str  # "" when the chunk is stored already: it is compared, never written
    stored_digest: bytes  # the stored chunk's CRC-32C when claim is ""
    kind: UploadKind
    sniff: bool  # the first chunk: its head decides (once checked) what the file is
    size: int  # the whole file's
    digests_before: bytes  # the stored chunk digests when claimed (the claim keeps them so)
    synced: int = 0  # the upload's bytes before this offset were known durable at the claim


@dataclass(frozen=True, slots=True)
class ChunkOutcome:
    """Where an upload stands after a chunk: what the protocol answers."""

    state: str
    received: int
    findings: list[dict[str, Any]]

    @classmethod
    def of(cls, upload: Upload) -> ChunkOutcome:
        """The outcome as an upload row states it."""
        return cls(upload.state, upload.received, list(upload.findings or []))


@dataclass(frozen=True, slots=True)
class ChunkDigests:
    """What a received chunk hashed to."""

    crc32c: bytes  # always: it is stored, and compares a chunk sent again
    sha256: bytes | None  # only when the client checksums with SHA-256


class ChunkSink:
    """Receives one chunk's bytes: writes them in place (when claimed) and checksums them once.

    Meant for a worker thread: crc32c, hashlib and os.pwrite release the GIL on large
    buffers, so the event loop goes on receiving while a thread writes and checksums.
    Each written piece's writeback to disk starts at once (sync_file_range), so the sync
    that makes the chunk durable (BackgroundSyncs) finds little left to write. Measured
    on the project's VMs (benchmarks/README.md, "Upload: fifth session"): direct writes
    (O_DIRECT), one 1 MiB write at a time, reached the disk at 600-700 MiB/s; the page
    cache with early writeback took the same GiB in 0.3-0.8 s.
    """

    def __init__(self, ticket: ChunkTicket, *, sha256: bool = False) -> None:
        self.ticket = ticket
        self.received = 0
        self.head = b""
        self._crc = 0
        self._sha256 = hashlib.sha256() if sha256 else None
        self._fd = os.open(ticket.path, os.O_WRONLY) if ticket.claim else None
        self._write_until = time.monotonic() + CLAIM_S - CLAIM_MARGIN_S

    def claim_renewed(self, at: float) -> None:
        """The claim was renewed at monotonic time `at`: writing may go on."""
        self._write_until = at + CLAIM_S - CLAIM_MARGIN_S

    def write(self, pieces: Sequence[bytes | memoryview]) -> None:
        """Store and checksum the next pieces of the chunk."""
        count = sum(len(piece) for piece in pieces)
        if self.received + count > self.ticket.length:
            raise ValidationError(
                f"The chunk carries more than the {self.ticket.length} bytes its "
                "Content-Length announced.",
                field="chunk",
            )
        if self.ticket.sniff and len(self.head) < rules.SNIFF_BYTES:
            self.head = (self.head + b"".join(pieces))[: rules.SNIFF_BYTES]
        if self._fd is not None:
            if time.monotonic() > self._write_until:
                raise ConflictError(
                    "This chunk took so long that another connection may take it over; "
                    "send it again."
                )
            position = self.ticket.offset + self.received
            for piece in pieces:
                view = memoryview(piece)
                self._write_all(self._fd, position, view)
                start_writeback(self._fd, position, len(view))
                position += len(view)
        for piece in pieces:
            self._crc = crc32c.crc32c(piece, self._crc)
            if self._sha256 is not None:
                self._sha256.update(piece)
        self.received += count

    @staticmethod
    def _write_all(fd: int, position: int, view: memoryview) -> None:
        """pwrite until every byte is written (a signal, a full disk may cut a write short)."""
        while view:
            done = os.pwrite(fd, view, position)
            position += done
            view = view[done:]

    def finish(self) -> ChunkDigests:
        """The chunk's digests, once all its announced bytes arrived (written, not yet synced)."""
        if self.received != self.ticket.length:
            raise ValidationError(
                f"The chunk ended after {self.received} of its {self.ticket.length} bytes; "
                "send it again.",
                field="chunk",
            )
        return ChunkDigests(
            crc32c=self._crc.to_bytes(4, "big"),
            sha256=self._sha256.digest() if self._sha256 is not None else None,
        )

    def close(self) -> None:
        """Close the file."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def create_upload(
    db: DbSession,
    store: ChunkStore,
    invitation: SpeakerInvitation,
    *,
    size: int,
    kind: str,
    language: str = "",
    checksum: str = "",
    filename: str = "",
    now: datetime | None = None,
) -> Upload:
    """Start an upload for the invitation's item; refuse an empty or oversized file up front."""
    upload_kind, language, checksum = rules.validate_declaration(
        size=size,
        max_bytes=store.limits.max_bytes,
        kind=kind,
        language=language,
        checksum=checksum,
    )
    item = invitation.item
    if ItemStatus(item.status) not in UPLOAD_OPEN:
        raise ConflictError(
            f"Your speech is {item.status}: the organisers decide now. Ask them if you need "
            "to change it."
        )
    moment = now or utcnow()
    upload = Upload(
        public_id=secrets.token_urlsafe(16),
        invitation_id=invitation.id,
        item_id=item.id,
        kind=upload_kind.value,
        language=language,
        filename=filename.strip()[:255],
        size=size,
        received=0,
        expected_sha256=checksum,
        chunk_size=store.limits.chunk_bytes,
        chunk_digests=b"",
        claim="",
        stored_name=secrets.token_hex(16),  # random: never the speaker's file name
        state=UploadState.RECEIVING.value,
        expires_at=rules.expires_at(moment, store.limits.partial_expiry_s),
    )
    db.add(upload)
    store.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    # O_EXCL: a random name that already exists means something is badly wrong; never reuse.
    fd = os.open(store.path_of(upload), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    if upload_kind is UploadKind.PROGRAMME:
        item.status = ItemStatus.UPLOADING.value
    db.flush()
    return upload


def get_upload(db: DbSession, invitation: SpeakerInvitation, public_id: str) -> Upload:
    """One upload the link's speaker made to its item, or 404 (others' are not revealed)."""
    upload = db.scalar(speaker_uploads(invitation).where(Upload.public_id == public_id))
    if upload is None:
        raise NotFoundError("No such upload.")
    return upload


def upload_by_public_id(db: DbSession, public_id: str) -> Upload:
    """An upload by its protocol id, or 404; callers check it belongs to what they show."""
    upload = db.scalar(select(Upload).where(Upload.public_id == public_id))
    if upload is None:
        raise NotFoundError("No such upload.")
    return upload


def _stored_digest(upload: Upload, index: int) -> bytes:
    return bytes(upload.chunk_digests[index * DIGEST_BYTES : (index + 1) * DIGEST_BYTES])


def _rows(result: Any) -> int:
    """Rows matched by a conditional UPDATE."""
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


def begin_chunk(
    db: DbSession,
    store: ChunkStore,
    upload: Upload,
    *,
    offset: int,
    length: int,
    now: datetime | None = None,
) -> ChunkTicket:
    """Check a chunk before its bytes arrive and, if it extends the file, claim the upload.

    The claim is a conditional UPDATE (the offset must still be the stored end and no
    live claim held), so of two processes or nodes only one may write the chunk; the
    caller commits it before receiving the bytes.
    """
    if upload.state != UploadState.RECEIVING:
        late_retry = (
            upload.state != UploadState.EXPIRED
            and upload.chunk_size
            and offset + length <= len(upload.chunk_digests) // DIGEST_BYTES * upload.chunk_size
        )
        if not late_retry:
            raise ConflictError(f"This upload is {upload.state}; start a new one.")
    if not upload.chunk_size:
        raise ConflictError(
            "This upload was started before an update of summitcast; please start it again."
        )
    plan = rules.plan_chunk(
        stored=upload.received,
        offset=offset,
        length=length,
        size=upload.size,
        chunk_size=upload.chunk_size,
    )
    ticket = ChunkTicket(
        upload_id=upload.id,
        path=store.path_of(upload),
        offset=offset,
        length=length,
        index=plan.index,
        claim="",
        stored_digest=b"",
        kind=UploadKind(upload.kind),
        sniff=plan.index == 0,
        size=upload.size,
        digests_before=bytes(upload.chunk_digests),
        synced=upload.synced,
    )
    if not plan.append:
        return _replace(
            ticket,
            stored_digest=_stored_digest(upload, plan.index),
            sniff=False,
            digests_before=b"",
        )
    moment = now or utcnow()
    claim = secrets.token_hex(16)
    claimed = db.execute(
        update(Upload)
        .where(
            Upload.id == upload.id,
            Upload.state == UploadState.RECEIVING.value,
            Upload.received == offset,
            or_(Upload.claim == "", Upload.claimed_until <= moment),
        )
        .values(claim=claim, claimed_until=moment + timedelta(seconds=CLAIM_S))
        .execution_options(synchronize_session=False)
    )
    if _rows(claimed) != 1:
        db.refresh(upload)
        if upload.received != offset:
            raise rules.OffsetMismatchError(upload.received)
        if upload.state != UploadState.RECEIVING:
            raise ConflictError(f"This upload is {upload.state}; start a new one.")
        until = upload.claimed_until or moment
        raise ChunkBusyError(offset, max(1, int((until - moment).total_seconds()) + 1))
    return _replace(ticket, claim=claim)


def _replace(ticket: ChunkTicket, **changes: Any) -> ChunkTicket:
    fields = {name: getattr(ticket, name) for name in ChunkTicket.__slots__}
    return ChunkTicket(**{**fields, **changes})


def renew_claim(db: DbSession, ticket: ChunkTicket, *, now: datetime | None = None) -> bool:
    """Extend a chunk writer's claim; False if it was lost (expired and taken by another)."""
    moment = now or utcnow()
    renewed = db.execute(
        update(Upload)
        .where(Upload.id == ticket.upload_id, Upload.claim == ticket.claim)
        .values(claimed_until=moment + timedelta(seconds=CLAIM_S))
        .execution_options(synchronize_session=False)
    )
    return _rows(renewed) == 1


def abandon_chunk(db: DbSession, ticket: ChunkTicket) -> None:
    """Give up a claimed chunk (the client went away, or it was refused): drop its bytes."""
    if not ticket.claim:
        return
    released = db.execute(
        update(Upload)
        .where(Upload.id == ticket.upload_id, Upload.claim == ticket.claim)
        .values(claim="", claimed_until=None)
        .execution_options(synchronize_session=False)
    )
    if _rows(released) == 1:
        # Still ours: the UPDATE holds the row until commit, so no one writes meanwhile.
        with contextlib.suppress(FileNotFoundError):
            os.truncate(ticket.path, ticket.offset)


def end_chunk(
    db: DbSession,
    store: ChunkStore,
    ticket: ChunkTicket,
    *,
    digests: ChunkDigests,
    checksum: rules.ChunkChecksum | None,
    head: bytes = b"",
    now: datetime | None = None,
) -> ChunkOutcome:
    """Record a received chunk (checked against its checksum), and finish on the last one.

    A first chunk that is not media of the upload's kind rejects the upload: the
    outcome's state is then REJECTED and its findings say why.
    """
    if checksum is not None and not _matches(digests, checksum):
        abandon_chunk(db, ticket)  # rolled back with the error; the caller abandons again
        raise ValidationError(DAMAGED, field="chunk")
    digest = digests.crc32c
    moment = now or utcnow()
    end = ticket.offset + ticket.length
    synced = _durable_before(store, ticket) if ticket.claim else ticket.synced
    if ticket.claim and not ticket.sniff and end < ticket.size:
        # A chunk in the middle, by far the most common: one conditional UPDATE, nothing
        # loaded (~1 ms less per chunk); the claim kept the stored digests as they were.
        recorded = db.execute(
            update(Upload)
            .where(
                Upload.id == ticket.upload_id,
                Upload.claim == ticket.claim,
                Upload.state == UploadState.RECEIVING.value,
            )
            .values(
                received=end,
                chunk_digests=ticket.digests_before + digest,
                synced=synced,
                synced_on=store.machine,
                claim="",
                claimed_until=None,
                expires_at=rules.expires_at(moment, store.limits.partial_expiry_s),
            )
            .execution_options(synchronize_session=False)
        )
        if _rows(recorded) == 1:
            _sync_after(store, ticket, synced)
            return ChunkOutcome(UploadState.RECEIVING.value, end, [])
    upload = db.get(Upload, ticket.upload_id, populate_existing=True)
    if upload is None:
        raise NotFoundError("No such upload.")
    if not ticket.claim:
        if not hmac.compare_digest(digest, ticket.stored_digest):
            raise ConflictError(
                f"Bytes {ticket.offset}–{ticket.offset + ticket.length} differ from what was "
                "received before: is this the same file? Start a new upload for another file."
            )
        return ChunkOutcome.of(upload)
    if upload.state != UploadState.RECEIVING:
        raise ConflictError(f"This upload is {upload.state}; start a new one.")
    if upload.claim != ticket.claim:
        raise ConflictError(
            "This chunk took so long that another connection took it over; send it again."
        )
    if ticket.sniff:
        try:
            upload.sniffed = rules.accept_sniffed(ticket.kind, head).value
        except ValidationError as exc:
            # Not raised: the refusal must be stored, and an error would roll it back.
            _reject(db, store, upload, [Finding(Level.PROBLEM, exc.message)])
            upload.claim, upload.claimed_until = "", None
            db.flush()
            return ChunkOutcome.of(upload)
    upload.chunk_digests = bytes(upload.chunk_digests) + digest
    upload.received = end
    upload.synced, upload.synced_on = synced, store.machine
    upload.claim, upload.claimed_until = "", None
    upload.expires_at = rules.expires_at(moment, store.limits.partial_expiry_s)
    if upload.received == upload.size:
        _finish(db, store, upload)
    else:
        _sync_after(store, ticket, synced)
    db.flush()
    return ChunkOutcome.of(upload)


def _durable_before(store: ChunkStore, ticket: ChunkTicket) -> int:
    """Make every byte before a written chunk durable; the offset now known durable."""
    if ticket.synced >= ticket.offset:
        return ticket.synced
    if store.syncs.wait(ticket.upload_id) >= ticket.offset:
        return ticket.offset  # the previous chunk's sync, started here as it was recorded
    # The previous chunk came through another process, or its sync failed: sync here
    # (which covers this chunk too). A disk that fails now fails this chunk.
    sync_file(ticket.path)
    return ticket.offset + ticket.length


def _sync_after(store: ChunkStore, ticket: ChunkTicket, synced: int) -> None:
    """Start making a recorded chunk durable, while the client sends the next one."""
    if synced < ticket.offset + ticket.length:
        store.syncs.start(ticket.upload_id, ticket.path, ticket.offset + ticket.length)


def recover_unsynced(
    db: DbSession, store: ChunkStore, upload: Upload, *, now: datetime | None = None
) -> bool:
    """Keep only the chunks that reached the disk, where the machine that wrote the rest is gone.

    Bytes past ``synced`` (one chunk at most) were written on the machine ``synced_on``,
    which may have lost them in a crash before their sync. Any other machine, or this one
    after a restart, reads them back and compares each chunk with its CRC-32C: the upload
    goes on from the first chunk that does not match. True when the row changed (the
    caller commits it, whatever it does next).
    """
    if (
        upload.state != UploadState.RECEIVING
        or upload.synced >= upload.received
        or upload.synced_on == store.machine
        or not upload.chunk_size
    ):
        return False
    moment = now or utcnow()
    digests = bytes(upload.chunk_digests)
    # The row is taken first (a writer's claim needs it, and waits for our commit), and
    # only while no writer holds a live claim: a writer at work means its machine is not gone.
    taken = db.execute(
        update(Upload)
        .where(
            Upload.id == upload.id,
            Upload.state == UploadState.RECEIVING.value,
            Upload.received == upload.received,
            or_(Upload.claim == "", Upload.claimed_until <= moment),
        )
        .values(synced_on=store.machine)
        .execution_options(synchronize_session=False)
    )
    if _rows(taken) != 1:
        return False
    path = store.path_of(upload)
    good = _intact_end(path, upload.synced, upload.received, upload.chunk_size, digests)
    if good < upload.received:
        log.warning(
            "upload %s: bytes %d-%d did not survive a restart; resuming from %d",
            upload.public_id, good, upload.received, good,
        )  # fmt: skip
        with contextlib.suppress(FileNotFoundError):
            os.truncate(path, good)
    with contextlib.suppress(FileNotFoundError):
        sync_file(path)
    db.execute(
        update(Upload)
        .where(Upload.id == upload.id)
        .values(
            received=good,
            synced=good,
            chunk_digests=digests[: good // upload.chunk_size * DIGEST_BYTES],
        )
        .execution_options(synchronize_session=False)
    )
    db.refresh(upload)
    return True


def _intact_end(path: Path, start: int, end: int, chunk_size: int, digests: bytes) -> int:
    """The end of the chunks from start on that read back as recorded (their CRC-32C)."""
    good = start
    try:
        with path.open("rb") as handle:
            handle.seek(start)
            while good < end:
                index, length = good // chunk_size, min(chunk_size, end - good)
                data = handle.read(length)
                expected = digests[index * DIGEST_BYTES : (index + 1) * DIGEST_BYTES]
                if len(data) != length or rules.crc32c_digest(data) != expected:
                    break
                good += len(data)
    except FileNotFoundError:
        return 0
    return good


def wants_sha256(checksum: rules.ChunkChecksum | None) -> bool:
    """Whether a chunk's sink must hash with SHA-256 to check the client's checksum."""
    return checksum is not None and checksum.algorithm is rules.ChunkAlgorithm.SHA256


def _matches(digests: ChunkDigests, checksum: rules.ChunkChecksum) -> bool:
    """Whether a chunk's bytes hash to what its client declared."""
    if checksum.algorithm is rules.ChunkAlgorithm.CRC32C:
        return hmac.compare_digest(digests.crc32c, checksum.digest)
    # The sink hashes with SHA-256 only when told the client did (ChunkSink(sha256=True)).
    return digests.sha256 is not None and hmac.compare_digest(digests.sha256, checksum.digest)


def write_chunk(
    db: DbSession,
    store: ChunkStore,
    upload: Upload,
    *,
    offset: int,
    data: bytes,
    checksum: rules.ChunkChecksum | None = None,
    now: datetime | None = None,
) -> Upload:
    """Store one whole chunk at offset in one transaction (scripts and tests; the web streams)."""
    ticket = begin_chunk(db, store, upload, offset=offset, length=len(data), now=now)
    sink = ChunkSink(ticket, sha256=wants_sha256(checksum))
    try:
        sink.write([data])
        digests = sink.finish()
    finally:
        sink.close()
    end_chunk(db, store, ticket, digests=digests, checksum=checksum, head=sink.head, now=now)
    found = db.get(Upload, upload.id, populate_existing=True)
    assert found is not None
    return found


def _finish(db: DbSession, store: ChunkStore, upload: Upload) -> None:
    """All bytes are here: make them durable, then queue the checks (the file's SHA-256 first)."""
    # A finished upload is one the speaker may close the tab on: make it durable first.
    store.syncs.wait(upload.id)  # the previous chunk's, if still running: this one covers all
    with store.path_of(upload).open("rb") as handle:
        os.fsync(handle.fileno())
    upload.synced = upload.size
    upload.state = UploadState.CHECKING.value
    _set_item_status(db, upload, ItemStatus.PROCESSING)
    jobs.enqueue(db, JOB_CHECK, upload_id=upload.id, max_attempts=2)


def record_file_checksum(db: DbSession, store: ChunkStore, upload: Upload, sha256: str) -> bool:
    """Keep the file's SHA-256; reject the upload if it is not the file declared up front."""
    upload.sha256 = sha256
    if upload.expected_sha256 and not hmac.compare_digest(sha256, upload.expected_sha256):
        _reject(
            db,
            store,
            upload,
            [
                Finding(
                    Level.PROBLEM,
                    "The file that arrived differs from the one you chose (its checksum does "
                    "not match). Please upload it again.",
                )
            ],
        )
        return False
    return True


def _set_item_status(db: DbSession, upload: Upload, status: ItemStatus) -> None:
    """Move the item along with its programme file; extra audio or subtitles leave it be."""
    if upload.kind != UploadKind.PROGRAMME:
        return
    item = db.get(Item, upload.item_id)
    if item is not None and ItemStatus(item.status) in UPLOAD_OPEN:
        item.status = status.value


def _notify(db: DbSession, upload: Upload, level: notifications.NoticeLevel, text: str) -> None:
    invitation = db.get(SpeakerInvitation, upload.invitation_id)
    if invitation is not None:
        notifications.notify(
            db,
            speaker_id=invitation.speaker_id,
            item_id=upload.item_id,
            level=level,
            message=text,
            email=bool(invitation.email),
        )


def _reject(db: DbSession, store: ChunkStore, upload: Upload, findings: list[Finding]) -> None:
    """Refuse an upload for good: keep the findings, delete the bytes, flag the item."""
    upload.state = UploadState.REJECTED.value
    upload.findings = [f.as_dict() for f in findings]
    store.path_of(upload).unlink(missing_ok=True)
    _set_item_status(db, upload, ItemStatus.PROBLEM)
    problems = " ".join(f.message for f in findings if f.level is Level.PROBLEM)
    _notify(
        db, upload, notifications.NoticeLevel.PROBLEM, f"We could not use your file: {problems}"
    )


def record_check(
    db: DbSession, store: ChunkStore, upload: Upload, verdict: Verdict, facts: dict[str, Any]
) -> None:
    """Store what the checks found; queue normalisation when the file is usable."""
    upload.facts = facts
    upload.findings = [f.as_dict() for f in verdict.findings]
    if not verdict.accepted:
        _reject(db, store, upload, list(verdict.findings))
        return
    upload.state = UploadState.PROCESSING.value
    jobs.enqueue(db, JOB_NORMALISE, upload_id=upload.id, max_attempts=3)


def _speaker_of(db: DbSession, upload: Upload) -> int | None:
    """The speaker whose link started an upload."""
    invitation = db.get(SpeakerInvitation, upload.invitation_id)
    return invitation.speaker_id if invitation is not None else None


def _in_programme(db: DbSession, upload: Upload) -> list[Upload]:
    """The item's other ready uploads of this upload's kind and language (its media's)."""
    return list(
        db.scalars(
            select(Upload).where(
                Upload.item_id == upload.item_id,
                Upload.kind == upload.kind,
                Upload.language == upload.language,
                Upload.state == UploadState.READY.value,
                Upload.id != upload.id,
            )
        )
    )


MEDIA_KINDS = {
    UploadKind.PROGRAMME: MediaKind.PROGRAMME,
    UploadKind.AUDIO: MediaKind.AUDIO,
    UploadKind.SUBTITLES: MediaKind.SUBTITLES,
}


def _what(upload: Upload) -> str:
    return {
        UploadKind.PROGRAMME: "Your video",
        UploadKind.AUDIO: f"Your {upload.language} interpretation audio",
        UploadKind.SUBTITLES: f"Your {upload.language} subtitles",
    }[UploadKind(upload.kind)]


def record_normalised(
    db: DbSession,
    upload: Upload,
    *,
    output: Path,
    poster: Path | None,
    info: dict[str, Any],
) -> None:
    """Point the item's media at the normalised file and mark the item ready.

    A speaker's new file replaces their own earlier one. It never replaces a co-speaker's
    file in the programme: it waits on standby until the organisers choose (choose_upload).
    """
    item = db.get(Item, upload.item_id)
    if item is None:
        return
    upload.output_path = str(output)
    upload.poster_path = str(poster) if poster else ""
    current = _in_programme(db, upload)
    speaker = _speaker_of(db, upload)
    if any(_speaker_of(db, other) != speaker for other in current):
        upload.state = UploadState.STANDBY.value
        _set_item_status(db, upload, ItemStatus.READY)  # the co-speaker's file is ready
        _notify(
            db,
            upload,
            notifications.NoticeLevel.DONE,
            f"{_what(upload)} passed the checks. Another speaker of this item sent one that "
            "is in the programme already; the organisers choose which one goes on air.",
        )
        return
    attach_media(
        db, item, MEDIA_KINDS[UploadKind(upload.kind)], str(output),
        language=upload.language, info=info,
    )  # fmt: skip
    for older in current:
        older.state = UploadState.REPLACED.value
    upload.state = UploadState.READY.value
    _set_item_status(db, upload, ItemStatus.READY)
    _notify(
        db,
        upload,
        notifications.NoticeLevel.DONE,
        f"{_what(upload)} passed the checks and is ready. The organisers will look at it.",
    )


def choose_upload(db: DbSession, item: Item, upload: Upload) -> None:
    """The organisers' choice: this upload's normalised file becomes the item's, of its kind."""
    if upload.item_id != item.id:
        raise NotFoundError("No such upload.")
    if UploadState(upload.state) not in rules.CHOOSABLE_STATES or not upload.output_path:
        raise ConflictError(
            f"Only a file that passed the checks can go on air; this one is {upload.state}."
        )
    if ItemStatus(item.status) in (ItemStatus.ON_AIR, ItemStatus.DONE):
        raise ConflictError("This item has already been on air.", field="status")
    if upload.state == UploadState.READY:
        return  # in the programme already
    info: dict[str, Any] = {"upload": upload.public_id, "sha256": upload.sha256}
    if upload.kind != UploadKind.SUBTITLES:
        info["duration_s"] = float((upload.facts or {}).get("duration_s") or 0.0)
    attach_media(
        db, item, MEDIA_KINDS[UploadKind(upload.kind)], upload.output_path,
        language=upload.language, info=info,
    )  # fmt: skip
    for other in _in_programme(db, upload):
        other.state = UploadState.STANDBY.value  # the organisers may choose it back
        _notify(
            db, other, notifications.NoticeLevel.INFO,
            "The organisers chose another file for this item; yours is kept in case.",
        )  # fmt: skip
    upload.state = UploadState.READY.value
    if upload.kind == UploadKind.PROGRAMME and item.status == ItemStatus.APPROVED:
        item.status = ItemStatus.READY.value  # another file than the approved one: look again
    _set_item_status(db, upload, ItemStatus.READY)
    _notify(
        db, upload, notifications.NoticeLevel.DONE,
        f"The organisers chose {_what(upload).lower()} for the broadcast.",
    )  # fmt: skip


def record_failure(db: DbSession, upload: Upload, reason: str) -> None:
    """A check or normalisation failed for good (after retries): tell the speaker, flag the item.

    ``reason`` is the tools' own text (ffmpeg's stderr, an OS error): kept for the
    organisers and the log, while the speaker reads a plain sentence (speaker_reason).
    """
    upload.state = UploadState.FAILED.value
    upload.problem = reason[:2000]
    _set_item_status(db, upload, ItemStatus.PROBLEM)
    log.warning("upload %s failed for good: %s", upload.public_id, reason[:500])
    _notify(db, upload, notifications.NoticeLevel.PROBLEM, speaker_reason(reason))


def expire_partials(db: DbSession, store: ChunkStore, *, now: datetime) -> int:
    """Delete the bytes of unfinished uploads left too long; return how many expired."""
    stale = list(
        db.scalars(
            select(Upload).where(
                Upload.state == UploadState.RECEIVING.value, Upload.expires_at <= now
            )
        )
    )
    for upload in stale:
        upload.state = UploadState.EXPIRED.value
        store.path_of(upload).unlink(missing_ok=True)
        item = db.get(Item, upload.item_id)
        if (
            item is not None
            and upload.kind == UploadKind.PROGRAMME
            and item.status == ItemStatus.UPLOADING
        ):
            item.status = ItemStatus.MISSING.value
    return len(stale)


def status_of(upload: Upload) -> dict[str, Any]:
    """An upload's state as the protocol's GET answers it."""
    return {
        "id": upload.public_id,
        "kind": upload.kind,
        "language": upload.language,
        "filename": upload.filename,
        "size": upload.size,
        "offset": upload.received,
        "state": upload.state,
        # 0 for an upload from before fixed chunks: it cannot be resumed, only replaced.
        "chunk_size": upload.chunk_size,
        "checksum": upload.sha256 or None,
        "findings": list(upload.findings or []),
        # The tools' own words stay backstage: the speaker gets what they can act on.
        "problem": speaker_reason(upload.problem) if upload.problem else None,
        "expires_at": upload.expires_at.isoformat(),
    }


# --- the organisers' list -----------------------------------------------------------------

UPLOAD_SORTS: dict[str, str] = {
    "newest": "newest first",
    "oldest": "oldest first",
    "name": "file name",
    "size": "largest first",
}


@dataclass(frozen=True, slots=True)
class UploadRow:
    """An upload as the organisers' list shows it: with its item and speaker."""

    upload: Upload
    item_title: str
    speaker_name: str


@dataclass(frozen=True, slots=True)
class UploadPage:
    """One page of a summit's uploads, with how many there are in each state."""

    rows: list[UploadRow]
    page: paging.Page  # page.total: the uploads the filter matches
    counts: dict[str, int]  # per state, the whole summit

    @property
    def summit_total(self) -> int:
        """Every upload of the summit, whatever its state."""
        return sum(self.counts.values())


def page_of_uploads(
    db: DbSession,
    summit: Summit,
    *,
    state: str = "",
    text: str = "",
    sort: str = "newest",
    page: int = 1,
    size: int = paging.DEFAULT_PAGE_SIZE,
) -> UploadPage:
    """A page of the summit's uploads of one state, whose file, item or speaker holds ``text``."""
    if state and state not in set(UploadState):
        raise ValidationError(
            f"{state[:40]!r} is not a state of an upload: choose one from the list.",
            field="state",
        )
    if sort not in UPLOAD_SORTS:
        raise ValidationError(f"{sort!r} is not a way to sort uploads.", field="sort")
    text = paging.search_text(text)
    # An upload belongs to a summit through its item (Upload has no summit_id of its own).
    base = (
        select(Upload, Item.title, Speaker.name)
        .join(Item, Item.id == Upload.item_id)
        .join(SpeakerInvitation, SpeakerInvitation.id == Upload.invitation_id)
        .join(Speaker, Speaker.id == SpeakerInvitation.speaker_id)
        .where(Item.summit_id == summit.id)
    )
    counts = dict.fromkeys((s.value for s in UploadState), 0)
    by_state = (
        select(Upload.state, func.count())
        .join(Item, Item.id == Upload.item_id)
        .where(Item.summit_id == summit.id)
        .group_by(Upload.state)
    )
    counts.update({name: int(n) for name, n in db.execute(by_state)})
    query = base
    if state:
        query = query.where(Upload.state == state)
    if text:
        query = query.where(
            or_(
                Upload.filename.icontains(text, autoescape=True),
                Item.title.icontains(text, autoescape=True),
                Speaker.name.icontains(text, autoescape=True),
            )
        )
    if text:
        total = int(db.scalar(select(func.count()).select_from(query.subquery())) or 0)
    else:
        total = counts[state] if state else sum(counts.values())
    shown = paging.Page.of(page, size, total)
    orders: dict[str, list[ColumnElement[Any]]] = {
        "newest": [Upload.id.desc()],
        "oldest": [Upload.id.asc()],
        "name": [func.lower(Upload.filename), Upload.id.asc()],
        "size": [Upload.size.desc(), Upload.id.desc()],
    }
    rows = db.execute(query.order_by(*orders[sort]).limit(shown.size).offset(shown.offset))
    return UploadPage(
        [UploadRow(upload, title, name) for upload, title, name in rows], shown, counts
    )
