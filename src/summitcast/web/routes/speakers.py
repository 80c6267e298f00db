"""The speaker portal (/speak/{token}…), its resumable upload protocol, and the organiser's side.

Portal routes are authenticated by the signed link token in their path, not by a
session cookie, so they carry no CSRF check: a forged cross-site request would need
the token itself. The upload protocol is described in ``summitcast.domain.uploads``.
"""

from __future__ import annotations

import asyncio
import contextlib
import mmap
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session as DbSession
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect

from summitcast.domain import paging
from summitcast.domain import uploads as upload_rules
from summitcast.domain.media_checks import minutes
from summitcast.domain.uploads import UploadState
from summitcast.errors import ConflictError, NotFoundError
from summitcast.services import greenroom, jobs, notifications, programme, speakers, uploads
from summitcast.storage.database import Database
from summitcast.storage.tables import SpeakerInvitation, Upload
from summitcast.web import lists
from summitcast.web.deps import CurrentActor, DbDep, EditableSummit, SettingsDep
from summitcast.web.edge import RowId
from summitcast.web.security import verify_csrf
from summitcast.web.templating import render

router = APIRouter(include_in_schema=False)
backstage_router = APIRouter(
    prefix="/backstage", include_in_schema=False, dependencies=[Depends(verify_csrf)]
)
OFFSET_HEADER = "Upload-Offset"
_T = TypeVar("_T")
# No shared cache may keep a portal answer: the token is in the URL.
PRIVATE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def _secret(request: Request) -> bytes:
    settings = request.app.state.settings
    return bytes(settings.secret_key.get_secret_value().encode())


def open_link(token: str, request: Request, db: DbDep) -> SpeakerInvitation:
    """The invitation of the link in the path; 404 forged, 403 expired or revoked."""
    return speakers.open_invitation(db, token, _secret(request))


Invitation = Annotated[SpeakerInvitation, Depends(open_link)]


def _store(request: Request) -> uploads.ChunkStore:
    store: uploads.ChunkStore = request.app.state.upload_store
    return store


def _kick(request: Request) -> None:
    worker: jobs.JobWorker | None = request.app.state.job_worker
    if worker is not None:
        worker.kick()


class NewUpload(BaseModel):
    """What a client declares to start an upload."""

    # A misspelt or retired field (such as "sha256") is refused, never silently ignored.
    model_config = ConfigDict(extra="forbid")

    size: int = Field(ge=0)
    kind: str = Field(default="programme", max_length=16)
    language: str = Field(default="", max_length=16)
    # The file checksum (domain.uploads.file_checksum), hex; checked when the last byte lands.
    checksum: str = Field(default="", max_length=64)
    filename: str = Field(default="", max_length=255)


@router.get("/speak/{token}", response_class=HTMLResponse)
def portal_page(
    request: Request, token: str, db: DbDep, invitation: Invitation, settings: SettingsDep
) -> Response:
    """The speaker's portal: slot, limits, instructions, uploads, notices."""
    view = speakers.portal(db, invitation)
    store = _store(request)
    feed = greenroom.feed_of_invitation(db, invitation)
    response = render(
        request,
        "speaker/portal.html",
        {
            "p": view,
            # A live speaker's own ingest, once the producer opened their green-room feed.
            "live": request.app.state.greenroom.urls(feed) if feed is not None else None,
            "token": token,
            "minutes": minutes,
            "chunk_size": store.limits.chunk_bytes,
            "max_size": upload_rules.human_bytes(store.limits.max_bytes),
            "settings": settings,
        },
    )
    response.headers.update(PRIVATE)
    return response


# The upload protocol's routes take no DbDep: each runs its one unit of work in one worker
# thread (link, lookup, write, commit) and answers after the commit. A DbDep spans several
# thread hops (the link dependency, the handler, the commit), holding a pooled connection
# between them: 100 speakers at once left every worker thread waiting for a connection
# that the requests holding them needed a thread to give back (503s after the pool's
# timeout, tests/e2e/test_upload_commit_race.py).


def _in_one_transaction(
    request: Request, token: str, work: Callable[[DbSession, SpeakerInvitation], _T]
) -> _T:
    """Open the link and do work with it in one unit of work, committed before returning."""
    database: Database = request.app.state.database
    with database.session() as db:
        # The link first: a forged or withdrawn one is refused whatever else was asked.
        return work(db, speakers.open_invitation(db, token, _secret(request)))


