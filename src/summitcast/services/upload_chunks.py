"""An upload's chunks: claim one before its bytes arrive, receive it, record it, recover.

The bytes go through the upload files' seam (``storage.chunks.ChunkFiles``); this module
decides which chunk may be written by whom, checks what arrived and keeps the row's
account of it (received, synced, the chunks' CRC-32C).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import crc32c
from sqlalchemy import CursorResult, or_, update
from sqlalchemy.orm import Session as DbSession

from summitcast.domain import uploads as rules
from summitcast.domain.media_checks import Finding, Level
from summitcast.domain.uploads import UploadKind, UploadState
from summitcast.errors import ConflictError, NotFoundError, ValidationError
from summitcast.services.upload_results import finish_received, reject
from summitcast.services.uploads import ChunkStore
from summitcast.storage.chunks import ChunkFiles, ChunkWriter
from summitcast.storage.tables import Upload, utcnow

log = logging.getLogger(__name__)

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
TAKEN_OVER = "This chunk took so long that another connection took it over; send it again."


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
    name: str  # the upload's file (ChunkFiles)
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

    Meant for a worker thread: crc32c, hashlib and the file writes release the GIL on
    large buffers, so the event loop goes on receiving while a thread writes and checksums.
    """

    def __init__(self, ticket: ChunkTicket, files: ChunkFiles, *, sha256: bool = False) -> None:
        self.ticket = ticket
        self.received = 0
        self.head = b""
        self._crc = 0
        self._sha256 = hashlib.sha256() if sha256 else None
        self._writer: ChunkWriter | None = files.writer(ticket.name) if ticket.claim else None
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
        if self._writer is not None:
            if time.monotonic() > self._write_until:
                raise ConflictError(
                    "This chunk took so long that another connection may take it over; "
                    "send it again."
                )
            self._writer.write(self.ticket.offset + self.received, pieces)
        for piece in pieces:
            self._crc = crc32c.crc32c(piece, self._crc)
            if self._sha256 is not None:
                self._sha256.update(piece)
        self.received += count

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
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def wants_sha256(checksum: rules.ChunkChecksum | None) -> bool:
    """Whether a chunk's sink must hash with SHA-256 to check the client's checksum."""
    return checksum is not None and checksum.algorithm is rules.ChunkAlgorithm.SHA256


def _matches(digests: ChunkDigests, checksum: rules.ChunkChecksum) -> bool:
    """Whether a chunk's bytes hash to what its client declared."""
    if checksum.algorithm is rules.ChunkAlgorithm.CRC32C:
        return hmac.compare_digest(digests.crc32c, checksum.digest)
    # The sink hashes with SHA-256 only when told the client did (ChunkSink(sha256=True)).
    return digests.sha256 is not None and hmac.compare_digest(digests.sha256, checksum.digest)


def _stored_digest(upload: Upload, index: int) -> bytes:
    return bytes(upload.chunk_digests[index * DIGEST_BYTES : (index + 1) * DIGEST_BYTES])


def _rows(result: Any) -> int:
    """Rows matched by a conditional UPDATE."""
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


