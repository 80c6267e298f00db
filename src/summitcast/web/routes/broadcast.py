"""The broadcast pages: the public watch page and the producer's control room."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from summitcast.domain.accounts import Permission
from summitcast.domain.broadcast import BroadcastStatus
from summitcast.domain.playout import PlayoutItem
from summitcast.media.manager import BroadcastManager, language_name, session_folder
from summitcast.media.recording import list_recordings
from summitcast.services import broadcast as service
from summitcast.services import programme
from summitcast.storage.tables import Summit
from summitcast.web.deps import CurrentActor, DbDep, SettingsDep, summit_for
from summitcast.web.routes.hls import master_url
from summitcast.web.security import verify_csrf
from summitcast.web.templating import render

router = APIRouter(include_in_schema=False)
backstage_router = APIRouter(
    prefix="/backstage", include_in_schema=False, dependencies=[Depends(verify_csrf)]
)

RunnerSummit = Annotated[Summit, summit_for(Permission.RUN_BROADCAST)]


def _manager(request: Request) -> BroadcastManager:
    manager: BroadcastManager = request.app.state.broadcasts
    return manager


def on_air_view(plan: service.BroadcastPlan, run: list[PlayoutItem]) -> dict[str, Any]:
    """What is on air and what comes next, for pages and JSON (never the ingest key)."""
    state = plan.state
    current = None
    upcoming = None
    if state.live:
        current = "Live from the studio"
    elif state.status is BroadcastStatus.COUNTDOWN:
        current = "Countdown"
        upcoming = run[0].title if run else None
    elif state.status is BroadcastStatus.HOLD:
        current = "We will be right back"
        upcoming = run[state.position].title if state.position < len(run) else None
    elif state.status is BroadcastStatus.ON_AIR:
        if state.position < len(run):
            current = run[state.position].title
            upcoming = run[state.position + 1].title if state.position + 1 < len(run) else None
        else:
            current = "Closing slate"
    return {
        "status": state.status.value,
        "live": state.live,
        "position": state.position,
        "on_air": current,
        "next": upcoming,
        "generation": state.generation,
    }


@router.get("/s/{slug}/watch", response_class=HTMLResponse)
def watch_page(
    request: Request, slug: str, db: DbDep, settings: SettingsDep, session: int | None = None
) -> Response:
    """The public player for the session on air (or the next one), and its recordings after."""
    summit = programme.get_summit(db, slug)
    chosen = (
        programme.get_session(db, summit, session)
        if session is not None
        else service.current_session(db, summit)
    )
    plan = service.public_plan(db, summit, chosen.id)
    view = on_air_view(plan, service.run_of_show(db, chosen))
    recordings = []
    if plan.state.status is BroadcastStatus.ENDED:
        base = master_url(summit.slug, chosen.id).rsplit("/", 1)[0]
        recordings = [
            {
                "language": language_name(rec.language),
                "code": rec.language,
                "url": f"{base}/{rec.path}",
                "size_mb": round(rec.size_bytes / 1_000_000, 1),
            }
            for rec in list_recordings(session_folder(settings, summit.slug, chosen.id))
        ]
    return render(
        request,
        "watch.html",
        {
            "recordings": recordings,
            "summit": summit,
            "session": chosen,
            "view": view,
            "player_src": master_url(summit.slug, chosen.id),
            "on_air_url": f"/s/{summit.slug}/sessions/{chosen.id}/on-air.json",
        },
    )


@router.get("/s/{slug}/sessions/{session_id}/on-air.json")
def on_air_json(slug: str, session_id: int, db: DbDep) -> Response:
    """What is on air and next in one session, for watch pages and location screens."""
    summit = programme.get_summit(db, slug)
    session = programme.get_session(db, summit, session_id)
    plan = service.public_plan(db, summit, session.id)
    view = on_air_view(plan, service.run_of_show(db, session))
    view["master"] = master_url(summit.slug, session.id)
    return JSONResponse(view, headers={"Cache-Control": "public, max-age=1"})


def _control_url(summit: Summit, session_id: int) -> str:
    return f"/backstage/s/{summit.slug}/sessions/{session_id}/control"


@backstage_router.get("/s/{slug}/sessions/{session_id}/control", response_class=HTMLResponse)
def control_room(
    request: Request, db: DbDep, actor: CurrentActor, summit: RunnerSummit, session_id: int
) -> Response:
    """The producer's control room of one session."""
    session = programme.get_session(db, summit, session_id)
    plan = service.plan_of(db, summit, session.id)
    run = service.run_of_show(db, session)
    key = service.ingest_key_of(db, actor, summit, session.id)
    manager = _manager(request)
    return render(
        request,
        "backstage/control.html",
        {
            "summit": summit,
            "session": session,
            "view": on_air_view(plan, run),
            "run": run,
            "ingest": manager.ingest_urls(session.id, key),
            "ingest_key": key,
            "health": manager.health(session.id),
            "workers": manager.settings.broadcast_workers,
            "player_src": master_url(summit.slug, session.id),
            "base": _control_url(summit, session.id),
        },
    )


