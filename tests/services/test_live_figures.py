"""The one public presence message: k-anonymous countries, cities and totals, built purely."""

from __future__ import annotations

import pytest

from summitcast.presence.base import PresenceSnapshot
from summitcast.services.live.figures import city_cells, public_message


@pytest.mark.unit
def test_public_message_folds_small_countries_into_elsewhere() -> None:
    snapshot = PresenceSnapshot(
        total=14, by_country={"DE": 6, "FR": 5, "IR": 2, "ZZ": 1}, peak=20, peak_at=5.0
    )
    assert public_message(snapshot, city_cells({}, snapshot), k=5) == {
        "type": "presence",
        "total": 14,
        "countries": {"DE": 6, "FR": 5},
        "elsewhere": 3,
        "peak": 20,
        # peak_at is left out: it is on the back-end's clock, which may be monotonic.
        "country_count": 3,
        "cities": [],
        "k": 5,
    }