def _refuse_unless_open(upload: Upload, offset: int, length: int) -> None:
    """Refuse a chunk of an upload that takes none, unless it is a late retry of a stored one."""
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
    _refuse_unless_open(upload, offset, length)
    plan = rules.plan_chunk(
        stored=upload.received,
        offset=offset,
        length=length,
        size=upload.size,
        chunk_size=upload.chunk_size,
    )
    ticket = ChunkTicket(
        upload_id=upload.id,
        name=upload.stored_name,
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
        return replace(
            ticket,
            stored_digest=_stored_digest(upload, plan.index),
            sniff=False,
            digests_before=b"",
        )
    return replace(ticket, claim=_claim(db, upload, offset, now or utcnow()))


def _claim(db: DbSession, upload: Upload, offset: int, moment: datetime) -> str:
    """Take the upload's claim for the chunk at offset; refuse when it moved or is held."""
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
    return claim


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


def abandon_chunk(db: DbSession, store: ChunkStore, ticket: ChunkTicket) -> None:
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
        store.files.truncate(ticket.name, ticket.offset)


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
        abandon_chunk(db, store, ticket)  # rolled back with the error; the caller abandons again
        raise ValidationError(DAMAGED, field="chunk")
    moment = now or utcnow()
    synced = _durable_before(store, ticket) if ticket.claim else ticket.synced
    if ticket.claim and not ticket.sniff and ticket.offset + ticket.length < ticket.size:
        # A chunk in the middle, by far the most common: one conditional UPDATE, nothing
        # loaded (~1 ms less per chunk); the claim kept the stored digests as they were.
        outcome = _record_middle(db, store, ticket, digests.crc32c, synced, moment)
        if outcome is not None:
            return outcome
    upload = db.get(Upload, ticket.upload_id, populate_existing=True)
    if upload is None:
        raise NotFoundError("No such upload.")
    if not ticket.claim:
        if not hmac.compare_digest(digests.crc32c, ticket.stored_digest):
            raise ConflictError(
                f"Bytes {ticket.offset}–{ticket.offset + ticket.length} differ from what was "
                "received before: is this the same file? Start a new upload for another file."
            )
        return ChunkOutcome.of(upload)
    return _record_loaded(db, store, ticket, upload, digests.crc32c, head, synced, moment)


def _record_middle(
    db: DbSession,
    store: ChunkStore,
    ticket: ChunkTicket,
    digest: bytes,
    synced: int,
    moment: datetime,
) -> ChunkOutcome | None:
    """Record a chunk before the last by one conditional UPDATE; None if the claim was lost."""
    end = ticket.offset + ticket.length
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
    if _rows(recorded) != 1:
        return None  # the loaded path says why
    _sync_after(store, ticket, synced)
    return ChunkOutcome(UploadState.RECEIVING.value, end, [])


def _record_loaded(
    db: DbSession,
    store: ChunkStore,
    ticket: ChunkTicket,
    upload: Upload,
    digest: bytes,
    head: bytes,
    synced: int,
    moment: datetime,
) -> ChunkOutcome:
    """Record a claimed first or last chunk on the loaded row: sniff it, or finish the file."""
    if upload.state != UploadState.RECEIVING:
        raise ConflictError(f"This upload is {upload.state}; start a new one.")
    if upload.claim != ticket.claim:
        raise ConflictError(TAKEN_OVER)
    if ticket.sniff:
        try:
            upload.sniffed = rules.accept_sniffed(ticket.kind, head).value
        except ValidationError as exc:
            # Not raised: the refusal must be stored, and an error would roll it back.
            reject(db, store, upload, [Finding(Level.PROBLEM, exc.message)])
            upload.claim, upload.claimed_until = "", None
            db.flush()
            return ChunkOutcome.of(upload)
    upload.chunk_digests = bytes(upload.chunk_digests) + digest
    upload.received = ticket.offset + ticket.length
    upload.synced, upload.synced_on = synced, store.machine
    upload.claim, upload.claimed_until = "", None
    upload.expires_at = rules.expires_at(moment, store.limits.partial_expiry_s)
    if upload.received == upload.size:
        finish_received(db, store, upload)
    else:
        _sync_after(store, ticket, synced)
    db.flush()
    return ChunkOutcome.of(upload)


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
    sink = ChunkSink(ticket, store.files, sha256=wants_sha256(checksum))
    try:
        sink.write([data])
        digests = sink.finish()
    finally:
        sink.close()
    end_chunk(db, store, ticket, digests=digests, checksum=checksum, head=sink.head, now=now)
    found = db.get(Upload, upload.id, populate_existing=True)
    assert found is not None
    return found


def _durable_before(store: ChunkStore, ticket: ChunkTicket) -> int:
    """Make every byte before a written chunk durable; the offset now known durable."""
    if ticket.synced >= ticket.offset:
        return ticket.synced
    if store.files.wait_for_sync(ticket.upload_id) >= ticket.offset:
        return ticket.offset  # the previous chunk's sync, started here as it was recorded
    # The previous chunk came through another process, or its sync failed: sync here
    # (which covers this chunk too). A disk that fails now fails this chunk.
    store.files.sync(ticket.name)
    return ticket.offset + ticket.length


def _sync_after(store: ChunkStore, ticket: ChunkTicket, synced: int) -> None:
    """Start making a recorded chunk durable, while the client sends the next one."""
    if synced < ticket.offset + ticket.length:
        store.files.sync_in_background(ticket.upload_id, ticket.name, ticket.offset + ticket.length)


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
    if not _take_over(db, upload, store.machine, now or utcnow()):
        return False
    digests = bytes(upload.chunk_digests)
    good = _intact_end(store.files, upload, digests)
    if good < upload.received:
        log.warning(
            "upload %s: bytes %d-%d did not survive a restart; resuming from %d",
            upload.public_id, good, upload.received, good,
        )  # fmt: skip
        store.files.truncate(upload.stored_name, good)
    with contextlib.suppress(FileNotFoundError):
        store.files.sync(upload.stored_name)
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


def _take_over(db: DbSession, upload: Upload, machine: str, moment: datetime) -> bool:
    """Take an upload's row for this machine while no writer holds a live claim on it."""
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
        .values(synced_on=machine)
        .execution_options(synchronize_session=False)
    )
    return _rows(taken) == 1


def _intact_end(files: ChunkFiles, upload: Upload, digests: bytes) -> int:
    """The end of the chunks from synced on that read back as recorded (their CRC-32C)."""
    good, end, chunk_size = upload.synced, upload.received, upload.chunk_size
    try:
        while good < end:
            index, length = good // chunk_size, min(chunk_size, end - good)
            data = files.read(upload.stored_name, good, length)
            expected = digests[index * DIGEST_BYTES : (index + 1) * DIGEST_BYTES]
            if len(data) != length or rules.crc32c_digest(data) != expected:
                break
            good += len(data)
    except FileNotFoundError:
        return 0
    return good