@router.post("/speak/{token}/uploads", status_code=201)
async def create_upload(request: Request, token: str, body: NewUpload) -> Response:
    """Start a resumable upload; answers its id, offset 0 and the chunk size."""
    store = _store(request)

    def create(db: DbSession, invitation: SpeakerInvitation) -> dict[str, Any]:
        upload = uploads.create_upload(
            db,
            store,
            invitation,
            size=body.size,
            kind=body.kind,
            language=body.language,
            checksum=body.checksum,
            filename=body.filename,
        )
        return uploads.status_of(upload)

    status = await run_in_threadpool(_in_one_transaction, request, token, create)
    status["url"] = f"/speak/{token}/uploads/{status['id']}"
    return JSONResponse(
        status,
        status_code=201,
        headers={**PRIVATE, "Location": status["url"], OFFSET_HEADER: "0"},
    )


async def _resumable_status(request: Request, token: str, upload_id: str) -> dict[str, Any]:
    """The speaker's upload's status, its offset checked first if a gone machine wrote it."""
    store = _store(request)

    def status(db: DbSession, invitation: SpeakerInvitation) -> dict[str, Any]:
        upload = uploads.get_upload(db, invitation, upload_id)
        uploads.recover_unsynced(db, store, upload)  # committed with the unit of work
        return uploads.status_of(upload)

    return await run_in_threadpool(_in_one_transaction, request, token, status)


@router.get("/speak/{token}/uploads/{upload_id}")
async def upload_status(request: Request, token: str, upload_id: str) -> Response:
    """Where an upload stands (offset to resume from, checks, state)."""
    status = await _resumable_status(request, token, upload_id)
    return JSONResponse(status, headers={**PRIVATE, OFFSET_HEADER: str(status["offset"])})


@router.head("/speak/{token}/uploads/{upload_id}")
async def upload_head(request: Request, token: str, upload_id: str) -> Response:
    """Where an upload stands, in headers only (tus style)."""
    status = await _resumable_status(request, token, upload_id)
    return Response(
        status_code=204,
        headers={
            **PRIVATE,
            OFFSET_HEADER: str(status["offset"]),
            "Upload-Length": str(status["size"]),
            "Upload-State": status["state"],
        },
    )


@router.patch("/speak/{token}/uploads/{upload_id}")
async def upload_chunk(request: Request, token: str, upload_id: str) -> Response:
    """Store one chunk at Upload-Offset, written and checked as it arrives; 409 if it does not fit.

    No DbDep: the request must not hold a database transaction while the body trickles
    in over a slow link; it uses one short transaction before the body and one after.
    """
    database: Database = request.app.state.database
    store = _store(request)
    # The claim's transaction runs while the first MiBs of the body arrive: they wait in
    # the chunk's buffers, unwritten, until the claim is known (~3 ms a chunk otherwise).
    opening: asyncio.Future[_OpenChunk] = asyncio.ensure_future(
        run_in_threadpool(
            _begin_chunk, database, store, _secret(request), token, upload_id, request.headers
        )
    )
    buffers = store.lend_buffers()
    try:
        await _receive(request, database, opening, buffers)
        sink, checksum = await opening
        answer = await run_in_threadpool(_end_chunk, database, store, sink, checksum)
    except upload_rules.OffsetMismatchError as exc:
        return _resume_from(exc.message, exc.offset)
    except uploads.ChunkBusyError as exc:
        return _resume_from(exc.message, exc.offset, retry_after_s=exc.retry_after_s)
    except ClientDisconnect:
        await _abandon(database, opening)
        return Response(status_code=400)  # nobody is listening any more
    except BaseException:
        await _abandon(database, opening)
        raise
    finally:
        if opening.done() and not opening.cancelled() and opening.exception() is None:
            opening.result()[0].close()
        store.give_back(buffers)
    state, received, findings = answer
    if state == UploadState.REJECTED:
        return JSONResponse(
            {
                "detail": " ".join(f["message"] for f in findings if f["level"] == "problem"),
                "state": state,
                "findings": findings,
            },
            status_code=422,
            headers=PRIVATE,
        )
    if state != UploadState.RECEIVING:
        _kick(request)  # the check job was committed with the last chunk
    return Response(
        status_code=204, headers={**PRIVATE, OFFSET_HEADER: str(received), "Upload-State": state}
    )


