"""The attendance report of a summit: one function behind both the CLI and the web page."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session as DbSession

from summitcast.config import Settings
from summitcast.reports import tables
from summitcast.services.attendance import AttendanceData, attendance_data
from summitcast.storage.database import Database
from summitcast.storage.tables import AttendancePublication, Summit

if TYPE_CHECKING:
    from summitcast.reports.build import ReportFiles

# summitcast.reports' drawing modules (matplotlib, numpy: ~56 MiB) are imported where a report
# is drawn, not with the app: each of the workers holding 15,000 sockets would carry them for
# nothing (reports.tables needs only csv).

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
    return settings.report_dir / summit.slug


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
    tables.write_exact_csv(out_dir / EXACT_CSV, data.exact)
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


def public_csv(figures: Mapping[str, Any], name: str) -> str:
    """Return a CSV of published figures: 'countries', 'sessions' or 'timeline'."""
    return tables.public_csv(figures, name)


def public_map(
    settings: Settings, summit: Summit, publication: AttendancePublication
) -> Path | None:
    """Return the PNG world map of a publication's figures (drawn once), or None without atlas."""
    path = settings.attendance_dir / summit.slug / f"map-{publication.id}.png"
    if path.is_file():
        return path
    from summitcast.reports.worldmap import draw_published_map

    return path if draw_published_map(publication.figures, path) else None
