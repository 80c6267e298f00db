"""The garbage collector settings `summitcast serve` applies to each worker."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from summitcast.app import _tune_gc
from summitcast.config import Settings

pytestmark = pytest.mark.unit


@pytest.fixture
def restored_gc() -> Iterator[None]:
    """Put the collector back as it was (thresholds, nothing frozen) after the test."""
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_serve_freezes_start_up_and_spaces_young_collections(
    settings: Settings, restored_gc: None
) -> None:
    _, middle, oldest = gc.get_threshold()

    _tune_gc(settings.model_copy(update={"gc_freeze": True, "gc_young_threshold": 40_000}))

    assert gc.get_threshold() == (40_000, middle, oldest)
    assert gc.get_freeze_count() > 0


def test_without_serve_the_collector_is_left_alone(settings: Settings, restored_gc: None) -> None:
    before = gc.get_threshold()

    _tune_gc(settings.model_copy(update={"gc_freeze": False}))

    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_young_threshold_below_100_is_refused() -> None:
    with pytest.raises(ValueError, match="gc_young_threshold"):
        Settings(gc_young_threshold=10)
