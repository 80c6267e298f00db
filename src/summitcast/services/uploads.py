"""Speaker uploads: create, append chunks, finish, record check and normalisation results.

Bytes go to ``settings.upload_dir`` (outside the web root) under random names; the
speaker's file name is kept only to be shown back. The protocol is described in
``summitcast.domain.uploads``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from summitcast.domain import uploads as rules
from summitcast.domain.media_checks import Finding, Level, Verdict
from summitcast.domain.programme import ItemStatus
from summitcast.domain.uploads import UploadKind, UploadState
from summitcast.errors import ConflictError, NotFoundError, ValidationError
from summitcast.services import jobs, notifications
from summitcast.services.broadcast import MediaKind, attach_media
from summitcast.services.speakers import UPLOAD_OPEN
from summitcast.storage.tables import Item, SpeakerInvitation, Upload, utcnow

JOB_CHECK = "check_upload"
JOB_NORMALISE = "normalise_upload"
HASH_BLOCK = 1024 * 1024
# hashlib releases the GIL on buffers over 2 KiB, so a chunk's own checksum runs beside
# its disk write, and the running whole-file hash follows behind the requests instead of
# inside them (one process-wide pool, like the event loop's default executor).
_HASHERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="upload-hash")
# Chunks of one upload whose whole-file hashing may lag behind (each holds its bytes).
HASH_BACKLOG = 2


def _sha256(data: bytes | memoryview) -> bytes:
    """The SHA-256 digest of data (run in the hashing pool)."""
    return hashlib.sha256(data).digest()


def _update(before: Future[None] | None, digest: Any, data: memoryview) -> None:
    """Feed data to a running hash after the previous chunk's update (run in the pool)."""
    # Safe to block: the pool starts tasks in submission order, so `before` is running.
    if before is not None:
        before.result()
    digest.update(data)


@dataclass(frozen=True, slots=True)
class UploadLimits:
    """The caps an upload is held to."""

    max_bytes: int
    chunk_bytes: int
    partial_expiry_s: float


@dataclass
class _Hashing:
    """The running SHA-256 of an upload and how many bytes it has seen."""

    offset: int  # bytes fed to the digest, including updates still in flight
    digest: Any  # hashlib's sha256 object; typeshed names it only privately
    in_flight: list[Future[None]]  # updates not known to be done, oldest first

    def settle(self, backlog: int = 0) -> None:
        """Wait until at most `backlog` updates are still in flight."""
        while len(self.in_flight) > backlog or (self.in_flight and self.in_flight[0].done()):
            self.in_flight.pop(0).result()


class ChunkStore:
    """The folder of uploads, with the running checksums and per-upload locks of this process."""

    def __init__(self, folder: Path, limits: UploadLimits) -> None:
        self.folder = folder
        self.limits = limits
        self._hashing: dict[int, _Hashing] = {}
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()

    def path_of(self, upload: Upload) -> Path:
        """Where an upload's bytes live."""
        return self.folder / upload.stored_name

    def lock(self, upload_id: int) -> threading.Lock:
        """A lock serialising chunks of one upload inside this process (two tabs, say)."""
        with self._guard:
            return self._locks.setdefault(upload_id, threading.Lock())

    def _state(self, upload: Upload, stored: int) -> _Hashing:
        """The running hash after `stored` bytes, re-read from disk if this process lost it."""
        state = self._hashing.get(upload.id)
        if state is None or state.offset != stored:
            if state is not None:
                state.settle()  # its stale updates must not run on after it is dropped
            # Another node took the earlier chunks, or this process restarted: hash the prefix.
            digest = hashlib.sha256()
            with self.path_of(upload).open("rb") as handle:
                remaining = stored
                while remaining:
                    block = handle.read(min(HASH_BLOCK, remaining))
                    if not block:
                        break
                    digest.update(block)
                    remaining -= len(block)
            state = _Hashing(offset=stored, digest=digest, in_flight=[])
            self._hashing[upload.id] = state
        return state

    def running_hash(self, upload: Upload, stored: int) -> Any:
        """The finished SHA-256 state after `stored` bytes (waits for updates in flight)."""
        state = self._state(upload, stored)
        state.settle()
        return state.digest

    def append(self, upload: Upload, stored: int, data: memoryview) -> None:
        """Queue a checked chunk appended at `stored` for the running hash, in order."""
        state = self._state(upload, stored)
        state.settle(HASH_BACKLOG - 1)  # back-pressure: a slow hasher slows the uploader
        before = state.in_flight[-1] if state.in_flight else None
        state.in_flight.append(_HASHERS.submit(_update, before, state.digest, data))
        state.offset = stored + len(data)

    def forget(self, upload_id: int) -> None:
        """Drop the running hash of a finished or abandoned upload."""
        state = self._hashing.pop(upload_id, None)
        if state is not None:
            state.settle()


