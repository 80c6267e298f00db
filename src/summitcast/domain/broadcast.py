"""The broadcast of one session as a state machine: what the producer's buttons do.

Pure rules, no I/O. The service stores a ``BroadcastState``; the playout worker
asks ``cue_for`` what to put on air and reports finished items back with
``item_finished``. Every change bumps ``generation``, so a report about an item
that the producer has already replaced (a race between "take next" and the
item ending by itself) changes nothing.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from summitcast.domain.playout import (
    PlayoutItem,
    Slate,
    SourceKind,
    StepReason,
    choose_source,
)
from summitcast.domain.programme import ItemKind, ItemStatus
from summitcast.errors import ConflictError

HOLD_HEADING = "We will be right back"
CLOSING_LINE = "Thank you for watching"


class BroadcastStatus(StrEnum):
    """Where a session's broadcast stands."""

    IDLE = "idle"
    COUNTDOWN = "countdown"
    ON_AIR = "on_air"
    HOLD = "hold"
    ENDED = "ended"


ACTIVE_STATUSES = frozenset(
    {BroadcastStatus.COUNTDOWN, BroadcastStatus.ON_AIR, BroadcastStatus.HOLD}
)


@dataclass(frozen=True, slots=True)
class BroadcastState:
    """What is on air in one session; stored by the service, one row per session."""

    status: BroadcastStatus = BroadcastStatus.IDLE
    position: int = 0  # index into the run of show (skipped items left out); len = closing
    live: bool = False  # cut to the live input (status stays ON_AIR)
    generation: int = 0
    started_at: datetime | None = None
    countdown_to: datetime | None = None
    loop: bool = False  # after the last item the first comes again (the demo), no closing

    @property
    def active(self) -> bool:
        """Whether a playout worker should be running for this session."""
        return self.status in ACTIVE_STATUSES


@dataclass(frozen=True, slots=True)
class Cue:
    """What the worker plays now: one source with no end time of its own unless duration_s."""

    generation: int
    source: SourceKind
    reason: StepReason
    item_id: int | None = None
    position: int | None = None  # set when the cue is an item of the run of show
    duration_s: float | None = None  # None: until the producer changes it (slates, live)
    path: str | None = None
    slate: Slate | None = None
    audio_paths: tuple[tuple[str, str], ...] = ()
    subtitle_paths: tuple[tuple[str, str], ...] = ()


def _bump(state: BroadcastState, **changes: object) -> BroadcastState:
    return replace(state, generation=state.generation + 1, **changes)  # type: ignore[arg-type]


class Action(StrEnum):
    """A button of the control room; the value is the last part of its form's URL."""

    START = "start"
    START_NOW = "start-now"
    NEXT = "next"
    HOLD = "hold"
    LIVE = "live"
    BACK = "back"
    END = "end"


NOT_ON_AIR = "This session is not on air: start it first."


def refusal(state: BroadcastState, action: Action, run_length: int) -> str | None:
    """Why action is refused in state (a sentence for the producer), or None if it applies.

    The one place these rules live: each transition below raises ConflictError with
    this sentence, and ``allowed_actions`` is the set of actions it has none for.
    """
    if action in (Action.START, Action.START_NOW):
        if state.active:
            return "This session is already on air: end it before starting it again."
        return None
    if not state.active:
        return NOT_ON_AIR
    playing_programme = state.status is BroadcastStatus.ON_AIR and not state.live
    if action is Action.NEXT and playing_programme and state.position >= run_length:
        return "The closing slate is on air: there is no next item. End the session when ready."
    if action is Action.HOLD and state.status is BroadcastStatus.HOLD:
        return "The session is already holding: go back to the programme or cut to live."
    if action is Action.BACK:
        if state.status is BroadcastStatus.COUNTDOWN:
            return "The countdown is on air: take the first item with Take next."
        if playing_programme:
            return "The programme is already on air: hold or cut to live first."
    # Cutting to live while live stays allowed: it takes the studio again, ending a
    # speaker's green-room feed that was taken on air (services/greenroom.py).
    return None


def allowed_actions(state: BroadcastState, run_length: int) -> frozenset[Action]:
    """The control room buttons that apply in state (the others raise ConflictError)."""
    return frozenset(a for a in Action if refusal(state, a, run_length) is None)


def _check(state: BroadcastState, action: Action, run_length: int = 0) -> None:
    reason = refusal(state, action, run_length)
    if reason is not None:
        raise ConflictError(reason)


def start(
    state: BroadcastState, *, now: datetime, planned_start: datetime | None
) -> BroadcastState:
    """Start the session: a countdown until planned_start if that is ahead, else the first item."""
    _check(state, Action.START if planned_start is not None else Action.START_NOW)
    if planned_start is not None and planned_start > now:
        return _bump(
            state,
            status=BroadcastStatus.COUNTDOWN,
            position=0,
            live=False,
            started_at=now,
            countdown_to=planned_start,
        )
    return _bump(
        state,
        status=BroadcastStatus.ON_AIR,
        position=0,
        live=False,
        started_at=now,
        countdown_to=None,
    )


