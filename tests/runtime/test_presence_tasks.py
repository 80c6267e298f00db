"""The presence background tasks: their intervals, and the changes follower through an outage."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from summitcast.presence.memory import MemoryPresence, MemoryPubSub
from summitcast.presence.names import CHANGES_CHANNEL
from summitcast.runtime.presence_tasks import PresenceTasks
from summitcast.services.live import LiveService
from summitcast.storage.database import Database
from tests.services.backends import Flaky
from tests.services.test_live import TIMEOUT, _settings

pytestmark = pytest.mark.integration


def _live(database: Database, tmp_path: Path, pubsub: object) -> LiveService:
    return LiveService(
        settings=_settings(tmp_path, database),
        database=database,
        presence=MemoryPresence(TIMEOUT),
        pubsub=pubsub,  # type: ignore[arg-type]
    )


def test_tasks_retry_at_their_own_interval_through_an_outage(
    database: Database, tmp_path: Path
) -> None:
    live = _live(database, tmp_path, MemoryPubSub())
    tasks = PresenceTasks(live).tasks
    settings = live.settings

    assert [(t.name, t.interval_s, t.immediately) for t in tasks] == [
        ("sweep", settings.presence_sweep_interval_s, False),
        ("publish_dirty", 0.25, False),
        ("flush_transitions", 1.0, False),
        ("refresh_and_sample", settings.presence_sample_interval_s, False),
        ("location changes", 1.0, True),
    ]
    # No growing backoff: figures resume at the next tick once Redis is back.
    assert all(t.backoff.delay(10) == t.interval_s for t in tasks)


def test_changes_are_followed_again_once_the_pubsub_is_back(
    database: Database, tmp_path: Path
) -> None:
    pubsub = Flaky(MemoryPubSub())
    live = _live(database, tmp_path, pubsub)
    tasks = PresenceTasks(live)

    async def scenario() -> tuple[bool, bool, bool]:
        pubsub.down = True
        await tasks.start()
        await asyncio.sleep(0.1)
        during = live.outages.active
        pubsub.down = False
        await live.identities.get("no-such-place")  # cached (as unknown) by this worker
        await asyncio.sleep(1.2)  # the follower subscribes again after 1 s
        await pubsub.publish(CHANGES_CHANNEL, {"location_id": "no-such-place", "summit": "1"})
        await asyncio.sleep(0.1)
        forgotten = "no-such-place" not in live.identities.entries
        await tasks.stop()
        return during, forgotten, any(t.running for t in tasks.tasks)

    assert asyncio.run(scenario()) == (True, True, False)
