"""Playout planning: countdown, items, fallbacks, hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from summitcast.domain.playout import (
    MAX_COUNTDOWN_S,
    PlayoutItem,
    PlayoutStep,
    Slate,
    SourceKind,
    StepReason,
    plan_duration,
    plan_playout,
)
from summitcast.domain.programme import ItemKind, ItemStatus
from summitcast.errors import ValidationError

pytestmark = pytest.mark.unit

START = datetime(2025, 7, 17, 12, 0, tzinfo=UTC)


def speech(item_id: int, **kwargs: object) -> PlayoutItem:
    """A ready pre-recorded speech; keyword arguments override fields."""
    fields: dict[str, object] = {
        "item_id": item_id,
        "kind": ItemKind.SPEECH,
        "title": f"Speech {item_id}",
        "duration_s": 60.0,
        "status": ItemStatus.READY,
        "media_path": f"/media/{item_id}.mp4",
        "speaker_name": "Amina Diallo",
        "speaker_role": "Mayor",
        "speaker_country": "Senegal",
    }
    fields.update(kwargs)
    return PlayoutItem(**fields)  # type: ignore[arg-type]


def test_plan_playout_countdown_items_and_hold() -> None:
    steps = plan_playout(
        [speech(1, subtitle_path="/media/1.en.vtt"), speech(2, duration_s=30.5)],
        now=START - timedelta(seconds=90),
        start=START,
        session_title="Opening",
        hold_s=20,
    )
    assert steps == [
        PlayoutStep(
            index=0,
            item_id=None,
            source=SourceKind.SLATE,
            reason=StepReason.COUNTDOWN,
            offset_s=0.0,
            duration_s=90.0,
            slate=Slate("Opening", ("Starting soon",), countdown_to=START),
        ),
        PlayoutStep(
            index=1,
            item_id=1,
            source=SourceKind.FILE,
            reason=StepReason.ITEM,
            offset_s=90.0,
            duration_s=60.0,
            path="/media/1.mp4",
            subtitle_path="/media/1.en.vtt",
        ),
        PlayoutStep(
            index=2,
            item_id=2,
            source=SourceKind.FILE,
            reason=StepReason.ITEM,
            offset_s=150.0,
            duration_s=30.5,
            path="/media/2.mp4",
        ),
        PlayoutStep(
            index=3,
            item_id=None,
            source=SourceKind.SLATE,
            reason=StepReason.HOLD,
            offset_s=180.5,
            duration_s=20.0,
            slate=Slate("Opening", ("Thank you for watching",)),
        ),
    ]
    assert plan_duration(steps) == 200.5


def test_plan_playout_after_start_has_no_countdown() -> None:
    steps = plan_playout([speech(1)], now=START, start=START, session_title="S")
    assert [s.reason for s in steps] == [StepReason.ITEM, StepReason.HOLD]


def test_plan_playout_long_countdown_capped() -> None:
    steps = plan_playout([], now=START - timedelta(hours=2), start=START, session_title="S")
    assert steps[0].duration_s == MAX_COUNTDOWN_S


def test_plan_playout_missing_file_becomes_speaker_slate() -> None:
    steps = plan_playout(
        [speech(1, media_path=None, status=ItemStatus.MISSING)],
        now=START,
        start=START,
        session_title="S",
    )
    assert steps[0] == PlayoutStep(
        index=0,
        item_id=1,
        source=SourceKind.SLATE,
        reason=StepReason.FALLBACK_MISSING,
        offset_s=0.0,
        duration_s=60.0,
        slate=Slate("Amina Diallo", ("Speech 1", "Mayor, Senegal")),
    )


@pytest.mark.parametrize(
    "overrides",
    [{"media_ok": False}, {"status": ItemStatus.PROBLEM}, {"status": ItemStatus.PROCESSING}],
)
def test_plan_playout_bad_file_becomes_problem_slate(overrides: dict[str, object]) -> None:
    steps = plan_playout([speech(1, **overrides)], now=START, start=START, session_title="S")
    assert (steps[0].source, steps[0].reason, steps[0].path) == (
        SourceKind.SLATE,
        StepReason.FALLBACK_PROBLEM,
        None,
    )


def test_plan_playout_live_item_uses_url_or_falls_back() -> None:
    live = PlayoutItem(7, ItemKind.LIVE, "Q&A", 300, live_url="srt://127.0.0.1:9000")
    no_url = PlayoutItem(8, ItemKind.LIVE, "Panel", 300, speaker_name="李娜")
    steps = plan_playout([live, no_url], now=START, start=START, session_title="S")
    assert (steps[0].source, steps[0].url) == (SourceKind.LIVE, "srt://127.0.0.1:9000")
    assert (steps[1].source, steps[1].reason, steps[1].slate) == (
        SourceKind.SLATE,
        StepReason.FALLBACK_NO_LIVE_INPUT,
        Slate("李娜", ("Panel", "We will be back in a moment")),
    )


def test_plan_playout_break_and_slate_items() -> None:
    items = [
        PlayoutItem(1, ItemKind.BREAK, "Coffee break", 600),
        PlayoutItem(2, ItemKind.SLATE, "Next: the regions", 10),
    ]
    steps = plan_playout(items, now=START, start=START, session_title="S")
    assert [(s.reason, s.slate) for s in steps[:2]] == [
        (StepReason.BREAK, Slate("Coffee break")),
        (StepReason.ITEM, Slate("Next: the regions")),
    ]


def test_plan_playout_skipped_items_left_out() -> None:
    steps = plan_playout(
        [speech(1, status=ItemStatus.SKIPPED), speech(2)], now=START, start=START, session_title="S"
    )
    assert [s.item_id for s in steps] == [2, None]


def test_plan_playout_zero_duration_refused() -> None:
    with pytest.raises(ValidationError):
        plan_playout([speech(1, duration_s=0)], now=START, start=START, session_title="S")


def test_plan_playout_naive_time_refused() -> None:
    with pytest.raises(ValidationError):
        plan_playout([], now=datetime(2025, 7, 17), start=START, session_title="S")
