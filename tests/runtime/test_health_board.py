"""The health board: one node publishes a session's health, another shows it while fresh."""

from __future__ import annotations

import asyncio

import pytest

from summitcast.presence import MemoryPubSub
from summitcast.runtime.health_board import HealthBoard

pytestmark = pytest.mark.unit


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_health_published_by_one_node_is_shown_by_another_until_stale() -> None:
    clock = Clock()

    async def scenario() -> tuple[object, object, object, object]:
        pubsub = MemoryPubSub()
        encoder_node = HealthBoard(pubsub, node="encoders:1", clock=clock)
        web_node = HealthBoard(pubsub, node="web:2", clock=clock)
        await encoder_node.start()
        await web_node.start()
        await encoder_node.publish({7: {"speed": 1.01, "dropped_frames": 0}})
        await asyncio.sleep(0.05)
        fresh = web_node.get(7)
        other = web_node.get(8)
        clock.now += 4.0
        aging = web_node.get(7)
        clock.now += 2.0
        stale = web_node.get(7)
        await web_node.stop()
        await encoder_node.stop()
        return fresh, other, aging, stale

    fresh, other, aging, stale = asyncio.run(scenario())
    assert fresh == {
        "speed": 1.01,
        "dropped_frames": 0,
        "node": "encoders:1",
        "published_s_ago": 0.0,
    }
    assert other is None
    assert aging is not None
    assert aging["published_s_ago"] == 4.0  # type: ignore[index]
    assert stale is None  # its node stopped publishing: shown as nothing, not as old figures


def test_health_board_ignores_malformed_messages() -> None:
    board = HealthBoard(MemoryPubSub(), node="web:2")
    board.receive({"node": "x", "sessions": "not a dict"})
    board.receive({"node": "x", "sessions": {"abc": {"speed": 1}, "3": "not a view"}})
    assert (board.get(3), board._views) == (None, {})


class FailingPubSub(MemoryPubSub):
    """A pub/sub whose back-end is down."""

    async def publish(self, channel: str, message: dict[str, object]) -> None:
        raise ConnectionError("redis is down")


def test_health_publish_survives_a_backend_outage() -> None:
    async def scenario() -> None:
        board = HealthBoard(FailingPubSub(), node="encoders:1")
        await board.publish({1: {"speed": 1.0}})  # logged, not raised

    asyncio.run(scenario())
