"""Speaker uploads: start one, look it up, answer its status; the folder and caps they use.

Bytes go to the upload files (``storage.chunks``, under ``settings.upload_dir``, outside
the web root) under random names; the speaker's file name is kept only to be shown back.
The protocol is described in ``summitcast.domain.uploads``; the chunks' claim, record and
recovery are in ``services.upload_chunks``, the check and normalisation outcomes in
``services.upload_results``, the organisers' list in ``services.upload_list``, and the
web edge's units of work in ``services.upload_protocol``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from summitcast.domain import uploads as rules
from summitcast.domain.media_checks import speaker_reason
from summitcast.domain.programme import ItemStatus
from summitcast.domain.uploads import UploadKind, UploadState
from summitcast.errors import ConflictError, NotFoundError
from summitcast.services.programme import get_item
from summitcast.services.speakers import UPLOAD_OPEN, speaker_uploads
from summitcast.storage.chunks import ChunkFiles
from summitcast.storage.tables import SpeakerInvitation, Summit, Upload, utcnow

JOB_CHECK = "check_upload"
JOB_NORMALISE = "normalise_upload"


@dataclass(frozen=True, slots=True)
class UploadLimits:
    """The caps an upload is held to."""

    max_bytes: int
    chunk_bytes: int
    partial_expiry_s: float


@dataclass(frozen=True, slots=True)
class ChunkStore:
    """The upload files and the caps uploads are held to (shared by every node)."""

    files: ChunkFiles
    limits: UploadLimits

    @property
    def machine(self) -> str:
        """This boot of this machine (see ChunkFiles.machine)."""
        return self.files.machine

    def path_of(self, upload: Upload) -> Path:
        """Where a tool that reads files itself (ffmpeg) finds an upload's bytes."""
        return self.files.path(upload.stored_name)


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
    store.files.create(upload.stored_name)
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


def summit_upload(db: DbSession, summit: Summit, public_id: str) -> Upload:
    """An upload to an item of this summit, by its protocol id, or 404."""
    upload = upload_by_public_id(db, public_id)
    get_item(db, summit, upload.item_id)  # 404 unless the item is this summit's
    return upload


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
