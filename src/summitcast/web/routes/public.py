"""Public pages: summits, the programme by day and session, speakers, exports."""

from __future__ import annotations

from itertools import groupby
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from summitcast.errors import NotFoundError
from summitcast.services import programme, schedule
from summitcast.web.deps import DbDep, SettingsDep
from summitcast.web.edge import OptionalRowId, RowId, Slug
from summitcast.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, db: DbDep) -> Response:
    """The list of summits."""
    return render(request, "index.html", {"summits": programme.list_summits(db)})


@router.get("/s/{slug}", response_class=HTMLResponse)
def summit_page(request: Request, slug: Slug, db: DbDep) -> Response:
    """A summit's public programme, grouped by day in the summit's time zone."""
    summit = programme.get_summit(db, slug)
    sessions = programme.programme_of(db, summit)
    by_day = [(day, list(group)) for day, group in groupby(sessions, key=lambda s: s.day.date)]
    return render(request, "summit.html", {"summit": summit, "days": by_day})


@router.get("/s/{slug}/sessions/{session_id}", response_class=HTMLResponse)
def session_page(request: Request, slug: Slug, session_id: RowId, db: DbDep) -> Response:
    """One session's run of show with planned times."""
    summit = programme.get_summit(db, slug)
    session = programme.get_session(db, summit, session_id)
    timed = programme.timed_items(session)
    return render(request, "session.html", {"summit": summit, "session": session, "timed": timed})


@router.get("/s/{slug}/speakers", response_class=HTMLResponse)
def speakers_page(request: Request, slug: Slug, db: DbDep) -> Response:
    """Every speaker of the summit."""
    summit = programme.get_summit(db, slug)
    return render(request, "speakers.html", {"summit": summit, "speakers": summit.speakers})


@router.get("/s/{slug}/speakers/{speaker_id}", response_class=HTMLResponse)
def speaker_page(request: Request, slug: Slug, speaker_id: RowId, db: DbDep) -> Response:
    """One speaker and their items."""
    summit = programme.get_summit(db, slug)
    speaker = programme.get_speaker(db, summit, speaker_id)
    items = programme.items_of_speaker(db, speaker)
    return render(request, "speaker.html", {"summit": summit, "speaker": speaker, "items": items})


@router.get("/photos/{name}")
def photo(name: str, settings: SettingsDep) -> Response:
    """A sanitised speaker photo."""
    folder = settings.photo_dir.resolve()
    try:
        path = (folder / Path(name).name).resolve()
        found = path.parent == folder and path.suffix == ".jpg" and path.is_file()
    except (OSError, ValueError):  # a name the file system refuses (too long, a NUL byte)
        found = False
    if not found:
        raise NotFoundError("No such photo.")
    return FileResponse(
        path, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=86400"}
    )


@router.get("/s/{slug}/schedule.json")
def export_json(slug: Slug, db: DbDep) -> Response:
    """The programme as a c3voc/frab JSON schedule."""
    body, media_type = schedule.export_programme(db, slug, "json")
    return Response(body, media_type=media_type)


@router.get("/s/{slug}/schedule.xml")
def export_xml(slug: Slug, db: DbDep) -> Response:
    """The programme as a frab XML schedule."""
    body, media_type = schedule.export_programme(db, slug, "xml")
    return Response(body, media_type=media_type)


@router.get("/s/{slug}/schedule.ics")
def export_ics(slug: Slug, db: DbDep, session: OptionalRowId = None) -> Response:
    """The programme (or one session) as iCalendar."""
    body, media_type = schedule.export_programme(db, slug, "ics", session_id=session)
    return Response(
        body,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{slug}.ics"'},
    )
