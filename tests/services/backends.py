"""A back-end twin that can be taken down: every call fails as a refused connection does."""

from __future__ import annotations

from typing import Any


class Flaky:
    """Wraps a Presence or PubSub; while ``down`` every call but close() is refused."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.down = False
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if not callable(attribute) or name == "close":
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                self.refused += 1
                # What a socket to a stopped Redis (or database) raises.
                raise ConnectionRefusedError(111, "Connection refused")
            return attribute(*args, **kwargs)

        return call
