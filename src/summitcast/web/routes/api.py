"""The JSON API over the programme; its OpenAPI document is at /api/openapi.json."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from summitcast.services import Item, ProgrammeSession, Speaker, programme, schedule
from summitcast.services.programme import ItemInput, SessionInput, SpeakerInput, SummitInput
from summitcast.web.deps import CurrentActor, DbDep, EditableSummit, SettingsDep
from summitcast.web.edge import RowId, Slug
from summitcast.web.schemas import (
    ErrorOut,
    ImportOut,
    ItemIn,
    ItemOut,
    OrderIn,
    SessionIn,
    SessionOut,
    SpeakerIn,
    SpeakerOut,
    SpeakerRef,
    SpeakersIn,
    SummitIn,
    SummitOut,
)
from summitcast.web.security import verify_csrf

# Refusals are documented as they are sent (app.py's handlers), not as FastAPI's default 422.
REFUSALS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut} for status in (400, 401, 403, 404, 409, 413, 422, 429)
}
router = APIRouter(
    prefix="/api", tags=["programme"], dependencies=[Depends(verify_csrf)], responses=REFUSALS
)


def _summit_input(body: SummitIn) -> SummitInput:
    return SummitInput(**body.model_dump(exclude={"languages"}), languages=tuple(body.languages))


def _item_out(item: Item) -> ItemOut:
    out = ItemOut.model_validate(item)
    out.speakers = [SpeakerRef.model_validate(link.speaker) for link in item.speaker_links]
    return out


def _session_out(session: ProgrammeSession) -> SessionOut:
    out = SessionOut.model_validate(session, from_attributes=True)
    out.items = [_item_out(i) for i in session.items]
    return out


def _speaker_out(speaker: Speaker) -> SpeakerOut:
    out = SpeakerOut.model_validate(speaker)
    out.photo_url = f"/photos/{speaker.photo}" if speaker.photo else None
    return out


@router.get("/summits")
def list_summits(db: DbDep) -> list[SummitOut]:
    """Every summit."""
    return [SummitOut.model_validate(s) for s in programme.list_summits(db)]


@router.post("/summits", status_code=201)
def create_summit(body: SummitIn, db: DbDep, actor: CurrentActor) -> SummitOut:
    """Create a summit; the caller becomes its organiser."""
    return SummitOut.model_validate(programme.create_summit_as(db, actor, _summit_input(body)))


@router.get("/summits/{slug}")
def get_summit(slug: Slug, db: DbDep) -> SummitOut:
    """One summit."""
    return SummitOut.model_validate(programme.get_summit(db, slug))


@router.put("/summits/{slug}")
def update_summit(body: SummitIn, db: DbDep, summit: EditableSummit) -> SummitOut:
    """Replace a summit's fields."""
    return SummitOut.model_validate(programme.update_summit(db, summit, _summit_input(body)))


@router.get("/summits/{slug}/sessions")
def list_sessions(slug: Slug, db: DbDep) -> list[SessionOut]:
    """The programme: sessions with their items."""
    summit = programme.get_summit(db, slug)
    return [_session_out(s) for s in programme.programme_of(db, summit)]


@router.post("/summits/{slug}/sessions", status_code=201)
def add_session(body: SessionIn, db: DbDep, summit: EditableSummit) -> SessionOut:
    """Add a session."""
    return _session_out(programme.add_session(db, summit, SessionInput(**body.model_dump())))


@router.get("/summits/{slug}/sessions/{session_id}")
def get_session(slug: Slug, session_id: RowId, db: DbDep) -> SessionOut:
    """One session with its run of show."""
    summit = programme.get_summit(db, slug)
    return _session_out(programme.get_session(db, summit, session_id))


@router.put("/summits/{slug}/sessions/{session_id}")
def update_session(
    session_id: RowId, body: SessionIn, db: DbDep, summit: EditableSummit
) -> SessionOut:
    """Replace a session's title and window."""
    session = programme.get_session(db, summit, session_id)
    return _session_out(programme.update_session(db, session, SessionInput(**body.model_dump())))


@router.delete("/summits/{slug}/sessions/{session_id}", status_code=204)
def delete_session(session_id: RowId, db: DbDep, summit: EditableSummit) -> Response:
    """Remove a session."""
    programme.delete_session(db, programme.get_session(db, summit, session_id))
    return Response(status_code=204)


@router.post("/summits/{slug}/sessions/{session_id}/items", status_code=201)
def add_item(session_id: RowId, body: ItemIn, db: DbDep, summit: EditableSummit) -> ItemOut:
    """Append an item to a session's run of show."""
    session = programme.get_session(db, summit, session_id)
    return _item_out(programme.add_item(db, session, ItemInput(**body.model_dump())))


