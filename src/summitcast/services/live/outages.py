"""Back-end outages of the presence use cases: which errors mean one, and how it is logged."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from summitcast.presence.base import PresenceUnavailableError

# Exceptions that mean a back-end is unreachable for now (an operations event, not a bug).
# OSError covers refused and reset connections and the built-in TimeoutError; the
# presence back-ends translate their own client's errors into PresenceUnavailableError.
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    OperationalError,
    PoolTimeoutError,
    PresenceUnavailableError,
)


class OutageLog:
    """Logs a back-end outage: one warning at its start, a tally while it lasts, one at its end."""

    # A Redis restart under 30,000 screens fails thousands of heartbeats a second: a
    # traceback (or even a line) per failure would bury the log and slow the worker.
    # The end is declared after quiet_s without a failure (settle() from a background
    # tick), so the hot path never has to report its successes.

    def __init__(
        self,
        logger: logging.Logger,
        every_s: float = 10.0,
        quiet_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._every_s = every_s
        self._quiet_s = quiet_s
        self._clock = clock
        self._since: float | None = None
        self._last_line = 0.0
        self._last_failure = 0.0
        self._unreported = 0
        self.failures = 0  # since the start of the current outage

    @property
    def active(self) -> bool:
        """True from the first failure until ``settle`` declares the outage over."""
        return self._since is not None

    def failed(self, where: str, error: BaseException) -> None:
        """Note one failure; logs at most one line per ``every_s``."""
        now = self._clock()
        self.failures += 1
        self._unreported += 1
        self._last_failure = now
        if self._since is None:
            self._since, self._last_line, self._unreported = now, now, 0
            self._log.warning("presence back-end unavailable (%s: %s); degrading", where, error)
        elif now - self._last_line >= self._every_s:
            self._log.warning(
                "presence back-end still unavailable after %.0f s (%d failures since the last"
                " line; last: %s: %s)",
                now - self._since,
                self._unreported,
                where,
                error,
            )
            self._last_line, self._unreported = now, 0

    def settle(self) -> None:
        """Log the end of an outage once no failure was seen for ``quiet_s``."""
        if self._since is None or self._clock() - self._last_failure < self._quiet_s:
            return
        self._log.warning(
            "presence back-end back: unavailable for %.1f s (%d failures)",
            self._last_failure - self._since,
            self.failures,
        )
        self._since, self.failures, self._unreported = None, 0, 0
