"""Counters one client process keeps, and how the orchestrator adds them up."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(slots=True)
class ClientStats:
    """What one client process has seen so far (sent to the orchestrator every second)."""

    locations: int = 0
    connected: int = 0  # sockets open right now
    online: int = 0  # sockets open whose last heartbeat was acknowledged
    ever_online: int = 0  # locations acknowledged at least once
    sent: int = 0
    acked: int = 0
    # Heartbeats whose socket closed before an ack came: the server may or may not
    # have counted them, the client cannot tell, so they count as lost.
    lost: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    connect_errors: int = 0
    error_kinds: Counter[str] = field(default_factory=Counter)  # exception names, all phases
    reconnects: int = 0
    all_online_at: float | None = None  # seconds after the start when ever_online == locations
    latencies_ms: list[float] = field(default_factory=list)
    acked_at: list[float] = field(default_factory=list)  # wall-clock instant of each ack

    def record_latency(self, at: float, ms: float) -> None:
        """Remember one acknowledged heartbeat: when its ack came, and after how long."""
        self.acked_at.append(at)
        self.latencies_ms.append(ms)

    def latency_samples(self) -> list[tuple[float, float]]:
        """Every (ack instant, latency in ms) pair, for the orchestrator to split by phase."""
        return list(zip(self.acked_at, self.latencies_ms, strict=True))

    def tick(self) -> dict[str, object]:
        """The counters as a picklable dict, without the latency samples."""
        return {
            "locations": self.locations,
            "connected": self.connected,
            "online": self.online,
            "ever_online": self.ever_online,
            "sent": self.sent,
            "acked": self.acked,
            "lost": self.lost,
            "refused": dict(self.refused),
            "error_kinds": dict(self.error_kinds),
            "connect_errors": self.connect_errors,
            "reconnects": self.reconnects,
            "all_online_at": self.all_online_at,
        }


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile of already sorted values; None when there are none."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def add_ticks(ticks: Iterable[dict[str, object]]) -> dict[str, object]:
    """Sum the counters of every process; all_online_at is the latest (None if any is None)."""
    total: dict[str, object] = {}
    refused: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    moments: list[float | None] = []
    for tick in ticks:
        for key, value in tick.items():
            if key in ("refused", "error_kinds") and isinstance(value, dict):
                bucket = refused if key == "refused" else kinds
                bucket.update(value)
            elif key == "all_online_at":
                moments.append(value if isinstance(value, float | int) else None)
            elif isinstance(value, int):
                previous = total.get(key, 0)
                total[key] = (previous if isinstance(previous, int) else 0) + value
    total["refused"] = dict(refused)
    if kinds:
        total["error_kinds"] = dict(kinds)
    known = [m for m in moments if m is not None]
    total["all_online_at"] = max(known) if moments and len(known) == len(moments) else None
    return total