@router.put("/summits/{slug}/sessions/{session_id}/order")
def set_order(session_id: RowId, body: OrderIn, db: DbDep, summit: EditableSummit) -> SessionOut:
    """Reorder a session's run of show."""
    session = programme.get_session(db, summit, session_id)
    programme.set_order(db, session, body.order)
    return _session_out(session)


@router.get("/summits/{slug}/items/{item_id}")
def get_item(slug: Slug, item_id: RowId, db: DbDep) -> ItemOut:
    """One item."""
    return _item_out(programme.get_item(db, programme.get_summit(db, slug), item_id))


@router.put("/summits/{slug}/items/{item_id}")
def update_item(item_id: RowId, body: ItemIn, db: DbDep, summit: EditableSummit) -> ItemOut:
    """Replace an item's fields."""
    item = programme.get_item(db, summit, item_id)
    return _item_out(programme.update_item(db, item, ItemInput(**body.model_dump())))


@router.put("/summits/{slug}/items/{item_id}/speakers")
def set_item_speakers(
    item_id: RowId, body: SpeakersIn, db: DbDep, summit: EditableSummit
) -> ItemOut:
    """Set who speaks in an item."""
    item = programme.get_item(db, summit, item_id)
    return _item_out(programme.set_item_speakers(db, item, body.speakers))


@router.delete("/summits/{slug}/items/{item_id}", status_code=204)
def delete_item(item_id: RowId, db: DbDep, summit: EditableSummit) -> Response:
    """Remove an item."""
    programme.delete_item(db, programme.get_item(db, summit, item_id))
    return Response(status_code=204)


@router.get("/summits/{slug}/speakers")
def list_speakers(slug: Slug, db: DbDep) -> list[SpeakerOut]:
    """Every speaker of a summit."""
    return [_speaker_out(s) for s in programme.get_summit(db, slug).speakers]


@router.post("/summits/{slug}/speakers", status_code=201)
def add_speaker(body: SpeakerIn, db: DbDep, summit: EditableSummit) -> SpeakerOut:
    """Add a speaker."""
    return _speaker_out(programme.add_speaker(db, summit, SpeakerInput(**body.model_dump())))


@router.get("/summits/{slug}/speakers/{speaker_id}")
def get_speaker(slug: Slug, speaker_id: RowId, db: DbDep) -> SpeakerOut:
    """One speaker."""
    return _speaker_out(programme.get_speaker(db, programme.get_summit(db, slug), speaker_id))


@router.put("/summits/{slug}/speakers/{speaker_id}")
def update_speaker(
    speaker_id: RowId, body: SpeakerIn, db: DbDep, summit: EditableSummit
) -> SpeakerOut:
    """Replace a speaker's fields."""
    speaker = programme.get_speaker(db, summit, speaker_id)
    return _speaker_out(programme.update_speaker(db, speaker, SpeakerInput(**body.model_dump())))


@router.delete("/summits/{slug}/speakers/{speaker_id}", status_code=204)
def delete_speaker(speaker_id: RowId, db: DbDep, summit: EditableSummit) -> Response:
    """Remove a speaker."""
    programme.delete_speaker(db, programme.get_speaker(db, summit, speaker_id))
    return Response(status_code=204)


@router.post(
    "/summits/{slug}/schedule",
    openapi_extra={
        "requestBody": {
            "content": {"application/json": {}, "application/xml": {}},
            "description": "A c3voc/frab JSON schedule or a frab XML schedule.",
        }
    },
)
async def import_schedule(
    request: Request, db: DbDep, settings: SettingsDep, summit: EditableSummit
) -> ImportOut:
    """Import a schedule into the summit: all or nothing, idempotent on re-import."""
    data = await request.body()
    kind = "xml" if "xml" in request.headers.get("content-type", "") else ""
    result = schedule.import_bytes(
        db,
        summit,
        data,
        filename=f"upload.{kind}" if kind else "",
        max_bytes=settings.max_import_bytes,
    )
    return ImportOut(**result.as_dict())


@router.get("/summits/{slug}/schedule")
def export_schedule(
    slug: Slug,
    db: DbDep,
    format: Annotated[str, Query(pattern="^(json|xml|ics)$")] = "json",
) -> Response:
    """Export the programme as frab JSON, frab XML or iCalendar."""
    body, media_type = schedule.export_programme(db, slug, format)
    return Response(body, media_type=media_type)
