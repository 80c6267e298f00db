"""Organiser and producer pages: summits, sessions, the run of show, speakers, import."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from summitcast.domain import paging
from summitcast.domain.accounts import Permission
from summitcast.domain.programme import ItemKind, ItemStatus
from summitcast.errors import ValidationError
from summitcast.services import Summit, accounts, audit_trail, programme, schedule, speakers
from summitcast.web import forms, lists
from summitcast.web.deps import (
    BackstageSummit,
    CurrentActor,
    DbDep,
    EditableSummit,
    SettingsDep,
    summit_for,
)
from summitcast.web.edge import RowId
from summitcast.web.security import verify_csrf
from summitcast.web.templating import render

router = APIRouter(
    prefix="/backstage", include_in_schema=False, dependencies=[Depends(verify_csrf)]
)

ShortText = Annotated[str, Form(max_length=500)]
AuditSummit = Annotated[Summit, summit_for(Permission.VIEW_AUDIT_TRAIL)]


def _back(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


@router.get("", response_class=HTMLResponse)
def home(request: Request, db: DbDep, actor: CurrentActor) -> Response:
    """The summits this person organises or produces."""
    return render(
        request,
        "backstage/home.html",
        {
            "summits": accounts.backstage_summits(db, actor),
            "can_create": accounts.can_create_summits(db, actor),
        },
    )


@router.post("/summits")
def create_summit(db: DbDep, actor: CurrentActor, data: forms.SummitForm) -> Response:
    """Create a summit; the creator organises it."""
    summit = programme.create_summit_as(db, actor, data)
    return _back(f"/backstage/s/{summit.slug}")


@router.get("/s/{slug}", response_class=HTMLResponse)
def summit_page(
    request: Request, db: DbDep, actor: CurrentActor, summit: BackstageSummit
) -> Response:
    """A summit's sessions, warnings and settings."""
    return render(
        request,
        "backstage/summit.html",
        {
            "summit": summit,
            "sessions": programme.programme_of(db, summit),
            "warnings": programme.session_warnings(summit),
            "can_edit": accounts.may(db, actor, summit, Permission.EDIT_PROGRAMME),
        },
    )


@router.post("/s/{slug}")
def update_summit(db: DbDep, summit: EditableSummit, data: forms.SummitForm) -> Response:
    """Save a summit's settings."""
    programme.update_summit(db, summit, data)
    return _back(f"/backstage/s/{summit.slug}")


@router.post("/s/{slug}/sessions")
def add_session(db: DbDep, summit: EditableSummit, data: forms.SessionForm) -> Response:
    """Add a session."""
    session = programme.add_session(db, summit, data)
    return _back(f"/backstage/s/{summit.slug}/sessions/{session.id}")


@router.get("/s/{slug}/sessions/{session_id}", response_class=HTMLResponse)
def session_page(
    request: Request, db: DbDep, actor: CurrentActor, summit: BackstageSummit, session_id: RowId
) -> Response:
    """The run of show of one session."""
    session = programme.get_session(db, summit, session_id)
    return render(
        request,
        "backstage/session.html",
        {
            "summit": summit,
            "session": session,
            "timed": programme.timed_items(session),
            "warnings": programme.session_warnings(summit).get(session.id, []),
            "kinds": list(ItemKind),
            "statuses": list(ItemStatus),
            "can_edit": accounts.may(db, actor, summit, Permission.EDIT_PROGRAMME),
        },
    )


@router.post("/s/{slug}/sessions/{session_id}")
def update_session(
    db: DbDep, summit: EditableSummit, session_id: RowId, data: forms.SessionForm
) -> Response:
    """Save a session's title and window."""
    session = programme.get_session(db, summit, session_id)
    programme.update_session(db, session, data)
    return _back(f"/backstage/s/{summit.slug}/sessions/{session.id}")


@router.post("/s/{slug}/sessions/{session_id}/delete")
def delete_session(db: DbDep, summit: EditableSummit, session_id: RowId) -> Response:
    """Remove a session and its items."""
    programme.delete_session(db, programme.get_session(db, summit, session_id))
    return _back(f"/backstage/s/{summit.slug}")