def take_next(state: BroadcastState, item_count: int) -> BroadcastState:
    """Put the next item on air (from a countdown: the first item)."""
    _check(state, Action.NEXT, item_count)
    position = 0 if state.status is BroadcastStatus.COUNTDOWN else following(state, item_count)
    return _bump(state, status=BroadcastStatus.ON_AIR, position=position, live=False)


def hold(state: BroadcastState) -> BroadcastState:
    """Hold on the "we will be right back" slate; the item stays cued for back_to_programme."""
    _check(state, Action.HOLD)
    return _bump(state, status=BroadcastStatus.HOLD, live=False)


def cut_to_live(state: BroadcastState) -> BroadcastState:
    """Put the live input on air (the hold slate stands in while no studio is connected)."""
    _check(state, Action.LIVE)
    return _bump(state, status=BroadcastStatus.ON_AIR, live=True)


def back_to_programme(state: BroadcastState) -> BroadcastState:
    """Leave hold or live and play the cued item of the run of show from its start."""
    _check(state, Action.BACK)
    return _bump(state, status=BroadcastStatus.ON_AIR, live=False)


def end(state: BroadcastState) -> BroadcastState:
    """End the broadcast; the recording is complete."""
    _check(state, Action.END)
    return _bump(state, status=BroadcastStatus.ENDED, live=False)


def item_finished(state: BroadcastState, generation: int, item_count: int) -> BroadcastState:
    """The cue of generation ran to its end: countdowns give way to item 0, items to the next."""
    if generation != state.generation or not state.active or state.live:
        return state  # the producer changed what is on air meanwhile
    if state.status is BroadcastStatus.COUNTDOWN:
        return _bump(state, status=BroadcastStatus.ON_AIR, position=0, countdown_to=None)
    if state.status is BroadcastStatus.ON_AIR and state.position < item_count:
        return _bump(state, position=following(state, item_count))
    return state


def following(state: BroadcastState, item_count: int) -> int:
    """The position after the current one: the closing slate after the last, or 0 in a loop."""
    position = state.position + 1
    if state.loop and item_count > 0 and position >= item_count:
        return 0
    return min(position, item_count)


def set_loop(state: BroadcastState, loop: bool) -> BroadcastState:
    """Turn looping on or off; what is on air now goes on (no new generation)."""
    return replace(state, loop=loop)


def playable(items: Sequence[PlayoutItem]) -> list[PlayoutItem]:
    """The run of show as the broadcast steps through it (skipped items left out)."""
    return [item for item in items if item.status is not ItemStatus.SKIPPED]


def cue_for(
    state: BroadcastState, items: Sequence[PlayoutItem], *, session_title: str, now: datetime
) -> Cue | None:
    """What to put on air in this state; None when nothing should play (idle or ended)."""
    if not state.active:
        return None
    run = playable(items)
    if state.status is BroadcastStatus.COUNTDOWN:
        remaining = (state.countdown_to - now).total_seconds() if state.countdown_to else 0.0
        slate = Slate(session_title, ("Starting soon",), countdown_to=state.countdown_to)
        return Cue(
            state.generation,
            SourceKind.SLATE,
            StepReason.COUNTDOWN,
            # Exactly until the planned start (no cap: when this cue ends, item 1 starts).
            duration_s=max(0.5, remaining),
            slate=slate,
        )
    if state.status is BroadcastStatus.HOLD:
        return Cue(
            state.generation,
            SourceKind.SLATE,
            StepReason.HOLD,
            slate=Slate(HOLD_HEADING, (session_title,)),
        )
    if state.live:
        return Cue(state.generation, SourceKind.LIVE, StepReason.ITEM)
    if state.position >= len(run):
        closing = Slate(session_title, (CLOSING_LINE,))
        return Cue(state.generation, SourceKind.SLATE, StepReason.HOLD, slate=closing)
    item = run[state.position]
    if item.kind is ItemKind.LIVE:
        # A live item of the run of show plays the session's ingest until the producer moves on.
        return Cue(state.generation, SourceKind.LIVE, StepReason.ITEM, item.item_id, state.position)
    choice = choose_source(item)
    subtitles = item.subtitle_paths
    if not subtitles and item.subtitle_path:
        subtitles = (("", item.subtitle_path),)  # "": the first subtitle language
    return Cue(
        state.generation,
        choice.source,
        choice.reason,
        item_id=item.item_id,
        position=state.position,
        duration_s=item.duration_s,
        path=choice.path,
        slate=choice.slate,
        audio_paths=item.audio_paths if choice.source is SourceKind.FILE else (),
        subtitle_paths=subtitles if choice.source is SourceKind.FILE else (),
    )


def ingest_key_matches(expected: str, offered: str) -> bool:
    """Compare keys in constant time, so timing does not reveal how much of a guess was right."""
    return hmac.compare_digest(expected.encode(), offered.encode())
