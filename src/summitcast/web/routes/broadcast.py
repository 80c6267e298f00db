"""The broadcast pages: the public watch page and the producer's control room."""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from summitcast.domain.broadcast import Action, BroadcastStatus, following
from summitcast.domain.playout import PlayoutItem
from summitcast.domain.programme import format_duration
from summitcast.services import Summit
from summitcast.services import broadcast_control as control
from summitcast.services.broadcast import BroadcastPlan
from summitcast.web.deps import BroadcastsDep, CurrentActor, DbDep, RunnerSummit, SettingsDep
from summitcast.web.edge import OptionalRowId, RowId, Slug
from summitcast.web.routes.hls import master_url
from summitcast.web.security import verify_csrf
from summitcast.web.templating import render

router = APIRouter(include_in_schema=False)
backstage_router = APIRouter(
    prefix="/backstage", include_in_schema=False, dependencies=[Depends(verify_csrf)]
)


def on_air_view(plan: BroadcastPlan, run: list[PlayoutItem]) -> dict[str, Any]:
    """What is on air and what comes next, for pages and JSON (never the ingest key)."""
    state = plan.state
    current = None
    upcoming = None
    if state.live:
        current = "Live from the studio"
        # "Back to programme" plays the cued item from its start: that is what comes next.
        upcoming = run[state.position].title if state.position < len(run) else None
    elif state.status is BroadcastStatus.COUNTDOWN:
        current = "Countdown"
        upcoming = run[0].title if run else None
    elif state.status is BroadcastStatus.HOLD:
        current = "We will be right back"
        upcoming = run[state.position].title if state.position < len(run) else None
    elif state.status is BroadcastStatus.ON_AIR:
        if state.position < len(run):
            current = run[state.position].title
            after = following(state, len(run))  # in a loop, the first item after the last
            upcoming = run[after].title if after < len(run) else None
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
    request: Request, slug: Slug, db: DbDep, settings: SettingsDep, session: OptionalRowId = None
) -> Response:
    """The public player for the session on air (or the next one), and its recordings after."""
    shown = control.on_air_in(db, slug, session, settings=settings)
    summit, chosen = shown.summit, shown.session
    base = master_url(summit.slug, chosen.id).rsplit("/", 1)[0]
    recordings = [
        {
            "language": rec.language,
            "code": rec.code,
            "url": f"{base}/{rec.path}",
            "size_mb": round(rec.size_bytes / 1_000_000, 1),
        }
        for rec in shown.recordings
    ]
    return render(
        request,
        "watch.html",
        {
            "recordings": recordings,
            "summit": summit,
            "session": chosen,
            "view": on_air_view(shown.plan, shown.run),
            "player_src": master_url(summit.slug, chosen.id),
            "on_air_url": f"/s/{summit.slug}/sessions/{chosen.id}/on-air.json",
        },
    )


@router.get("/s/{slug}/sessions/{session_id}/on-air.json")
def on_air_json(slug: Slug, session_id: RowId, db: DbDep) -> Response:
    """What is on air and next in one session, for watch pages and location screens."""
    shown = control.on_air_in(db, slug, session_id)
    view = on_air_view(shown.plan, shown.run)
    view["master"] = master_url(shown.summit.slug, shown.session.id)
    return JSONResponse(view, headers={"Cache-Control": "public, max-age=1"})


def _control_url(summit: Summit, session_id: int) -> str:
    return f"/backstage/s/{summit.slug}/sessions/{session_id}/control"


# The control room's buttons in the order they are shown: label, keyboard shortcut, hint.
BUTTONS: tuple[tuple[Action, str, str | None, str], ...] = (
    (Action.START, "Start", None, "A countdown until the planned start if that is ahead"),
    (Action.START_NOW, "Start now", None, "The first item at once, skipping any countdown"),
    (Action.NEXT, "Take next", "N", "The next item of the run of show on air"),
    (Action.HOLD, "Hold", "H", "The 'we will be right back' slate; the item stays cued"),
    (Action.LIVE, "Cut to live", None, "The studio's live input on air"),
    (Action.BACK, "Back to programme", None, "The cued item again, from its start"),
    (Action.END, "End session", None, "Stop the broadcast; the recording is complete"),
)


def status_words(plan: BroadcastPlan, time_zone: str) -> str:
    """Where the broadcast stands, as the producer says it."""
    state = plan.state
    if state.status is BroadcastStatus.COUNTDOWN and state.countdown_to is not None:
        local = state.countdown_to.astimezone(ZoneInfo(time_zone))
        return f"Countdown to {local:%H:%M:%S}"
    if state.status is BroadcastStatus.ON_AIR and state.live:
        return "Live from the studio"
    return {
        BroadcastStatus.IDLE: "Not started",
        BroadcastStatus.COUNTDOWN: "Countdown",
        BroadcastStatus.ON_AIR: "On air",
        BroadcastStatus.HOLD: "Holding",
        BroadcastStatus.ENDED: "Ended",
    }[state.status]


def reported_by(health: dict[str, Any] | None, this_node: str) -> str:
    """Who sent the stream health and how long ago, in words (the raw node id goes in a title)."""
    if health is None:
        return "No broadcast worker is running this session."
    node = str(health.get("node", ""))
    age = health.get("published_s_ago")
    when = "just now" if age is None else f"{age:g} s ago"
    host = node.rsplit(":", 1)[0]
    if node == this_node:
        who = "this machine's broadcast worker"
    elif host == socket.gethostname():
        who = "another broadcast worker on this machine"
    else:
        who = f"the broadcast worker on {host or 'another machine'}"
    return f"Reported by {who}, {when}"


