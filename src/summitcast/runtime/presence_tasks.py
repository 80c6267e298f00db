"""The presence background work of one worker: sweep, publish, flush, sample, follow changes.

Each step is a use case of services/live; here they run as supervised periodic tasks
(runtime/periodic.py). A back-end outage (Redis restarting, the database away) is
expected: each failure goes to the live service's OutageLog (one line at its start, a
tally while it lasts, one at its end), never a traceback per tick, and the next tick
simply tries again at its usual interval.
"""

from __future__ import annotations

import logging

from summitcast.runtime.periodic import Backoff, Periodic, Step, stop_all
from summitcast.services.demo_presence import DemoAudience
from summitcast.services.live import OUTAGE_ERRORS, LiveService

log = logging.getLogger(__name__)

PUBLISH_INTERVAL_S = 0.25  # changed figures reach viewers within this (then coalesced)
FLUSH_INTERVAL_S = 1.0  # arrivals and drops reach the database and dashboards within this
CHANGES_RETRY_S = 1.0  # a lost subscription to other workers' changes is retried after this


def _every(
    live: LiveService, name: str, interval_s: float, step: Step, *, immediately: bool = False
) -> Periodic:
    """A presence task: the same interval after a failure (figures resume once Redis is back)."""
    return Periodic(
        name,
        step,
        interval_s,
        immediately=immediately,
        backoff=Backoff(first_s=interval_s, cap_s=interval_s),
        expected=OUTAGE_ERRORS,
        on_expected=live.outages.failed,
        on_success=live.outages.settle,
        logger=log,
    )


class PresenceTasks:
    """Starts and stops the background tasks of a worker's LiveService (and a demo audience)."""

    def __init__(self, live: LiveService, audience: DemoAudience | None = None) -> None:
        self.live = live
        sweep_s = live.settings.presence_sweep_interval_s
        sample_s = live.settings.presence_sample_interval_s
        self.tasks = [
            _every(live, "sweep", sweep_s, live.sweep),
            _every(live, "publish_dirty", PUBLISH_INTERVAL_S, live.publish_dirty),
            _every(live, "flush_transitions", FLUSH_INTERVAL_S, live.flush_transitions),
            _every(live, "refresh_and_sample", sample_s, live.refresh_and_sample),
            # Other workers' approvals and revocations: a subscription held until it fails.
            # Subscribed at once, not after its retry interval.
            _every(
                live, "location changes", CHANGES_RETRY_S, live.follow_changes, immediately=True
            ),
        ]
        if audience is not None:
            # `summitcast demo`: simulated screens beating through the live service.
            ticks = _every(live, "demo audience", audience.tick_s, audience.tick, immediately=True)
            self.tasks.append(ticks)

    async def start(self) -> None:
        """Learn the live summits, then start every task."""
        await self.live.refresh_summits()
        for task in self.tasks:
            task.start()

    async def stop(self) -> None:
        """Stop every task, then write what is buffered and close the back-ends."""
        await stop_all(self.tasks)
        await self.live.stop()
