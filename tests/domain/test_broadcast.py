"""The broadcast state machine: what the producer's buttons and the worker's reports do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from summitcast.domain import broadcast as rules
from summitcast.domain.broadcast import Action, BroadcastState, BroadcastStatus, Cue
from summitcast.domain.playout import PlayoutItem, Slate, SourceKind, StepReason
from summitcast.domain.programme import ItemKind, ItemStatus
from summitcast.errors import ConflictError

pytestmark = pytest.mark.unit

NOW = datetime(2027, 7, 17, 12, 0, tzinfo=UTC)


def _item(item_id: int, **overrides: object) -> PlayoutItem:
    values: dict[str, object] = {
        "item_id": item_id,
        "kind": ItemKind.SPEECH,
        "title": f"Speech {item_id}",
        "duration_s": 60.0,
        "media_path": f"/m/{item_id}.mp4",
    }
    values.update(overrides)
    return PlayoutItem(**values)  # type: ignore[arg-type]


def _on_air(position: int = 0, generation: int = 1) -> BroadcastState:
    return BroadcastState(BroadcastStatus.ON_AIR, position, generation=generation, started_at=NOW)


def test_start_before_planned_start_counts_down() -> None:
    state = rules.start(BroadcastState(), now=NOW, planned_start=NOW + timedelta(minutes=5))
    assert state == BroadcastState(
        BroadcastStatus.COUNTDOWN,
        0,
        generation=1,
        started_at=NOW,
        countdown_to=NOW + timedelta(minutes=5),
    )


@pytest.mark.parametrize("planned", [None, NOW, NOW - timedelta(minutes=1)])
def test_start_at_or_after_planned_start_plays_first_item(planned: datetime | None) -> None:
    state = rules.start(BroadcastState(), now=NOW, planned_start=planned)
    assert state == BroadcastState(BroadcastStatus.ON_AIR, 0, generation=1, started_at=NOW)


def test_start_after_end_starts_again_from_first_item() -> None:
    ended = BroadcastState(BroadcastStatus.ENDED, 3, generation=7)
    assert rules.start(ended, now=NOW, planned_start=None) == BroadcastState(
        BroadcastStatus.ON_AIR, 0, generation=8, started_at=NOW
    )


@pytest.mark.parametrize(
    "status", [BroadcastStatus.COUNTDOWN, BroadcastStatus.ON_AIR, BroadcastStatus.HOLD]
)
def test_start_when_active_refused(status: BroadcastStatus) -> None:
    with pytest.raises(ConflictError, match="already on air"):
        rules.start(BroadcastState(status), now=NOW, planned_start=None)


@pytest.mark.parametrize(
    "press", [rules.hold, rules.cut_to_live, rules.back_to_programme, rules.end]
)
@pytest.mark.parametrize("status", [BroadcastStatus.IDLE, BroadcastStatus.ENDED])
def test_buttons_when_not_on_air_refused(press: object, status: BroadcastStatus) -> None:
    with pytest.raises(ConflictError, match="start it first"):
        press(BroadcastState(status))  # type: ignore[operator]


def test_take_next_when_idle_refused() -> None:
    with pytest.raises(ConflictError):
        rules.take_next(BroadcastState(), 3)


def test_take_next_from_countdown_plays_first_item() -> None:
    countdown = BroadcastState(BroadcastStatus.COUNTDOWN, 0, generation=1, countdown_to=NOW)
    state = rules.take_next(countdown, 3)
    assert (state.status, state.position, state.generation) == (BroadcastStatus.ON_AIR, 0, 2)


def test_take_next_advances_and_stops_at_closing_slate() -> None:
    state = _on_air(position=1)
    state = rules.take_next(state, 3)
    assert (state.position, state.generation) == (2, 2)
    state = rules.take_next(state, 3)
    assert state.position == 3  # the closing slate
    with pytest.raises(ConflictError, match="no next item"):
        rules.take_next(state, 3)


def test_take_next_from_hold_or_live_goes_back_on_air() -> None:
    held = BroadcastState(BroadcastStatus.HOLD, 1, generation=4)
    live = BroadcastState(BroadcastStatus.ON_AIR, 1, live=True, generation=4)
    for state in (held, live):
        after = rules.take_next(state, 3)
        assert (after.status, after.position, after.live) == (BroadcastStatus.ON_AIR, 2, False)


def test_hold_keeps_position_and_back_to_programme_returns() -> None:
    held = rules.hold(_on_air(position=2))
    assert (held.status, held.position, held.generation) == (BroadcastStatus.HOLD, 2, 2)
    back = rules.back_to_programme(held)
    assert (back.status, back.position, back.generation) == (BroadcastStatus.ON_AIR, 2, 3)


def test_cut_to_live_from_hold_and_back() -> None:
    live = rules.cut_to_live(rules.hold(_on_air(position=1)))
    assert (live.status, live.live, live.position) == (BroadcastStatus.ON_AIR, True, 1)
    back = rules.back_to_programme(live)
    assert (back.live, back.position) == (False, 1)


def test_end_leaves_live_and_is_not_active() -> None:
    ended = rules.end(rules.cut_to_live(_on_air()))
    assert (ended.status, ended.live, ended.active) == (BroadcastStatus.ENDED, False, False)


def test_every_change_bumps_generation() -> None:
    state = rules.start(BroadcastState(), now=NOW, planned_start=None)
    generations = [state.generation]
    for press in (rules.hold, rules.cut_to_live, rules.back_to_programme):
        state = press(state)
        generations.append(state.generation)
    state = rules.take_next(state, 3)
    generations.append(state.generation)
    state = rules.end(state)
    generations.append(state.generation)
    assert generations == [1, 2, 3, 4, 5, 6]


def test_item_finished_advances_item() -> None:
    state = rules.item_finished(_on_air(position=0, generation=5), 5, 3)
    assert (state.position, state.generation) == (1, 6)


def test_item_finished_countdown_gives_way_to_first_item() -> None:
    countdown = BroadcastState(BroadcastStatus.COUNTDOWN, 0, generation=2, countdown_to=NOW)
    state = rules.item_finished(countdown, 2, 3)
    assert state == BroadcastState(BroadcastStatus.ON_AIR, 0, generation=3)


def test_item_finished_stale_generation_changes_nothing() -> None:
    # The producer took the next item while the old one ended by itself.
    state = _on_air(position=2, generation=9)
    assert rules.item_finished(state, 8, 3) is state


@pytest.mark.parametrize(
    "state",
    [
        BroadcastState(BroadcastStatus.HOLD, 1, generation=3),
        BroadcastState(BroadcastStatus.ON_AIR, 1, live=True, generation=3),
        BroadcastState(BroadcastStatus.ENDED, 1, generation=3),
        BroadcastState(BroadcastStatus.ON_AIR, 3, generation=3),  # closing slate
    ],
)
def test_item_finished_leaves_hold_live_end_and_closing_alone(state: BroadcastState) -> None:
    assert rules.item_finished(state, 3, 3) is state


def test_playable_leaves_out_skipped_items() -> None:
    items = [_item(1), _item(2, status=ItemStatus.SKIPPED), _item(3)]
    assert [i.item_id for i in rules.playable(items)] == [1, 3]


def test_cue_for_idle_and_ended_is_none() -> None:
    for status in (BroadcastStatus.IDLE, BroadcastStatus.ENDED):
        assert rules.cue_for(BroadcastState(status), [_item(1)], session_title="S", now=NOW) is None


def test_cue_for_countdown_slate_lasts_until_start() -> None:
    state = BroadcastState(
        BroadcastStatus.COUNTDOWN, generation=1, countdown_to=NOW + timedelta(seconds=90)
    )
    cue = rules.cue_for(state, [_item(1)], session_title="Opening", now=NOW)
    slate = Slate("Opening", ("Starting soon",), countdown_to=NOW + timedelta(seconds=90))
    assert cue == Cue(1, SourceKind.SLATE, StepReason.COUNTDOWN, duration_s=90.0, slate=slate)


def test_cue_for_countdown_runs_to_start_however_far_and_never_zero() -> None:
    far = BroadcastState(
        BroadcastStatus.COUNTDOWN, generation=1, countdown_to=NOW + timedelta(hours=3)
    )
    past = BroadcastState(
        BroadcastStatus.COUNTDOWN, generation=1, countdown_to=NOW - timedelta(seconds=5)
    )
    far_cue = rules.cue_for(far, [], session_title="S", now=NOW)
    past_cue = rules.cue_for(past, [], session_title="S", now=NOW)
    assert far_cue is not None
    assert past_cue is not None
    assert (far_cue.duration_s, past_cue.duration_s) == (3 * 3600.0, 0.5)


def test_cue_for_hold_is_endless_hold_slate() -> None:
    cue = rules.cue_for(BroadcastState(BroadcastStatus.HOLD, generation=4), [_item(1)],
                        session_title="Opening", now=NOW)  # fmt: skip
    assert cue == Cue(
        4, SourceKind.SLATE, StepReason.HOLD, slate=Slate(rules.HOLD_HEADING, ("Opening",))
    )


def test_cue_for_live_is_live_input() -> None:
    state = BroadcastState(BroadcastStatus.ON_AIR, 0, live=True, generation=2)
    assert rules.cue_for(state, [_item(1)], session_title="S", now=NOW) == Cue(
        2, SourceKind.LIVE, StepReason.ITEM
    )


def test_cue_for_file_item_carries_languages_and_subtitles() -> None:
    item = _item(
        7,
        audio_paths=(("en", "/m/7.en.m4a"), ("fr", "/m/7.fr.m4a")),
        subtitle_paths=(("en", "/m/7.en.vtt"),),
    )
    cue = rules.cue_for(_on_air(), [item], session_title="S", now=NOW)
    assert cue == Cue(
        1,
        SourceKind.FILE,
        StepReason.ITEM,
        item_id=7,
        position=0,
        duration_s=60.0,
        path="/m/7.mp4",
        audio_paths=(("en", "/m/7.en.m4a"), ("fr", "/m/7.fr.m4a")),
        subtitle_paths=(("en", "/m/7.en.vtt"),),
    )


def test_cue_for_single_subtitle_file_goes_to_first_language() -> None:
    item = _item(7, subtitle_path="/m/7.vtt")
    cue = rules.cue_for(_on_air(), [item], session_title="S", now=NOW)
    assert cue is not None
    assert cue.subtitle_paths == (("", "/m/7.vtt"),)


def test_cue_for_problem_file_is_speaker_slate_without_languages() -> None:
    item = _item(
        7,
        media_ok=False,
        speaker_name="Ana",
        audio_paths=(("fr", "/m/7.fr.m4a"),),
        subtitle_paths=(("en", "/m/7.en.vtt"),),
    )
    cue = rules.cue_for(_on_air(), [item], session_title="S", now=NOW)
    assert cue is not None
    assert (cue.source, cue.reason, cue.audio_paths, cue.subtitle_paths) == (
        SourceKind.SLATE,
        StepReason.FALLBACK_PROBLEM,
        (),
        (),
    )
    assert cue.slate == Slate("Ana", ("Speech 7",))


def test_cue_for_live_item_of_run_of_show_plays_ingest() -> None:
    item = _item(3, kind=ItemKind.LIVE, media_path=None)
    cue = rules.cue_for(_on_air(), [item], session_title="S", now=NOW)
    assert cue == Cue(1, SourceKind.LIVE, StepReason.ITEM, 3, 0)


def test_cue_for_position_skips_skipped_items_and_ends_on_closing_slate() -> None:
    items = [_item(1), _item(2, status=ItemStatus.SKIPPED), _item(3)]
    second = rules.cue_for(_on_air(position=1), items, session_title="S", now=NOW)
    closing = rules.cue_for(_on_air(position=2), items, session_title="S", now=NOW)
    assert second is not None
    assert second.item_id == 3
    assert closing == Cue(
        1, SourceKind.SLATE, StepReason.HOLD, slate=Slate("S", (rules.CLOSING_LINE,))
    )


# Every state the control room can meet: each status, live or not, an item or the
# closing slate cued, with a run of show of three items or none.
EVERY_STATE = [
    BroadcastState(status, position, live=live, generation=5, countdown_to=NOW)
    for status in BroadcastStatus
    for live in (False, True)
    for position in (0, 1, 3)
    if not live or status is BroadcastStatus.ON_AIR  # only the on-air status is ever live
]


def _press(state: BroadcastState, action: Action, run_length: int) -> BroadcastState:
    """The transition behind one control room button."""
    match action:
        case Action.START:
            return rules.start(state, now=NOW, planned_start=NOW + timedelta(minutes=5))
        case Action.START_NOW:
            return rules.start(state, now=NOW, planned_start=None)
        case Action.NEXT:
            return rules.take_next(state, run_length)
        case Action.HOLD:
            return rules.hold(state)
        case Action.LIVE:
            return rules.cut_to_live(state)
        case Action.BACK:
            return rules.back_to_programme(state)
        case Action.END:
            return rules.end(state)


@pytest.mark.parametrize("run_length", [0, 3])
@pytest.mark.parametrize("state", EVERY_STATE, ids=repr)
def test_allowed_actions_succeed_and_refused_ones_raise_conflict(
    state: BroadcastState, run_length: int
) -> None:
    allowed = rules.allowed_actions(state, run_length)
    for action in Action:
        if action in allowed:
            after = _press(state, action, run_length)
            assert after.generation == state.generation + 1, action
        else:
            reason = rules.refusal(state, action, run_length)
            assert reason
            with pytest.raises(ConflictError) as refused:
                _press(state, action, run_length)
            assert refused.value.message == reason


IDLE_BUTTONS = {Action.START, Action.START_NOW}
ON_AIR_BUTTONS = {Action.NEXT, Action.HOLD, Action.LIVE, Action.END}


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (BroadcastState(), IDLE_BUTTONS),
        (BroadcastState(BroadcastStatus.ENDED, 2), IDLE_BUTTONS),
        (BroadcastState(BroadcastStatus.COUNTDOWN), ON_AIR_BUTTONS),
        (_on_air(position=1), ON_AIR_BUTTONS),
        (_on_air(position=3), {Action.HOLD, Action.LIVE, Action.END}),  # the closing slate
        (BroadcastState(BroadcastStatus.HOLD, 1), ON_AIR_BUTTONS - {Action.HOLD} | {Action.BACK}),
        (BroadcastState(BroadcastStatus.ON_AIR, 1, live=True), ON_AIR_BUTTONS | {Action.BACK}),
        (BroadcastState(BroadcastStatus.ON_AIR, 3, live=True), ON_AIR_BUTTONS | {Action.BACK}),
    ],
)
def test_allowed_actions_per_state(state: BroadcastState, expected: set[Action]) -> None:
    assert rules.allowed_actions(state, 3) == expected


def test_allowed_actions_without_items_starts_on_the_closing_slate() -> None:
    state = rules.start(BroadcastState(), now=NOW, planned_start=None)
    assert rules.allowed_actions(state, 0) == {Action.HOLD, Action.LIVE, Action.END}


@pytest.mark.parametrize(
    ("state", "action", "message"),
    [
        (_on_air(), Action.START, "already on air: end it before starting it again"),
        (BroadcastState(), Action.HOLD, "not on air: start it first"),
        (BroadcastState(BroadcastStatus.HOLD), Action.HOLD, "already holding"),
        (_on_air(), Action.BACK, "programme is already on air"),
        (BroadcastState(BroadcastStatus.COUNTDOWN), Action.BACK, "take the first item"),
        (_on_air(position=3), Action.NEXT, "closing slate is on air"),
    ],
)
def test_refusal_says_what_to_do(state: BroadcastState, action: Action, message: str) -> None:
    assert message in (rules.refusal(state, action, 3) or "")