def create_upload(
    db: DbSession,
    store: ChunkStore,
    invitation: SpeakerInvitation,
    *,
    size: int,
    kind: str,
    language: str = "",
    sha256: str = "",
    filename: str = "",
    now: datetime | None = None,
) -> Upload:
    """Start an upload for the invitation's item; refuse an empty or oversized file up front."""
    upload_kind, language, sha256 = rules.validate_declaration(
        size=size, max_bytes=store.limits.max_bytes, kind=kind, language=language, sha256=sha256
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
        expected_sha256=sha256,
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
    """One upload of the invitation's item, or 404 (ids of other items are not revealed)."""
    upload = db.scalar(select(Upload).where(Upload.public_id == public_id))
    if upload is None or upload.item_id != invitation.item_id:
        raise NotFoundError("No such upload.")
    return upload


def upload_by_public_id(db: DbSession, public_id: str) -> Upload:
    """An upload by its protocol id, or 404; callers check it belongs to what they show."""
    upload = db.scalar(select(Upload).where(Upload.public_id == public_id))
    if upload is None:
        raise NotFoundError("No such upload.")
    return upload


def write_chunk(
    db: DbSession,
    store: ChunkStore,
    upload: Upload,
    *,
    offset: int,
    data: bytes,
    checksum: bytes | None = None,
    now: datetime | None = None,
) -> Upload:
    """Store one chunk at offset (idempotently), and finish the upload on its last byte.

    A first chunk that is not media of the upload's kind rejects the upload: the
    returned upload's state is then REJECTED and its findings say why.
    """
    if upload.state != UploadState.RECEIVING:
        if upload.state != UploadState.EXPIRED and offset + len(data) <= upload.received:
            return upload  # a late retry of a chunk of a finished upload: nothing to do
        raise ConflictError(f"This upload is {upload.state}; start a new one.")
    # Checked before anything is committed below; computed meanwhile.
    check: Future[bytes] | None = _HASHERS.submit(_sha256, data) if checksum is not None else None
    try:
        return _write_checked(db, store, upload, offset, data, checksum, check, now)
    finally:
        if check is not None:
            check.cancel()


def _damaged(check: Future[bytes] | None, checksum: bytes | None) -> bool:
    """Whether the chunk's SHA-256 differs from the one its client sent."""
    return (
        check is not None
        and checksum is not None
        and not hmac.compare_digest(check.result(), checksum)
    )


DAMAGED = "This chunk arrived damaged (its checksum does not match); send it again."


def _write_checked(
    db: DbSession,
    store: ChunkStore,
    upload: Upload,
    offset: int,
    data: bytes,
    checksum: bytes | None,
    check: Future[bytes] | None,
    now: datetime | None,
) -> Upload:
    """write_chunk's body, with the chunk's checksum being computed in the pool."""
    path = store.path_of(upload)
    with store.lock(upload.id):
        # The file is the truth after a crash: a row may count bytes the disk never got.
        stored = min(upload.received, path.stat().st_size)
        plan = rules.plan_chunk(
            stored=stored,
            offset=offset,
            length=len(data),
            size=upload.size,
            max_chunk=store.limits.chunk_bytes,
        )
        if stored == 0 and plan.append and offset == 0:
            if _damaged(check, checksum):  # a damaged first chunk must not decide the type
                raise ValidationError(DAMAGED, field="chunk")
            try:
                upload.sniffed = rules.accept_sniffed(
                    UploadKind(upload.kind), data[: rules.SNIFF_BYTES]
                ).value
            except ValidationError as exc:
                # Not raised: the refusal must be stored, and an error would roll it back.
                _reject(db, store, upload, [Finding(Level.PROBLEM, exc.message)])
                db.flush()
                return upload
        with path.open("r+b") as handle:
            if plan.overlap:
                if _damaged(check, checksum):
                    raise ValidationError(DAMAGED, field="chunk")
                handle.seek(offset)
                if handle.read(plan.overlap) != data[: plan.overlap]:
                    raise ConflictError(
                        f"Bytes {offset}–{offset + plan.overlap} differ from what was received "
                        "before: is this the same file? Start a new upload for another file."
                    )
            if plan.append:
                tail = memoryview(data)[plan.overlap :]
                handle.seek(stored)
                handle.truncate()
                handle.write(tail)  # while the pool checks the chunk (writes release the GIL)
                if _damaged(check, checksum):
                    # Bytes past `stored` count for nothing (received is not advanced), and
                    # the next append truncates them anyway; drop them now all the same.
                    handle.truncate(stored)
                    raise ValidationError(DAMAGED, field="chunk")
                # Only checked bytes reach the whole-file hash, which _finish waits for.
                store.append(upload, stored, tail)
            elif _damaged(check, checksum):
                raise ValidationError(DAMAGED, field="chunk")
        moment = now or utcnow()
        upload.received = plan.new_offset
        upload.expires_at = rules.expires_at(moment, store.limits.partial_expiry_s)
        if upload.received == upload.size:
            _finish(db, store, upload)
    db.flush()
    return upload


def _finish(db: DbSession, store: ChunkStore, upload: Upload) -> None:
    """All bytes are here: compare the whole-file checksum, then queue the checks."""
    digest = store.running_hash(upload, upload.received).hexdigest()
    store.forget(upload.id)
    upload.sha256 = digest
    if upload.expected_sha256 and not hmac.compare_digest(digest, upload.expected_sha256):
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
        return
    # A finished upload is one the speaker may close the tab on: make it durable first.
    with store.path_of(upload).open("rb") as handle:
        os.fsync(handle.fileno())
    upload.state = UploadState.CHECKING.value
    _set_item_status(db, upload, ItemStatus.PROCESSING)
    jobs.enqueue(db, JOB_CHECK, upload_id=upload.id, max_attempts=2)


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
    store.forget(upload.id)
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


def record_normalised(
    db: DbSession,
    upload: Upload,
    *,
    output: Path,
    poster: Path | None,
    info: dict[str, Any],
) -> None:
    """Point the item's media at the normalised file and mark the item ready."""
    item = db.get(Item, upload.item_id)
    if item is None:
        return
    kind = {
        UploadKind.PROGRAMME: MediaKind.PROGRAMME,
        UploadKind.AUDIO: MediaKind.AUDIO,
        UploadKind.SUBTITLES: MediaKind.SUBTITLES,
    }[UploadKind(upload.kind)]
    attach_media(db, item, kind, str(output), language=upload.language, info=info)
    for older in db.scalars(
        select(Upload).where(
            Upload.item_id == upload.item_id,
            Upload.kind == upload.kind,
            Upload.language == upload.language,
            Upload.state == UploadState.READY.value,
            Upload.id != upload.id,
        )
    ):
        older.state = UploadState.REPLACED.value
    upload.state = UploadState.READY.value
    upload.output_path = str(output)
    upload.poster_path = str(poster) if poster else ""
    _set_item_status(db, upload, ItemStatus.READY)
    what = {
        UploadKind.PROGRAMME: "Your video",
        UploadKind.AUDIO: f"Your {upload.language} interpretation audio",
        UploadKind.SUBTITLES: f"Your {upload.language} subtitles",
    }[UploadKind(upload.kind)]
    _notify(
        db,
        upload,
        notifications.NoticeLevel.DONE,
        f"{what} passed the checks and is ready. The organisers will look at it.",
    )


def record_failure(db: DbSession, upload: Upload, reason: str) -> None:
    """Our side failed for good (after retries): say so to the speaker and flag the item."""
    upload.state = UploadState.FAILED.value
    upload.problem = reason[:2000]
    _set_item_status(db, upload, ItemStatus.PROBLEM)
    _notify(
        db,
        upload,
        notifications.NoticeLevel.PROBLEM,
        "We could not prepare your file for the broadcast. The organisers have been told; "
        "you may also try uploading it again.",
    )


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
        store.forget(upload.id)
        store.path_of(upload).unlink(missing_ok=True)
        item = db.get(Item, upload.item_id)
        if (
            item is not None
            and upload.kind == UploadKind.PROGRAMME
            and item.status == ItemStatus.UPLOADING
        ):
            item.status = ItemStatus.MISSING.value
    return len(stale)


def status_of(upload: Upload, chunk_bytes: int) -> dict[str, Any]:
    """An upload's state as the protocol's GET answers it."""
    return {
        "id": upload.public_id,
        "kind": upload.kind,
        "language": upload.language,
        "filename": upload.filename,
        "size": upload.size,
        "offset": upload.received,
        "chunk_size": chunk_bytes,
        "state": upload.state,
        "sha256": upload.sha256 or None,
        "findings": list(upload.findings or []),
        "problem": upload.problem or None,
        "expires_at": upload.expires_at.isoformat(),
    }
