"""The resumable upload protocol's units of work, as the web edge calls them.

Each runs in one worker thread with its own short transaction (link, lookup, write,
commit) and returns after the commit: a request must not hold a pooled connection across
thread hops, nor a transaction while a chunk's body trickles in over a slow link (100
speakers at once left every worker thread waiting for a connection that the requests
holding them needed a thread to give back; tests/e2e/test_upload_commit_race.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from summitcast.domain import uploads as rules
from summitcast.domain.uploads import UploadState
from summitcast.services import speakers, upload_chunks, uploads
from summitcast.services.upload_chunks import ChunkOutcome, ChunkSink, ChunkTicket

# Re-exported: the web edge types the buffers it receives a chunk into with it.
from summitcast.storage.chunks import WriteBuffer as WriteBuffer
from summitcast.storage.database import Database

OFFSET_HEADER = "Upload-Offset"


@dataclass(frozen=True, slots=True)
class OpenChunk:
    """A chunk claimed (or to be compared): its sink, and the checksum its client declared."""

    sink: ChunkSink
    checksum: rules.ChunkChecksum | None


class UploadProtocol:
    """The speakers' upload protocol over one database and one upload folder."""

    def __init__(
        self,
        database: Database,
        store: uploads.ChunkStore,
        secret: bytes,
        *,
        kick: Callable[[], None] | None = None,
    ) -> None:
        self.database = database
        self.store = store
        self._secret = secret
        self._kick = kick  # the job worker's: look for the check job now

    @property
    def limits(self) -> uploads.UploadLimits:
        """The caps uploads are held to."""
        return self.store.limits

    def create(
        self, token: str, *, size: int, kind: str, language: str, checksum: str, filename: str
    ) -> dict[str, Any]:
        """Start an upload through the link; its status (id, offset 0, chunk size)."""
        with self.database.session() as db:
            # The link first: a forged or withdrawn one is refused whatever else was asked.
            invitation = speakers.open_invitation(db, token, self._secret)
            upload = uploads.create_upload(
                db,
                self.store,
                invitation,
                size=size,
                kind=kind,
                language=language,
                checksum=checksum,
                filename=filename,
            )
            return uploads.status_of(upload)

    def status(self, token: str, upload_id: str) -> dict[str, Any]:
        """The speaker's upload's status, its offset checked first if a gone machine wrote it."""
        with self.database.session() as db:
            invitation = speakers.open_invitation(db, token, self._secret)
            upload = uploads.get_upload(db, invitation, upload_id)
            upload_chunks.recover_unsynced(db, self.store, upload)  # committed with it
            return uploads.status_of(upload)

    def open_chunk(self, token: str, upload_id: str, headers: Mapping[str, str]) -> OpenChunk:
        """Check and claim the chunk a PATCH announces (headers: its request's), committed."""
        with self.database.session() as db:
            # The link first: a forged or withdrawn one is refused whatever the headers say.
            invitation = speakers.open_invitation(db, token, self._secret)
            upload = uploads.get_upload(db, invitation, upload_id)
            if upload_chunks.recover_unsynced(db, self.store, upload):
                db.commit()  # kept whatever this chunk's fate: the offset to resume from moved
            offset = rules.parse_offset(headers.get(OFFSET_HEADER))
            length = rules.parse_length(headers.get("content-length"))
            checksum = rules.parse_checksum(headers.get("Upload-Checksum"))
            ticket = upload_chunks.begin_chunk(db, self.store, upload, offset=offset, length=length)
        # After the commit: a sink (and its open file) only for a claim that holds.
        sha256 = upload_chunks.wants_sha256(checksum)
        return OpenChunk(ChunkSink(ticket, self.store.files, sha256=sha256), checksum)

    def renew(self, ticket: ChunkTicket) -> bool:
        """Keep a slow chunk's claim alive; False if another connection took it over."""
        with self.database.session() as db:
            return upload_chunks.renew_claim(db, ticket)

    def end_chunk(self, chunk: OpenChunk) -> ChunkOutcome:
        """Record a received chunk, committed; a finished upload's check job is looked at now."""
        digests = chunk.sink.finish()
        with self.database.session() as db:
            outcome = upload_chunks.end_chunk(
                db,
                self.store,
                chunk.sink.ticket,
                digests=digests,
                checksum=chunk.checksum,
                head=chunk.sink.head,
            )
        if outcome.state not in (UploadState.RECEIVING, UploadState.REJECTED) and self._kick:
            self._kick()  # the check job was committed with the last chunk
        return outcome

    def abandon(self, ticket: ChunkTicket) -> None:
        """Give up a chunk's claim and its bytes."""
        with self.database.session() as db:
            upload_chunks.abandon_chunk(db, self.store, ticket)

    def lend_buffers(self) -> list[WriteBuffer]:
        """Buffers to receive one chunk's body into (see ChunkFiles.lend_buffers)."""
        return self.store.files.lend_buffers()

    def give_back(self, buffers: Sequence[WriteBuffer]) -> None:
        """Take lent buffers back, no write using them any more."""
        self.store.files.give_back(buffers)