@backstage_router.get("/s/{slug}/sessions/{session_id}/control/health.json")
def control_health(request: Request, db: DbDep, summit: RunnerSummit, session_id: int) -> Response:
    """Stream health and what is on air, polled by the control room."""
    session = programme.get_session(db, summit, session_id)
    plan = service.plan_of(db, summit, session.id)
    body = on_air_view(plan, service.run_of_show(db, session))
    manager = _manager(request)
    body["health"] = manager.health(session.id)
    body["manager_error"] = manager.last_error
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


def _act(request: Request, db: DbDep, summit: Summit, session_id: int) -> Response:
    """Commit the change now so the manager's next look sees it, wake it, go back."""
    db.commit()
    _manager(request).kick()
    return RedirectResponse(_control_url(summit, session_id), status_code=303)


@backstage_router.post("/s/{slug}/sessions/{session_id}/control/start")
def control_start(
    request: Request, db: DbDep, actor: CurrentActor, summit: RunnerSummit, session_id: int
) -> Response:
    """Start the session (countdown first if its planned start is ahead)."""
    service.start_session(db, actor, summit, session_id)
    return _act(request, db, summit, session_id)


@backstage_router.post("/s/{slug}/sessions/{session_id}/control/start-now")
def control_start_now(
    request: Request, db: DbDep, actor: CurrentActor, summit: RunnerSummit, session_id: int
) -> Response:
    """Start the session with its first item, skipping any countdown."""
    service.start_session(db, actor, summit, session_id, countdown=False)
    return _act(request, db, summit, session_id)


@backstage_router.post("/s/{slug}/sessions/{session_id}/control/next")
def control_next(
    request: Request, db: DbDep, actor: CurrentActor, summit: RunnerSummit, session_id: int
) -> Response:
    """Take the next item."""
    service.take_next(db, actor, summit, session_id)
    return _act(request, db, summit, session_id)


@backstage_router.post("/s/{slug}/sessions/{session_id}/control/hold")
def control_hold(
    request: Request, db: DbDep, actor: CurrentActor, summit: RunnerSummit, session_id: int
) -> Response:
    """Hold on the slate."""
    service.hold(db, actor, summit, session_id)
    return _act(request, db, summit, session_id)


@backstage_router.post("/s/{slug}/sessions/{session_id}/control/live")
def control_live(
    request: Request, db: DbDep, actor: CurrentActor, summit: RunnerSummit, session_id: int
) -> Response:
    """Cut to the live input."""
    service.cut_to_live(db, actor, summit, session_id)
    return _act(request, db, summit, session_id)


@backstage_router.post("/s/{slug}/sessions/{session_id}/control/back")
def control_back(
    request: Request, db: DbDep, actor: CurrentActor, summit: RunnerSummit, session_id: int
) -> Response:
    """Back to the run of show."""
    service.back_to_programme(db, actor, summit, session_id)
    return _act(request, db, summit, session_id)


@backstage_router.post("/s/{slug}/sessions/{session_id}/control/end")
def control_end(
    request: Request, db: DbDep, actor: CurrentActor, summit: RunnerSummit, session_id: int
) -> Response:
    """End the session."""
    service.end_session(db, actor, summit, session_id)
    return _act(request, db, summit, session_id)


@backstage_router.post("/s/{slug}/sessions/{session_id}/control/rotate-key")
def control_rotate_key(
    request: Request, db: DbDep, actor: CurrentActor, summit: RunnerSummit, session_id: int
) -> Response:
    """Give the session a new ingest key."""
    service.rotate_ingest_key(db, actor, summit, session_id)
    return _act(request, db, summit, session_id)