def remaining_words(seconds: float) -> str:
    """Time left of the item on air ("1:23 left"), or how far a live item ran over."""
    whole = round(seconds)
    if whole < 0:
        return f"over by {format_duration(-whole)}"
    return f"{format_duration(whole)} left"


def _elapsed_s(
    plan: BroadcastPlan, item: PlayoutItem, health: dict[str, Any] | None, now: datetime
) -> float:
    """How long the item on air has played: as the encoder reports it, else since the change."""
    reported = health or {}
    on_air = reported.get("on_air") or {}
    if on_air.get("item_id") == item.item_id:
        # for_s was measured when the view was published: add the view's age.
        return float(on_air.get("for_s") or 0) + float(reported.get("published_s_ago") or 0)
    if plan.changed_at is None:
        return 0.0
    return max(0.0, (now - plan.changed_at).total_seconds())


def control_view(
    plan: BroadcastPlan,
    run: list[PlayoutItem],
    health: dict[str, Any] | None,
    *,
    time_zone: str,
    this_node: str,
    now: datetime,
) -> dict[str, Any]:
    """Everything the control room shows about the broadcast, for the page and its polling."""
    state = plan.state
    view = on_air_view(plan, run)
    item_cued = state.position < len(run)
    playing = state.status is BroadcastStatus.ON_AIR and not state.live and item_cued
    current_index = state.position if playing else None
    remaining_s = None
    if playing:
        item = run[state.position]
        remaining_s = round(item.duration_s - _elapsed_s(plan, item, health, now), 1)
    held = state.status is BroadcastStatus.HOLD or (
        state.status is BroadcastStatus.ON_AIR and state.live
    )
    view.update(
        status_text=status_words(plan, time_zone),
        allowed=sorted(action.value for action in plan.allowed),
        current_index=current_index,
        cued_index=state.position if held and item_cued else None,
        remaining_s=remaining_s,
        remaining_text=None if remaining_s is None else remaining_words(remaining_s),
        health=health,
        reported_by=reported_by(health, this_node),
        node=(health or {}).get("node"),
    )
    return view


def _state_view(state: control.ControlState, time_zone: str) -> dict[str, Any]:
    """The control room's view of one session, as its page and polling show it."""
    view = control_view(
        state.plan,
        state.run,
        state.health,
        time_zone=time_zone,
        this_node=state.node,
        now=state.now,
    )
    view["manager_error"] = state.manager_error
    return view


@backstage_router.get("/s/{slug}/sessions/{session_id}/control", response_class=HTMLResponse)
def control_room(
    request: Request,
    db: DbDep,
    actor: CurrentActor,
    summit: RunnerSummit,
    session_id: RowId,
    broadcasts: BroadcastsDep,
    settings: SettingsDep,
) -> Response:
    """The producer's control room of one session."""
    room = control.control_room(db, broadcasts, actor, summit, session_id)
    session, run = room.state.session, room.state.run
    view = _state_view(room.state, summit.time_zone)
    return render(
        request,
        "backstage/control.html",
        {
            "summit": summit,
            "session": session,
            "view": view,
            "health": view["health"],
            "buttons": BUTTONS,
            "run": run,
            "durations": [format_duration(round(item.duration_s)) for item in run],
            "ingest": room.ingest,
            "ingest_key": room.ingest_key,
            "workers": settings.broadcast_workers,
            "player_src": master_url(summit.slug, session.id),
            "base": _control_url(summit, session.id),
        },
    )


@backstage_router.get("/s/{slug}/sessions/{session_id}/control/health.json")
def control_health(
    db: DbDep, summit: RunnerSummit, session_id: RowId, broadcasts: BroadcastsDep
) -> Response:
    """Stream health, what is on air and which buttons apply, polled by the control room."""
    state = control.control_state(db, broadcasts, summit, session_id)
    return JSONResponse(_state_view(state, summit.time_zone), headers={"Cache-Control": "no-store"})


# The control room's POST buttons: the last part of the URL (control.CHANGES has what
# each does) and the handler's docstring. One handler each, made by _button below.
CONTROL_POSTS: tuple[tuple[str, str], ...] = (
    (Action.START, "Start the session (countdown first if its planned start is ahead)."),
    (Action.START_NOW, "Start the session with its first item, skipping any countdown."),
    (Action.NEXT, "Take the next item."),
    (Action.HOLD, "Hold on the slate."),
    (Action.LIVE, "Cut to the live input."),
    (Action.BACK, "Back to the run of show."),
    (Action.END, "End the session."),
    (control.ROTATE_KEY, "Give the session a new ingest key."),
)


def _button(button: str, doc: str) -> Callable[..., Response]:
    """The handler of one control-room button.

    The page's script asks for JSON and gets the new view (no reload: the preview
    keeps playing); a browser without script is sent back to the control room.
    """

    def press(
        request: Request,
        db: DbDep,
        actor: CurrentActor,
        summit: RunnerSummit,
        session_id: RowId,
        broadcasts: BroadcastsDep,
    ) -> Response:
        wants_view = "application/json" in request.headers.get("accept", "")
        state = control.press(
            db, broadcasts, actor, summit, session_id, button, read_back=wants_view
        )
        if state is not None:
            view = _state_view(state, summit.time_zone)
            return JSONResponse(view, headers={"Cache-Control": "no-store"})
        return RedirectResponse(_control_url(summit, session_id), status_code=303)

    press.__name__ = f"control_{button.replace('-', '_')}"
    press.__doc__ = doc
    return press


for _path, _doc in CONTROL_POSTS:
    backstage_router.post(f"/s/{{slug}}/sessions/{{session_id}}/control/{_path}")(
        _button(_path, _doc)
    )
