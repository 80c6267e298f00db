"""The attendance report of a summit: one function behind both the CLI and the web page."""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session as DbSession

from summitcast.config import Settings
from summitcast.domain.attendance import OTHER_ROW, SUPPRESSED_COUNTRY
from summitcast.errors import NotFoundError
from summitcast.services.attendance import AttendanceData, attendance_data
from summitcast.storage.database import Database
from summitcast.storage.tables import AttendancePublication, Summit

if TYPE_CHECKING:
    from summitcast.reports.build import ReportFiles

# summitcast.reports (matplotlib, numpy: ~56 MiB) is imported where a report is drawn,
# not with the app: each of the workers holding 15,000 sockets would carry it for nothing.

__all__ = [
    "DOWNLOADS",
    "EXACT_CSV",
    "BuiltReport",
    "ReportCache",
    "build_attendance_report",
    "public_csv",
    "public_map",
    "report_dir",
]

Progress = Callable[[str, int, int], None]
EXACT_CSV = "countries-exact.csv"
# Files of a built report that may be downloaded, by name (nothing else is ever served).
DOWNLOADS = {
    "attendance-report.pdf": "application/pdf",
    "timeline.csv": "text/csv; charset=utf-8",
    "sessions.csv": "text/csv; charset=utf-8",
    "countries.csv": "text/csv; charset=utf-8",
    EXACT_CSV: "text/csv; charset=utf-8",
    "timeline.png": "image/png",
    "sessions.png": "image/png",
    "countries.png": "image/png",
    "map.png": "image/png",
}


@dataclass(frozen=True, slots=True)
class BuiltReport:
    """A built report: its files, the figures behind it, and when it was built."""

    files: ReportFiles
    data: AttendanceData
    built_at: float


def report_dir(settings: Settings, summit: Summit) -> Path:
    """Return where a summit's organiser report is written."""
    return settings.data_dir / "reports" / summit.slug


def build_attendance_report(
    db: DbSession,
    summit: Summit,
    settings: Settings,
    out_dir: Path,
    *,
    progress: Progress | None = None,
) -> BuiltReport:
    """Compute the figures and write the report (PDF, PNG, CSV) into out_dir."""
    from summitcast.reports.build import build_report

    data = attendance_data(db, summit, settings)
    # The charts, PDF and CSVs carry the k-suppressed figures, so they can be passed
    # on; the exact per-country counts go into one CSV marked for organisers.
    files = build_report(
        data.public,
        summit_title=data.summit_title,
        out_dir=out_dir,
        sessions=data.windows,
        session_titles=data.titles,
        timeline=data.timeline or None,
        timeline_step=int(settings.presence_sample_interval_s),
        progress=progress,
    )
    with (out_dir / EXACT_CSV).open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["country", "locations", "note"])
        for country, n in data.exact.items():
            note = "hidden hosts (country never shown)" if country == SUPPRESSED_COUNTRY else ""
            writer.writerow([country, n, note])
    return BuiltReport(files, data, time.monotonic())


class ReportCache:
    """Built reports per summit, reused for `max_age_s`; one build per summit at a time."""

    def __init__(self, settings: Settings, database: Database) -> None:
        """Start empty."""
        self._settings = settings
        self._database = database
        self._built: dict[int, BuiltReport] = {}
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, summit_id: int) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(summit_id, threading.Lock())

    def cached(self, summit_id: int) -> BuiltReport | None:
        """Return the summit's report if it is fresh enough, else None."""
        built = self._built.get(summit_id)
        if built is None or time.monotonic() - built.built_at > self._settings.report_cache_s:
            return None
        return built

    def get(self, summit: Summit, *, rebuild: bool = False) -> BuiltReport:
        """Return a fresh report of the summit, building it (blocking) when needed."""
        if not rebuild and (built := self.cached(summit.id)) is not None:
            return built
        # Several requests at once wait for one build instead of each drawing the charts.
        with self._lock(summit.id):
            if not rebuild and (built := self.cached(summit.id)) is not None:
                return built
            with self._database.session() as db:
                fresh = db.get(Summit, summit.id)
                assert fresh is not None
                built = build_attendance_report(
                    db, fresh, self._settings, report_dir(self._settings, fresh)
                )
            self._built[summit.id] = built
            return built

    def forget(self, summit_id: int) -> None:
        """Drop a cached report (after publishing, so the page shows the new state)."""
        self._built.pop(summit_id, None)


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


def public_map(
    settings: Settings, summit: Summit, publication: AttendancePublication
) -> Path | None:
    """Return the PNG world map of a publication's figures (drawn once), or None without atlas."""
    path = settings.attendance_dir / summit.slug / f"map-{publication.id}.png"
    if path.is_file():
        return path
    from matplotlib.figure import Figure

    from summitcast.reports.worldmap import draw_world_map, find_atlas, load_atlas

    atlas = find_atlas()
    if atlas is None:
        return None
    figures = publication.figures
    k = int(figures["k"])
    counts = {
        row["country"]: int(row["locations"])
        for row in figures["countries"]
        if row["country"] != OTHER_ROW
    }
    other = sum(int(r["locations"]) for r in figures["countries"] if r["country"] == OTHER_ROW)
    figure = Figure(figsize=(11, 5.6), layout="constrained")
    ax = figure.add_subplot()
    note = (
        f"Countries with fewer than {k} locations and hidden hosts are not shown "
        f"({other:,} locations)."
    )
    draw_world_map(ax, load_atlas(atlas), counts, k=k, note=note)
    ax.set_title("Counted locations per country (published figures)")
    partial = path.with_name(f".partial-{path.name}")
    figure.savefig(partial, format="png", dpi=100, metadata={"Software": None})
    partial.rename(path)
    return path