_OpenChunk = tuple[uploads.ChunkSink, upload_rules.ChunkChecksum | None]


async def _receive(
    request: Request,
    database: Database,
    opening: asyncio.Future[_OpenChunk],
    buffers: Sequence[mmap.mmap],
) -> None:
    """Copy the body into free buffers while a thread writes and checks the full ones."""
    # Received pieces (64-256 KiB each) are copied, not kept: see ChunkStore.lend_buffers.
    # One write at a time (the checksum runs in order), carrying every buffer filled
    # meanwhile: with two buffers the socket waited on the disk ~40% of a chunk's time.
    # Nothing is written before `opening` (the claim) is done; a refusal ends the body.
    free = [memoryview(buffer) for buffer in buffers]
    size = len(buffers[0])
    current, filled = free.pop(), 0
    full: list[memoryview] = []  # filled, waiting for the claim or the write in flight
    in_write: list[memoryview] = []
    writing: asyncio.Future[None] | None = None

    async def write_done() -> None:
        nonlocal writing, in_write
        assert writing is not None
        await writing
        free.extend(in_write)
        writing, in_write = None, []

    async def write_full() -> None:
        nonlocal writing, in_write, full
        sink, _checksum = await opening
        in_write, full = full, []
        writing = asyncio.ensure_future(run_in_threadpool(sink.write, in_write))

    renew_at = time.monotonic() + uploads.CLAIM_RENEW_S
    try:
        async for piece in request.stream():
            if time.monotonic() > renew_at:
                # A slow link (a chunk may take minutes): keep the claim alive, checked on
                # every piece, so no other node takes the chunk over while bytes still come.
                sink = (await opening)[0]
                renewed_at = time.monotonic()
                if sink.ticket.claim and not await run_in_threadpool(
                    _renew_claim, database, sink.ticket
                ):
                    raise ConflictError(
                        "This chunk took so long that another connection took it over; "
                        "send it again."
                    )
                sink.claim_renewed(renewed_at)
                renew_at = renewed_at + uploads.CLAIM_RENEW_S
            if opening.done() and opening.exception() is not None:
                break  # refused (an offset, a busy chunk, a link): answered without the rest
            rest = memoryview(piece)
            while rest:
                step = min(len(rest), size - filled)
                current[filled : filled + step] = rest[:step]
                filled += step
                rest = rest[step:]
                if filled < size:
                    continue
                full.append(current)
                if writing is not None and (writing.done() or not free):
                    await write_done()  # no buffer left to fill: wait for the disk
                if writing is None and (opening.done() or not free):
                    await write_full()
                if not free:
                    await write_done()  # every buffer went into this write (a late claim)
                current, filled = free.pop(), 0
        if writing is not None:
            await write_done()
        if filled:
            full.append(current[:filled])
        if full:
            await write_full()
            await write_done()
    finally:
        if writing is not None and not writing.done():
            # The buffers are lent again after this returns: never under a running write.
            with contextlib.suppress(BaseException):
                await asyncio.shield(writing)


async def _abandon(database: Database, opening: asyncio.Future[_OpenChunk]) -> None:
    """Give up the chunk's claim, if the chunk got one."""
    try:
        sink, _checksum = await asyncio.shield(opening)
    except BaseException:
        return  # refused before any claim: nothing to give up
    await run_in_threadpool(_abandon_chunk, database, sink.ticket)


def _resume_from(message: str, offset: int, *, retry_after_s: int | None = None) -> Response:
    headers = {**PRIVATE, OFFSET_HEADER: str(offset)}
    body: dict[str, Any] = {"detail": message, "offset": offset}
    if retry_after_s is not None:
        headers["Retry-After"] = str(retry_after_s)
        body["retry_after_s"] = retry_after_s
    return JSONResponse(body, status_code=409, headers=headers)


def _begin_chunk(
    database: Database,
    store: uploads.ChunkStore,
    secret: bytes,
    token: str,
    upload_id: str,
    headers: Headers,
) -> _OpenChunk:
    with database.session() as db:
        # The link first: a forged or withdrawn one is refused whatever the headers say.
        invitation = speakers.open_invitation(db, token, secret)
        upload = uploads.get_upload(db, invitation, upload_id)
        if uploads.recover_unsynced(db, store, upload):
            db.commit()  # kept whatever this chunk's fate: the offset to resume from moved
        offset = upload_rules.parse_offset(headers.get(OFFSET_HEADER))
        length = upload_rules.parse_length(headers.get("content-length"))
        checksum = upload_rules.parse_checksum(headers.get("Upload-Checksum"))
        ticket = uploads.begin_chunk(db, store, upload, offset=offset, length=length)
    # After the commit: a sink (and its file descriptor) only for a claim that holds.
    return uploads.ChunkSink(ticket, sha256=uploads.wants_sha256(checksum)), checksum


