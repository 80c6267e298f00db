"""The producer's green room: live speakers' own feeds, previewed before they are taken on air."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from summitcast.services import greenroom as service
from summitcast.web.deps import (
    BrowserBridgeDep,
    CurrentActor,
    DbDep,
    GreenRoomDep,
    RunnerSummit,
    SettingsDep,
)
from summitcast.web.edge import RowId
from summitcast.web.security import verify_csrf
from summitcast.web.templating import render

backstage_router = APIRouter(
    prefix="/backstage", include_in_schema=False, dependencies=[Depends(verify_csrf)]
)

# Shown instead of a frame while a feed has none: the page's <img> keeps its size.
NO_SIGNAL_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="320" height="180" viewBox="0 0 320 180">'
    '<rect width="320" height="180" fill="#222"/><text x="160" y="95" fill="#ccc" '
    'font-family="sans-serif" font-size="20" text-anchor="middle">No signal</text></svg>'
)
NO_STORE = {"Cache-Control": "no-store"}


def _room_url(slug: str, session_id: int) -> str:
    return f"/backstage/s/{slug}/sessions/{session_id}/control/greenroom"


def _feeds_view(feeds: list[service.RoomFeed], base: str) -> list[dict[str, Any]]:
    """One entry per speaker: their feed's URLs, key, status and preview (for producers only)."""
    views = []
    for view in feeds:
        entry: dict[str, Any] = {
            "speaker_id": view.speaker_id,
            "speaker": view.speaker_name,
            "open": view.feed is not None,
            "taken": bool(view.feed and view.feed.taken),
            "preview_url": f"{base}/{view.speaker_id}/preview.jpg",
            "status": view.status,
        }
        if view.feed is not None:
            entry["urls"] = view.urls
            entry["key"] = view.feed.ingest_key
        views.append(entry)
    return views


@backstage_router.get(
    "/s/{slug}/sessions/{session_id}/control/greenroom", response_class=HTMLResponse
)
def green_room_page(
    request: Request,
    db: DbDep,
    actor: CurrentActor,
    summit: RunnerSummit,
    session_id: RowId,
    room: GreenRoomDep,
    browsers: BrowserBridgeDep,
) -> Response:
    """The green room of one session: every speaker's feed, its preview and the take button."""
    view = service.room_view(db, actor, summit, session_id, room, browsers)
    base = _room_url(summit.slug, view.session.id)
    return render(
        request,
        "backstage/greenroom.html",
        {
            "summit": summit,
            "session": view.session,
            "feeds": _feeds_view(view.feeds, base),
            "base": base,
        },
    )


@backstage_router.get("/s/{slug}/sessions/{session_id}/control/greenroom.json")
def green_room_json(
    db: DbDep,
    actor: CurrentActor,
    summit: RunnerSummit,
    session_id: RowId,
    room: GreenRoomDep,
    browsers: BrowserBridgeDep,
) -> Response:
    """The feeds' status, polled by the green room page (keys left out: the page has them)."""
    view = service.room_view(db, actor, summit, session_id, room, browsers)
    feeds = _feeds_view(view.feeds, _room_url(summit.slug, view.session.id))
    for entry in feeds:
        entry.pop("key", None)
        entry.pop("urls", None)
    return JSONResponse({"feeds": feeds, "manager_error": view.manager_error}, headers=NO_STORE)


@backstage_router.get("/s/{slug}/sessions/{session_id}/control/greenroom/{speaker_id}/preview.jpg")
def green_room_preview(
    db: DbDep,
    actor: CurrentActor,
    summit: RunnerSummit,
    session_id: RowId,
    speaker_id: RowId,
    room: GreenRoomDep,
) -> Response:
    """The latest preview frame of a speaker's feed ("no signal" before the first one)."""
    frame = service.preview_frame(db, actor, summit, session_id, speaker_id, room)
    if frame is None:
        return Response(NO_SIGNAL_SVG, media_type="image/svg+xml", headers=NO_STORE)
    return Response(frame, media_type="image/jpeg", headers=NO_STORE)


# A feed's POST buttons: the last part of the URL (service.press does what each says)
# and the handler's docstring. One handler each, made by _button below.
FEED_POSTS: tuple[tuple[str, str], ...] = (
    ("open", "Give the speaker their own ingest key and open their listeners."),
    ("close", "Close the speaker's feed (their key stops working)."),
    ("take", "Put the speaker's feed on air."),
    ("release", "Take the speaker off air; the live input is the studio again."),
)


def _button(button: str, doc: str) -> Callable[..., Response]:
    """The handler of one of a feed's buttons: press it, then back to the room."""

    def press(
        db: DbDep,
        actor: CurrentActor,
        summit: RunnerSummit,
        session_id: RowId,
        speaker_id: RowId,
        room: GreenRoomDep,
        settings: SettingsDep,
    ) -> Response:
        max_feeds = settings.greenroom_max_feeds
        service.press(db, room, actor, summit, session_id, speaker_id, button, max_feeds=max_feeds)
        return RedirectResponse(_room_url(summit.slug, session_id), status_code=303)

    press.__name__ = f"green_room_{button}"
    press.__doc__ = doc
    return press


for _path, _doc in FEED_POSTS:
    backstage_router.post(
        f"/s/{{slug}}/sessions/{{session_id}}/control/greenroom/{{speaker_id}}/{_path}"
    )(_button(_path, _doc))