@router.post("/s/{slug}/sessions/{session_id}/items")
def add_item(
    db: DbDep, summit: EditableSummit, session_id: RowId, data: forms.ItemForm
) -> Response:
    """Append an item to the run of show."""
    session = programme.get_session(db, summit, session_id)
    programme.add_item(db, session, data)
    return _back(f"/backstage/s/{summit.slug}/sessions/{session.id}")


@router.post("/s/{slug}/sessions/{session_id}/order")
def set_order(db: DbDep, summit: EditableSummit, session_id: RowId, order: ShortText) -> Response:
    """Put the run of show in the order given as comma-separated item ids (drag and drop)."""
    session = programme.get_session(db, summit, session_id)
    try:
        ids = [int(part) for part in order.split(",") if part.strip()]
    except ValueError:
        raise ValidationError(
            "The order must be item ids separated by commas.", field="order"
        ) from None
    programme.set_order(db, session, ids)
    return _back(f"/backstage/s/{summit.slug}/sessions/{session.id}")


@router.get("/s/{slug}/items/{item_id}", response_class=HTMLResponse)
def item_page(request: Request, db: DbDep, summit: EditableSummit, item_id: RowId) -> Response:
    """Edit one item and who speaks in it."""
    item = programme.get_item(db, summit, item_id)
    return render(
        request,
        "backstage/item.html",
        {
            "summit": summit,
            "item": item,
            "kinds": list(ItemKind),
            "statuses": list(ItemStatus),
            "speakers": summit.speakers,
            "chosen": [link.speaker_id for link in item.speaker_links],
        },
    )


@router.post("/s/{slug}/items/{item_id}")
def update_item(
    db: DbDep,
    summit: EditableSummit,
    item_id: RowId,
    data: forms.ItemForm,
    speakers: Annotated[list[int] | None, Form()] = None,
) -> Response:
    """Save an item and its speakers."""
    item = programme.get_item(db, summit, item_id)
    programme.save_item(db, item, data, speakers or [])
    return _back(f"/backstage/s/{summit.slug}/sessions/{item.session_id}")


@router.post("/s/{slug}/items/{item_id}/move")
def move_item(
    db: DbDep,
    summit: EditableSummit,
    item_id: RowId,
    direction: Annotated[str, Form(pattern="^(up|down)$")],
) -> Response:
    """Move an item one place up or down."""
    item = programme.get_item(db, summit, item_id)
    programme.move_item_by(db, item, -1 if direction == "up" else 1)
    return _back(f"/backstage/s/{summit.slug}/sessions/{item.session_id}#item-{item.id}")


@router.post("/s/{slug}/items/{item_id}/delete")
def delete_item(db: DbDep, summit: EditableSummit, item_id: RowId) -> Response:
    """Remove an item."""
    item = programme.get_item(db, summit, item_id)
    session_id = item.session_id
    programme.delete_item(db, item)
    return _back(f"/backstage/s/{summit.slug}/sessions/{session_id}")


@router.get("/s/{slug}/speakers", response_class=HTMLResponse)
def speakers_page(
    request: Request,
    db: DbDep,
    summit: EditableSummit,
    q: lists.ListText = "",
    sort: lists.ListCode = "",
    per: lists.ListCode = "",
    page: lists.ListCode = "",
) -> Response:
    """The summit's speakers a page at a time, found by name or role, and a form to add one."""
    view = lists.list_view(page, per, sort, speakers.SPEAKER_SORTS)
    text = paging.search_text(q)
    query = view.query(q=text)
    if (tidy := lists.tidy_redirect(request, query, view.page)) is not None:
        return tidy
    listed = speakers.page_of_speakers(
        db, summit, text=text, sort=view.sort, page=view.page, size=view.size
    )
    return render(
        request,
        "backstage/speakers.html",
        {
            "summit": summit,
            "listed": listed,
            "pager": listed.page,
            "query": query,
            "text": text,
            "view": view,
            "sorts": speakers.SPEAKER_SORTS,
            "sizes": paging.PAGE_SIZES,
        },
    )