def _end_chunk(
    database: Database,
    store: uploads.ChunkStore,
    sink: uploads.ChunkSink,
    checksum: upload_rules.ChunkChecksum | None,
) -> tuple[str, int, list[dict[str, Any]]]:
    digests = sink.finish()
    with database.session() as db:
        outcome = uploads.end_chunk(
            db, store, sink.ticket, digests=digests, checksum=checksum, head=sink.head
        )
    return outcome.state, outcome.received, outcome.findings


def _renew_claim(database: Database, ticket: uploads.ChunkTicket) -> bool:
    with database.session() as db:
        return uploads.renew_claim(db, ticket)


def _abandon_chunk(database: Database, ticket: uploads.ChunkTicket) -> None:
    with database.session() as db:
        uploads.abandon_chunk(db, ticket)


def _media_file(upload: Upload, which: str) -> Path:
    path = upload.poster_path if which == "poster" else upload.output_path
    if upload.state not in upload_rules.CHOOSABLE_STATES or not path:
        raise NotFoundError("This file is not ready yet.")
    return Path(path)


@router.get("/speak/{token}/uploads/{upload_id}/poster.jpg")
def portal_poster(db: DbDep, invitation: Invitation, upload_id: str) -> Response:
    """The poster frame of a normalised upload."""
    upload = uploads.get_upload(db, invitation, upload_id)
    return FileResponse(_media_file(upload, "poster"), media_type="image/jpeg", headers=PRIVATE)


@router.get("/speak/{token}/uploads/{upload_id}/preview.mp4")
def portal_preview(db: DbDep, invitation: Invitation, upload_id: str) -> Response:
    """The normalised file, as it will go on air (range requests work for seeking)."""
    upload = uploads.get_upload(db, invitation, upload_id)
    path = _media_file(upload, "preview")
    media_type = {".mp4": "video/mp4", ".m4a": "audio/mp4", ".vtt": "text/vtt"}.get(
        path.suffix, "application/octet-stream"
    )
    return FileResponse(path, media_type=media_type, headers=PRIVATE)


# Organiser side ---------------------------------------------------------------------------


