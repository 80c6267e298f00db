"""CSV tables of attendance figures: the published ones (from a figures record), exact counts."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from summitcast.domain.attendance import SUPPRESSED_COUNTRY
from summitcast.errors import NotFoundError

__all__ = ["public_csv", "write_exact_csv"]


def _iso(epoch: object) -> str:
    if not isinstance(epoch, int):
        return ""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def public_csv(figures: Mapping[str, Any], name: str) -> str:
    """Return a CSV of published figures: 'countries', 'sessions' or 'timeline'."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if name == "countries":
        # Exactly the published rows: cells under k are already inside "other".
        writer.writerow(["country", "locations"])
        writer.writerows([row["country"], row["locations"]] for row in figures["countries"])
    elif name == "sessions":
        writer.writerow(
            ["session", "buckets", "counted_locations", "peak_concurrent",
             "peak_bucket_start_utc", "average_seconds_watched"]
        )  # fmt: skip
        for s in figures["sessions"]:
            writer.writerow(
                [s["slug"], s["buckets"], s["counted_locations"], s["peak_concurrent"],
                 _iso(s["peak_bucket_start"]), s["average_seconds_watched"]]
            )  # fmt: skip
    elif name == "timeline":
        writer.writerow(["bucket_start_utc", "present_locations"])
        writer.writerows([_iso(start), n] for start, n in figures["concurrent"])
    else:
        raise NotFoundError("No such file.")
    return out.getvalue()


def write_exact_csv(path: Path, exact: Mapping[str, int]) -> None:
    """Write the exact counted locations per country (organisers only; hidden hosts as ZZ)."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["country", "locations", "note"])
        for country, n in exact.items():
            note = "hidden hosts (country never shown)" if country == SUPPRESSED_COUNTRY else ""
            writer.writerow([country, n, note])
