"""A looping broadcast: after the last item the first comes again, never the closing slate."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from summitcast.domain import broadcast as rules
from summitcast.domain.broadcast import BroadcastState, BroadcastStatus
from summitcast.domain.playout import PlayoutItem, SourceKind
from summitcast.domain.programme import ItemKind

pytestmark = pytest.mark.unit

NOW = datetime(2027, 7, 17, 12, 0, tzinfo=UTC)


def _looping(position: int, generation: int = 1) -> BroadcastState:
    return BroadcastState(BroadcastStatus.ON_AIR, position, generation=generation, loop=True)


def _items(count: int) -> list[PlayoutItem]:
    return [
        PlayoutItem(item_id=n, kind=ItemKind.SPEECH, title=f"Speech {n}", duration_s=20.0,
                    media_path=f"/m/{n}.mp4")
        for n in range(1, count + 1)
    ]  # fmt: skip


def test_item_finished_in_a_loop_goes_from_the_last_item_to_the_first() -> None:
    state = rules.item_finished(_looping(position=2, generation=7), 7, 3)

    assert state == _looping(position=0, generation=8)


def test_item_finished_in_a_loop_still_advances_within_the_run() -> None:
    assert rules.item_finished(_looping(position=0, generation=3), 3, 3) == _looping(1, 4)


def test_item_finished_without_loop_ends_on_the_closing_slate() -> None:
    last = BroadcastState(BroadcastStatus.ON_AIR, 2, generation=7)

    assert rules.item_finished(last, 7, 3).position == 3


def test_a_loop_plays_every_item_again_and_never_cues_the_closing_slate() -> None:
    items = _items(3)
    state = _looping(position=0)
    played = []
    for _ in range(7):
        cue = rules.cue_for(state, items, session_title="Demo", now=NOW)
        assert cue is not None
        assert cue.source is SourceKind.FILE
        played.append(cue.item_id)
        state = rules.item_finished(state, cue.generation, len(items))

    assert played == [1, 2, 3, 1, 2, 3, 1]


def test_take_next_in_a_loop_wraps_to_the_first_item() -> None:
    state = rules.take_next(_looping(position=2, generation=4), 3)

    assert (state.status, state.position, state.generation) == (BroadcastStatus.ON_AIR, 0, 5)


def test_a_loop_with_no_items_stays_on_the_closing_slate() -> None:
    state = rules.item_finished(_looping(position=0, generation=2), 2, 0)

    assert state.position == 0
    cue = rules.cue_for(state, [], session_title="Demo", now=NOW)
    assert cue is not None
    assert cue.slate is not None
    assert cue.slate.lines == (rules.CLOSING_LINE,)


def test_set_loop_changes_no_generation_and_survives_end_and_start() -> None:
    on_air = BroadcastState(BroadcastStatus.ON_AIR, 1, generation=5)

    looping = rules.set_loop(on_air, True)
    restarted = rules.start(rules.end(looping), now=NOW, planned_start=None)

    assert (looping.loop, looping.generation, looping.position) == (True, 5, 1)
    assert (restarted.status, restarted.position, restarted.loop) == (
        BroadcastStatus.ON_AIR,
        0,
        True,
    )