def _back(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


def _item_page_url(slug: str, item_id: int) -> str:
    return f"/backstage/s/{slug}/items/{item_id}/speaker"


@backstage_router.get("/s/{slug}/items/{item_id}/speaker", response_class=HTMLResponse)
def readiness_page(
    request: Request, db: DbDep, summit: EditableSummit, item_id: RowId, settings: SettingsDep
) -> Response:
    """Invitations, uploads, check results, preview and approval of one item."""
    item = programme.get_item(db, summit, item_id)
    secret = _secret(request)
    invitations = [
        (inv, f"{settings.base_url.rstrip('/')}/speak/{speakers.invitation_token(inv, secret)}")
        for inv in speakers.invitations_of_item(db, item)
    ]
    item_uploads = speakers.uploads_of_item(db, item.id)
    # Who sent each file: co-speakers of one item each upload their own.
    senders = {inv.id: inv.speaker.name for inv, _link in invitations}
    return render(
        request,
        "backstage/speaker_invite.html",
        {
            "summit": summit,
            "item": item,
            "invitations": invitations,
            "uploads": item_uploads,
            "senders": senders,
            "jobs": {u.id: jobs.jobs_of_upload(db, u.id) for u in item_uploads},
            "speakers": summit.speakers,
            "valid_days": settings.invitation_valid_days,
        },
    )


@backstage_router.post("/s/{slug}/items/{item_id}/invitations")
def invite(
    db: DbDep,
    actor: CurrentActor,
    summit: EditableSummit,
    item_id: RowId,
    speaker_id: Annotated[int, Form()],
    email: Annotated[str, Form(max_length=254)] = "",
    valid_days: Annotated[int, Form()] = 60,
) -> Response:
    """Create a speaker's personal link to this item."""
    item = programme.get_item(db, summit, item_id)
    speakers.invite_speaker(
        db,
        summit,
        item,
        speaker_id,
        valid_days=valid_days,
        email=email,
        created_by=actor.user_id,
    )
    return _back(_item_page_url(summit.slug, item.id))


@backstage_router.post("/s/{slug}/invitations/{invitation_id}/revoke")
def revoke(db: DbDep, summit: EditableSummit, invitation_id: RowId) -> Response:
    """Withdraw a speaker's link."""
    invitation = speakers.get_invitation(db, summit, invitation_id)
    speakers.revoke_invitation(db, invitation)
    return _back(_item_page_url(summit.slug, invitation.item_id))


@backstage_router.post("/s/{slug}/items/{item_id}/approve")
def approve(
    db: DbDep, actor: CurrentActor, summit: EditableSummit, item_id: RowId, settings: SettingsDep
) -> Response:
    """Approve the ready file for air."""
    item = programme.get_item(db, summit, item_id)
    email = notifications.email_configured(settings)
    speakers.approve_item(db, item, email=email, actor=actor)
    return _back(_item_page_url(summit.slug, item.id))


@backstage_router.post("/s/{slug}/items/{item_id}/retake")
def retake(
    db: DbDep,
    actor: CurrentActor,
    summit: EditableSummit,
    item_id: RowId,
    settings: SettingsDep,
    reason: Annotated[str, Form(max_length=2000)],
) -> Response:
    """Ask the speaker for a new recording, with the reason."""
    item = programme.get_item(db, summit, item_id)
    email = notifications.email_configured(settings)
    speakers.ask_new_take(db, item, reason, email=email, actor=actor)
    return _back(_item_page_url(summit.slug, item.id))


def _summit_upload(db: DbDep, summit: EditableSummit, upload_id: str) -> Upload:
    upload = uploads.upload_by_public_id(db, upload_id)
    programme.get_item(db, summit, upload.item_id)  # 404 unless the item is this summit's
    return upload


@backstage_router.post("/s/{slug}/uploads/{upload_id}/choose")
def choose(db: DbDep, summit: EditableSummit, upload_id: str) -> Response:
    """Put this file in the programme instead of the item's current one (of its kind)."""
    upload = _summit_upload(db, summit, upload_id)
    item = programme.get_item(db, summit, upload.item_id)
    uploads.choose_upload(db, item, upload)
    return _back(_item_page_url(summit.slug, item.id))


@backstage_router.get("/s/{slug}/uploads/{upload_id}/poster.jpg")
def backstage_poster(db: DbDep, summit: EditableSummit, upload_id: str) -> Response:
    """The poster frame of an upload, for the organiser."""
    upload = _summit_upload(db, summit, upload_id)
    return FileResponse(_media_file(upload, "poster"), media_type="image/jpeg")


@backstage_router.get("/s/{slug}/uploads/{upload_id}/preview.mp4")
def backstage_preview(db: DbDep, summit: EditableSummit, upload_id: str) -> Response:
    """The normalised file, for the organiser to watch before approving."""
    upload = _summit_upload(db, summit, upload_id)
    return FileResponse(_media_file(upload, "preview"), media_type="video/mp4")


@backstage_router.get("/s/{slug}/uploads", response_class=HTMLResponse)
def uploads_page(
    request: Request,
    db: DbDep,
    summit: EditableSummit,
    state: lists.ListCode = "",
    q: lists.ListText = "",
    sort: lists.ListCode = "",
    per: lists.ListCode = "",
    page: lists.ListCode = "",
) -> Response:
    """Every speaker upload of the summit a page at a time, by state, file, item or speaker."""
    view = lists.list_view(page, per, sort, uploads.UPLOAD_SORTS)
    text = paging.search_text(q)
    query = view.query(state=state.strip(), q=text)
    if (tidy := lists.tidy_redirect(request, query, view.page)) is not None:
        return tidy
    listed = uploads.page_of_uploads(
        db, summit, state=state.strip(), text=text, sort=view.sort, page=view.page, size=view.size
    )
    return render(
        request,
        "backstage/uploads.html",
        {
            "summit": summit,
            "listed": listed,
            "pager": listed.page,
            "query": query,
            "state": state.strip(),
            "text": text,
            "states": [s.value for s in UploadState],
            "view": view,
            "sorts": uploads.UPLOAD_SORTS,
            "sizes": paging.PAGE_SIZES,
        },
    )