@router.post("/s/{slug}/speakers")
def add_speaker(db: DbDep, summit: EditableSummit, data: forms.SpeakerForm) -> Response:
    """Add a speaker."""
    speaker = programme.add_speaker(db, summit, data)
    return _back(f"/backstage/s/{summit.slug}/speakers/{speaker.id}")


@router.get("/s/{slug}/speakers/{speaker_id}", response_class=HTMLResponse)
def speaker_page(
    request: Request, db: DbDep, summit: EditableSummit, speaker_id: RowId
) -> Response:
    """Edit one speaker."""
    speaker = programme.get_speaker(db, summit, speaker_id)
    return render(request, "backstage/speaker.html", {"summit": summit, "speaker": speaker})


@router.post("/s/{slug}/speakers/{speaker_id}")
def update_speaker(
    db: DbDep, summit: EditableSummit, speaker_id: RowId, data: forms.SpeakerForm
) -> Response:
    """Save a speaker."""
    speaker = programme.get_speaker(db, summit, speaker_id)
    programme.update_speaker(db, speaker, data)
    return _back(f"/backstage/s/{summit.slug}/speakers/{speaker.id}")


@router.post("/s/{slug}/speakers/{speaker_id}/photo")
async def upload_photo(
    db: DbDep,
    settings: SettingsDep,
    summit: EditableSummit,
    speaker_id: RowId,
    photo: Annotated[UploadFile, File()],
) -> Response:
    """Replace a speaker's photo with a sanitised copy of the upload."""
    speaker = programme.get_speaker(db, summit, speaker_id)
    data = await photo.read(settings.max_photo_bytes + 1)
    programme.replace_speaker_photo(
        db, speaker, data, folder=settings.photo_dir, max_bytes=settings.max_photo_bytes
    )
    return _back(f"/backstage/s/{summit.slug}/speakers/{speaker.id}")


@router.post("/s/{slug}/speakers/{speaker_id}/delete")
def delete_speaker(db: DbDep, summit: EditableSummit, speaker_id: RowId) -> Response:
    """Remove a speaker."""
    programme.delete_speaker(db, programme.get_speaker(db, summit, speaker_id))
    return _back(f"/backstage/s/{summit.slug}/speakers")


@router.get("/s/{slug}/import", response_class=HTMLResponse)
def import_page(request: Request, summit: EditableSummit) -> Response:
    """The schedule import form."""
    return render(request, "backstage/import.html", {"summit": summit, "result": None})


@router.post("/s/{slug}/import", response_class=HTMLResponse)
async def import_schedule(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    summit: EditableSummit,
    file: Annotated[UploadFile, File()],
) -> Response:
    """Import a frab/pretalx JSON or frab XML schedule into the summit, all or nothing."""
    data = await file.read(settings.max_import_bytes + 1)
    result = schedule.import_bytes(
        db, summit, data, filename=file.filename or "", max_bytes=settings.max_import_bytes
    )
    return render(request, "backstage/import.html", {"summit": summit, "result": result})


@router.get("/s/{slug}/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    db: DbDep,
    summit: AuditSummit,
    kind: Annotated[str, Query(max_length=64)] = "",
    sort: lists.ListCode = "",
    per: lists.ListCode = "",
    page: lists.ListCode = "",
) -> Response:
    """The summit's audit trail a page at a time, newest first, optionally of one kind."""
    view = lists.list_view(page, per, sort, audit_trail.AUDIT_SORTS)
    query = view.query(kind=kind.strip())
    if (tidy := lists.tidy_redirect(request, query, view.page)) is not None:
        return tidy
    events = audit_trail.page_of_events(
        db, summit, kind=kind.strip(), page=view.page, sort=view.sort, size=view.size
    )
    return render(
        request,
        "backstage/audit.html",
        {
            "summit": summit,
            "events": events,
            "pager": events.page,
            "query": query,
            "kind": kind.strip(),
            "kinds": audit_trail.KINDS,
            "view": view,
            "sorts": audit_trail.AUDIT_SORTS,
            "sizes": paging.PAGE_SIZES,
        },
    )
