"""The speaker portal (/speak/{token}…), its resumable upload protocol, and the organiser's side.

Portal routes are authenticated by the signed link token in their path, not by a
session cookie, so they carry no CSRF check: a forged cross-site request would need
the token itself. The upload protocol is described in ``summitcast.domain.uploads``.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from summitcast.domain import paging
from summitcast.domain import uploads as upload_rules
from summitcast.domain.media_checks import minutes
from summitcast.domain.uploads import UploadState
from summitcast.errors import NotFoundError
from summitcast.services import (
    SpeakerInvitation,
    Upload,
    greenroom,
    notifications,
    programme,
    speakers,
    upload_list,
    upload_results,
    uploads,
)
from summitcast.services.upload_protocol import OFFSET_HEADER
from summitcast.web import lists
from summitcast.web.deps import (
    CurrentActor,
    DbDep,
    EditableSummit,
    GreenRoomDep,
    SettingsDep,
    UploadProtocolDep,
)
from summitcast.web.edge import RowId
from summitcast.web.security import verify_csrf
from summitcast.web.templating import render
from summitcast.web.transport.uploads import PRIVATE, serve_chunk

router = APIRouter(include_in_schema=False)
backstage_router = APIRouter(
    prefix="/backstage", include_in_schema=False, dependencies=[Depends(verify_csrf)]
)


def open_link(token: str, db: DbDep, settings: SettingsDep) -> SpeakerInvitation:
    """The invitation of the link in the path; 404 forged, 403 expired or revoked."""
    return speakers.open_invitation(db, token, speakers.link_secret(settings))


Invitation = Annotated[SpeakerInvitation, Depends(open_link)]


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
    request: Request,
    token: str,
    db: DbDep,
    invitation: Invitation,
    settings: SettingsDep,
    protocol: UploadProtocolDep,
    green_room: GreenRoomDep,
) -> Response:
    """The speaker's portal: slot, limits, instructions, uploads, notices."""
    view = speakers.portal(db, invitation)
    limits = protocol.limits
    feed = greenroom.feed_of_invitation(db, invitation)
    response = render(
        request,
        "speaker/portal.html",
        {
            "p": view,
            # A live speaker's own ingest, once the producer opened their green-room feed.
            "live": green_room.urls(feed) if feed is not None else None,
            "token": token,
            "minutes": minutes,
            "chunk_size": limits.chunk_bytes,
            "max_size": upload_rules.human_bytes(limits.max_bytes),
            "settings": settings,
        },
    )
    response.headers.update(PRIVATE)
    return response


# The upload protocol's routes take no DbDep: each runs its one unit of work in one worker
# thread and answers after the commit (services/upload_protocol.py says why).


@router.post("/speak/{token}/uploads", status_code=201)
async def create_upload(token: str, body: NewUpload, protocol: UploadProtocolDep) -> Response:
    """Start a resumable upload; answers its id, offset 0 and the chunk size."""
    status = await run_in_threadpool(
        functools.partial(
            protocol.create,
            token,
            size=body.size,
            kind=body.kind,
            language=body.language,
            checksum=body.checksum,
            filename=body.filename,
        )
    )
    status["url"] = f"/speak/{token}/uploads/{status['id']}"
    return JSONResponse(
        status,
        status_code=201,
        headers={**PRIVATE, "Location": status["url"], OFFSET_HEADER: "0"},
    )


@router.get("/speak/{token}/uploads/{upload_id}")
async def upload_status(token: str, upload_id: str, protocol: UploadProtocolDep) -> Response:
    """Where an upload stands (offset to resume from, checks, state)."""
    status = await run_in_threadpool(protocol.status, token, upload_id)
    return JSONResponse(status, headers={**PRIVATE, OFFSET_HEADER: str(status["offset"])})


@router.head("/speak/{token}/uploads/{upload_id}")
async def upload_head(token: str, upload_id: str, protocol: UploadProtocolDep) -> Response:
    """Where an upload stands, in headers only (tus style)."""
    status = await run_in_threadpool(protocol.status, token, upload_id)
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
async def upload_chunk(
    request: Request, token: str, upload_id: str, protocol: UploadProtocolDep
) -> Response:
    """Store one chunk at Upload-Offset (web/transport/uploads.py; its fast path skips this)."""
    return await serve_chunk(request, protocol, token, upload_id)


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
    view = speakers.readiness(
        db, summit, item_id, secret=speakers.link_secret(settings), base_url=settings.base_url
    )
    return render(
        request,
        "backstage/speaker_invite.html",
        {
            "summit": summit,
            "item": view.item,
            "invitations": view.invitations,
            "uploads": view.uploads,
            "senders": view.senders,
            "jobs": view.jobs,
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


@backstage_router.post("/s/{slug}/uploads/{upload_id}/choose")
def choose(db: DbDep, summit: EditableSummit, upload_id: str) -> Response:
    """Put this file in the programme instead of the item's current one (of its kind)."""
    item = upload_results.choose_in_summit(db, summit, upload_id)
    return _back(_item_page_url(summit.slug, item.id))


@backstage_router.get("/s/{slug}/uploads/{upload_id}/poster.jpg")
def backstage_poster(db: DbDep, summit: EditableSummit, upload_id: str) -> Response:
    """The poster frame of an upload, for the organiser."""
    upload = uploads.summit_upload(db, summit, upload_id)
    return FileResponse(_media_file(upload, "poster"), media_type="image/jpeg")


@backstage_router.get("/s/{slug}/uploads/{upload_id}/preview.mp4")
def backstage_preview(db: DbDep, summit: EditableSummit, upload_id: str) -> Response:
    """The normalised file, for the organiser to watch before approving."""
    upload = uploads.summit_upload(db, summit, upload_id)
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
    view = lists.list_view(page, per, sort, upload_list.UPLOAD_SORTS)
    text = paging.search_text(q)
    query = view.query(state=state.strip(), q=text)
    if (tidy := lists.tidy_redirect(request, query, view.page)) is not None:
        return tidy
    listed = upload_list.page_of_uploads(
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
            "sorts": upload_list.UPLOAD_SORTS,
            "sizes": paging.PAGE_SIZES,
        },
    )
