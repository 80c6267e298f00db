"""What becomes of a received upload: made durable and queued, checked, normalised, chosen.

The check and normalisation jobs (``runtime.upload_jobs``) do the slow part outside any
transaction and record the outcome here, through the ``*_for_job`` units of work, each one
short transaction that does nothing when the upload moved on meanwhile.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from summitcast.domain import uploads as rules
from summitcast.domain.media_checks import Finding, Level, Verdict, speaker_reason
from summitcast.domain.programme import ItemStatus
from summitcast.domain.uploads import UploadKind, UploadState
from summitcast.errors import ConflictError, NotFoundError
from summitcast.services import jobs, notifications
from summitcast.services.broadcast import MediaKind, attach_media
from summitcast.services.programme import get_item
from summitcast.services.speakers import UPLOAD_OPEN
from summitcast.services.uploads import JOB_CHECK, JOB_NORMALISE, ChunkStore, summit_upload
from summitcast.storage.database import Database
from summitcast.storage.tables import Item, SpeakerInvitation, Summit, Upload, utcnow

log = logging.getLogger(__name__)


def finish_received(db: DbSession, store: ChunkStore, upload: Upload) -> None:
    """All bytes are here: make them durable, then queue the checks (the file's SHA-256 first)."""
    # A finished upload is one the speaker may close the tab on: make it durable first.
    # The previous chunk's sync, if still running: this one covers all.
    store.files.wait_for_sync(upload.id)
    store.files.sync(upload.stored_name, whole=True)
    upload.synced = upload.size
    upload.state = UploadState.CHECKING.value
    _set_item_status(db, upload, ItemStatus.PROCESSING)
    jobs.enqueue(db, JOB_CHECK, upload_id=upload.id, max_attempts=2)


def record_file_checksum(db: DbSession, store: ChunkStore, upload: Upload, sha256: str) -> bool:
    """Keep the file's SHA-256; reject the upload if it is not the file declared up front."""
    upload.sha256 = sha256
    if upload.expected_sha256 and not hmac.compare_digest(sha256, upload.expected_sha256):
        reject(
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


def reject(db: DbSession, store: ChunkStore, upload: Upload, findings: list[Finding]) -> None:
    """Refuse an upload for good: keep the findings, delete the bytes, flag the item."""
    upload.state = UploadState.REJECTED.value
    upload.findings = [f.as_dict() for f in findings]
    store.files.delete(upload.stored_name)
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
        reject(db, store, upload, list(verdict.findings))
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


def choose_in_summit(db: DbSession, summit: Summit, public_id: str) -> Item:
    """choose_upload for an upload of this summit (by its protocol id); the item it is for."""
    upload = summit_upload(db, summit, public_id)
    item = get_item(db, summit, upload.item_id)
    choose_upload(db, item, upload)
    return item


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
        store.files.delete(upload.stored_name)
        item = db.get(Item, upload.item_id)
        if (
            item is not None
            and upload.kind == UploadKind.PROGRAMME
            and item.status == ItemStatus.UPLOADING
        ):
            item.status = ItemStatus.MISSING.value
    return len(stale)


# --- the jobs' units of work ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobUpload:
    """What a check or normalisation job reads of its upload (taken in one short transaction)."""

    id: int
    public_id: str
    item_id: int
    kind: UploadKind
    language: str
    state: UploadState
    sha256: str
    sniffed: str
    facts: dict[str, Any]
    path: Path  # where the job's tools read the bytes
    slot_s: float  # the item's planned duration (0 when the item is gone)


def load_for_job(database: Database, store: ChunkStore, upload_id: int | None) -> JobUpload:
    """The upload a job is about; a deleted one fails the job for good."""
    with database.session() as db:
        upload = db.get(Upload, upload_id) if upload_id is not None else None
        if upload is None:
            raise jobs.PermanentJobError("the upload was deleted")
        item = db.get(Item, upload.item_id)
        return JobUpload(
            id=upload.id,
            public_id=upload.public_id,
            item_id=upload.item_id,
            kind=UploadKind(upload.kind),
            language=upload.language,
            state=UploadState(upload.state),
            sha256=upload.sha256,
            sniffed=upload.sniffed,
            facts=dict(upload.facts or {}),
            path=store.path_of(upload),
            slot_s=float(item.planned_duration_s) if item is not None else 0.0,
        )


def _while_in(db: DbSession, upload_id: int, *states: UploadState) -> Upload | None:
    """The upload, if it is still in one of these states (a job's outcome may come late)."""
    row = db.get(Upload, upload_id)
    return row if row is not None and UploadState(row.state) in states else None


def record_file_checksum_for_job(
    database: Database, store: ChunkStore, upload_id: int, sha256: str
) -> bool:
    """record_file_checksum for an upload still being checked; False if it was not kept."""
    with database.session() as db:
        row = _while_in(db, upload_id, UploadState.CHECKING)
        return row is not None and record_file_checksum(db, store, row, sha256)


def record_check_for_job(
    database: Database, store: ChunkStore, upload_id: int, verdict: Verdict, facts: dict[str, Any]
) -> None:
    """record_check for an upload still being checked."""
    with database.session() as db:
        if (row := _while_in(db, upload_id, UploadState.CHECKING)) is not None:
            record_check(db, store, row, verdict, facts)


def record_normalised_for_job(
    database: Database,
    upload_id: int,
    *,
    output: Path,
    poster: Path | None,
    info: dict[str, Any],
) -> None:
    """record_normalised for an upload still being normalised."""
    with database.session() as db:
        if (row := _while_in(db, upload_id, UploadState.PROCESSING)) is not None:
            record_normalised(db, row, output=output, poster=poster, info=info)


def record_failure_for_job(database: Database, upload_id: int | None, reason: str) -> None:
    """record_failure for an upload still being checked or normalised."""
    if upload_id is None:
        return
    with database.session() as db:
        row = _while_in(db, upload_id, UploadState.CHECKING, UploadState.PROCESSING)
        if row is not None:
            record_failure(db, row, reason)


def expire_partials_now(
    database: Database, store: ChunkStore, *, now: datetime | None = None
) -> int:
    """expire_partials in a unit of work of its own."""
    with database.session() as db:
        return expire_partials(db, store, now=now or utcnow())
