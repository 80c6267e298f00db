"""The producer's green room: live speakers' own feeds, previewed before they are taken on air."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from summitcast.domain.accounts import Permission
from summitcast.runtime.greenroom import GreenRoomManager
from summitcast.runtime.webrtc import BrowserContributions
from summitcast.services import greenroom as service
from summitcast.services import programme
from summitcast.storage.tables import Summit
from summitcast.web.deps import CurrentActor, DbDep, summit_for
from summitcast.web.edge import RowId
from summitcast.web.security import verify_csrf
from summitcast.web.templating import render

backstage_router = APIRouter(
    prefix="/backstage", include_in_schema=False, dependencies=[Depends(verify_csrf)]
)

RunnerSummit = Annotated[Summit, summit_for(Permission.RUN_BROADCAST)]
# Shown instead of a frame while a feed has none: the page's <img> keeps its size.
NO_SIGNAL_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="320" height="180" viewBox="0 0 320 180">'
    '<rect width="320" height="180" fill="#222"/><text x="160" y="95" fill="#ccc" '
    'font-family="sans-serif" font-size="20" text-anchor="middle">No signal</text></svg>'
)
NO_STORE = {"Cache-Control": "no-store"}
BROWSER_INPUT = "browser (WebRTC)"


def _manager(request: Request) -> GreenRoomManager:
    manager: GreenRoomManager = request.app.state.greenroom
    return manager


def _room_url(summit: Summit, session_id: int) -> str:
    return f"/backstage/s/{summit.slug}/sessions/{session_id}/control/greenroom"


def _feeds_view(request: Request, feeds: list[service.FeedView], base: str) -> list[dict[str, Any]]:
    """One entry per speaker: their feed's URLs, key, status and preview (for producers only)."""
    manager = _manager(request)
    browsers: BrowserContributions = request.app.state.browser_live
    views = []
    for view in feeds:
        entry: dict[str, Any] = {
            "speaker_id": view.speaker_id,
            "speaker": view.speaker_name,
            "open": view.feed is not None,
            "taken": bool(view.feed and view.feed.taken),
            "preview_url": f"{base}/{view.speaker_id}/preview.jpg",
            "status": None,
        }
        if view.feed is not None:
            entry["urls"] = manager.urls(view.feed)
            entry["key"] = view.feed.ingest_key
            status = manager.status(view.feed.feed_id)
            # A browser's feed reaches the listener as RTMP from this node's own peer:
            # the producer should know it is the speaker's browser, not OBS.
            if status and status["receiving"] == "rtmp" and browsers.sending(view.feed.feed_id):
                status["receiving"] = BROWSER_INPUT
            entry["status"] = status
        views.append(entry)
    return views


@backstage_router.get(
    "/s/{slug}/sessions/{session_id}/control/greenroom", response_class=HTMLResponse
)
def green_room_page(
    request: Request, db: DbDep, actor: CurrentActor, summit: RunnerSummit, session_id: RowId
) -> Response:
    """The green room of one session: every speaker's feed, its preview and the take button."""
    session = programme.get_session(db, summit, session_id)
    base = _room_url(summit, session.id)
    feeds = _feeds_view(request, service.green_room(db, actor, summit, session.id), base)
    return render(
        request,
        "backstage/greenroom.html",
        {"summit": summit, "session": session, "feeds": feeds, "base": base},
    )


@backstage_router.get("/s/{slug}/sessions/{session_id}/control/greenroom.json")
def green_room_json(
    request: Request, db: DbDep, actor: CurrentActor, summit: RunnerSummit, session_id: RowId
) -> Response:
    """The feeds' status, polled by the green room page (keys left out: the page has them)."""
    session = programme.get_session(db, summit, session_id)
    base = _room_url(summit, session.id)
    feeds = _feeds_view(request, service.green_room(db, actor, summit, session.id), base)
    for entry in feeds:
        entry.pop("key", None)
        entry.pop("urls", None)
    return JSONResponse(
        {"feeds": feeds, "manager_error": _manager(request).last_error}, headers=NO_STORE
    )


@backstage_router.get("/s/{slug}/sessions/{session_id}/control/greenroom/{speaker_id}/preview.jpg")
def green_room_preview(
    request: Request,
    db: DbDep,
    actor: CurrentActor,
    summit: RunnerSummit,
    session_id: RowId,
    speaker_id: RowId,
) -> Response:
    """The latest preview frame of a speaker's feed ("no signal" before the first one)."""
    feeds = service.green_room(db, actor, summit, programme.get_session(db, summit, session_id).id)
    feed = next((v.feed for v in feeds if v.speaker_id == speaker_id), None)
    path = _manager(request).preview(feed.feed_id) if feed is not None else None
    try:
        # Read whole, not streamed: the listener renames a new frame over this one about
        # twice a second, and a streamed file could change size under its Content-Length.
        frame = path.read_bytes() if path is not None else None
    except OSError:  # the feed closed meanwhile
        frame = None
    if frame is None:
        return Response(NO_SIGNAL_SVG, media_type="image/svg+xml", headers=NO_STORE)
    return Response(frame, media_type="image/jpeg", headers=NO_STORE)


def _act(request: Request, db: DbDep, summit: Summit, session_id: int) -> Response:
    """Commit now so both workers' next look sees it, wake them, go back to the room."""
    db.commit()
    _manager(request).kick()
    request.app.state.broadcasts.kick()
    return RedirectResponse(_room_url(summit, session_id), status_code=303)


@backstage_router.post("/s/{slug}/sessions/{session_id}/control/greenroom/{speaker_id}/open")
def green_room_open(
    request: Request,
    db: DbDep,
    actor: CurrentActor,
    summit: RunnerSummit,
    session_id: RowId,
    speaker_id: RowId,
) -> Response:
    """Give the speaker their own ingest key and open their listeners."""
    settings = request.app.state.settings
    service.open_feed(
        db, actor, summit, session_id, speaker_id, max_feeds=settings.greenroom_max_feeds
    )
    return _act(request, db, summit, session_id)


@backstage_router.post("/s/{slug}/sessions/{session_id}/control/greenroom/{speaker_id}/close")
def green_room_close(
    request: Request,
    db: DbDep,
    actor: CurrentActor,
    summit: RunnerSummit,
    session_id: RowId,
    speaker_id: RowId,
) -> Response:
    """Close the speaker's feed (their key stops working)."""
    service.close_feed(db, actor, summit, session_id, speaker_id)
    return _act(request, db, summit, session_id)


@backstage_router.post("/s/{slug}/sessions/{session_id}/control/greenroom/{speaker_id}/take")
def green_room_take(
    request: Request,
    db: DbDep,
    actor: CurrentActor,
    summit: RunnerSummit,
    session_id: RowId,
    speaker_id: RowId,
) -> Response:
    """Put the speaker's feed on air."""
    service.take_feed(db, actor, summit, session_id, speaker_id)
    return _act(request, db, summit, session_id)


@backstage_router.post("/s/{slug}/sessions/{session_id}/control/greenroom/{speaker_id}/release")
def green_room_release(
    request: Request,
    db: DbDep,
    actor: CurrentActor,
    summit: RunnerSummit,
    session_id: RowId,
    speaker_id: RowId,
) -> Response:
    """Take the speaker off air; the live input is the studio again."""
    service.release_feed(db, actor, summit, session_id, speaker_id)
    return _act(request, db, summit, session_id)
