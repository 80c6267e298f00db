"""The attendance report: charts, a world map, a PDF, CSV files and web-page data from figures."""

from __future__ import annotations

import base64
import csv
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Figures are built with matplotlib.figure.Figure, never pyplot: savefig then uses
# the Agg/PDF canvases and no GUI backend is ever loaded, whatever MPLBACKEND says.
from matplotlib import dates as mdates
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from summitcast.domain.attendance import (
    OTHER_ROW,
    AttendanceFigures,
    SessionWindow,
)
from summitcast.reports.worldmap import draw_world_map, find_atlas, load_atlas

__all__ = ["COUNTING_TEXT", "ReportFiles", "build_report"]

Progress = Callable[[str, int, int], None]

COUNTING_TEXT = (
    "How counts were made. Time is cut into {minutes}-minute buckets (UTC). A watch location "
    "is present in a bucket when it sent at least {beats} valid signed heartbeats in it. It "
    "counts for a session when present in at least {percent} % of the session's buckets "
    "(sustained presence, so fake locations are costly). Concurrent locations are those present "
    "in one bucket; the peak is the largest such number. Distinct locations counted in any "
    "session; average time watched = present buckets × bucket length per counted location. "
    "Countries with fewer than {k} locations, and hosts who asked to hide their country, are "
    "merged into 'other' and never shown on their own. Every figure can be recomputed from the "
    "public attendance log with `summitcast audit verify`."
)
_STEPS = ("timeline", "sessions", "countries", "map", "pdf", "csv")


@dataclass(frozen=True, slots=True)
class ReportFiles:
    """What `build_report` wrote, and the data a web page needs to show it."""

    out_dir: Path
    pdf: Path
    timeline_png: Path
    sessions_png: Path
    countries_png: Path
    map_png: Path | None
    timeline_csv: Path
    countries_csv: Path
    sessions_csv: Path
    html: dict[str, Any] = field(default_factory=dict)


def _utc(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _num(moment: datetime) -> float:
    """Return matplotlib's date number (days since its epoch) for an aware datetime."""
    return float(mdates.date2num(moment))  # type: ignore[no-untyped-call]


def _iso(epoch: int | None) -> str:
    return "" if epoch is None else _utc(epoch).strftime("%Y-%m-%dT%H:%M:%SZ")


def _duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    return f"{hours} h {rest // 60:02d} min" if hours else f"{rest // 60} min"


def _headline(figures: AttendanceFigures) -> list[tuple[str, str]]:
    peak_at = (
        _utc(figures.peak_bucket_start).strftime("%d %b %Y %H:%M UTC")
        if (figures.peak_bucket_start is not None)
        else "-"
    )
    return [
        ("Distinct locations", f"{figures.distinct_locations:,}"),
        ("Countries", f"{figures.distinct_countries:,}"),
        ("Peak concurrent locations", f"{figures.peak_concurrent:,} at {peak_at}"),
        ("Average time watched", _duration(figures.average_seconds_watched)),
        ("Sessions", f"{len(figures.sessions)}"),
    ]


def _series(
    points: Sequence[tuple[int, int]], step: int
) -> tuple[list[datetime | None], list[float]]:
    """Return x and y with a break wherever samples are further apart than one step."""
    xs: list[datetime | None] = []
    ys: list[float] = []
    previous: int | None = None
    for start, value in points:
        if previous is not None and start - previous > step:
            xs.append(_utc(previous + step))
            ys.append(float("nan"))  # matplotlib leaves a gap at NaN
        xs.append(_utc(start))
        ys.append(value)
        previous = start
    return xs, ys


def _timeline_figure(
    points: Sequence[tuple[int, int]],
    step: int,
    sessions: Sequence[SessionWindow],
    titles: Mapping[str, str],
) -> Figure:
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    ax = figure.add_subplot()
    for index, session in enumerate(sessions):
        ax.axvspan(
            _num(session.start),
            _num(session.end),
            color="#f4c542" if index % 2 else "#8ecae6",
            alpha=0.25,
            label=titles.get(session.slug, session.slug) if len(sessions) <= 6 else None,
        )
    xs, ys = _series(points, step)
    ax.plot(xs, ys, color="#1d3557", linewidth=1.2, label="locations online")  # type: ignore[arg-type]
    ax.set_ylabel("locations online")
    ax.set_ylim(bottom=0)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %b\n%H:%M"))  # type: ignore[no-untyped-call]
    ax.set_title("Locations online over time (UTC); sessions shaded")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=7, ncols=4)
    return figure


def _sessions_figure(figures: AttendanceFigures, titles: Mapping[str, str]) -> Figure:
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    ax = figure.add_subplot()
    labels = [titles.get(s.slug, s.slug) for s in figures.sessions]
    positions = range(len(labels))
    ax.bar(
        [p - 0.2 for p in positions],
        [s.counted_locations for s in figures.sessions],
        width=0.4,
        color="#457b9d",
        label="counted locations",
    )
    ax.bar(
        [p + 0.2 for p in positions],
        [s.peak_concurrent for s in figures.sessions],
        width=0.4,
        color="#e76f51",
        label="peak concurrent",
    )
    ax.set_xticks(list(positions), labels, rotation=30 if len(labels) > 4 else 0, ha="right")
    ax.set_ylabel("locations")
    ax.set_title("Audience per session")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return figure


def _countries_figure(figures: AttendanceFigures) -> Figure:
    rows = [r for r in figures.countries if r.country != OTHER_ROW][:20]
    figure = Figure(figsize=(8, 6.5), layout="constrained")
    ax = figure.add_subplot()
    ax.barh(
        [r.country for r in reversed(rows)], [r.locations for r in reversed(rows)], color="#2a9d8f"
    )
    ax.set_xlabel("counted locations")
    ax.set_title(f"Top {len(rows)} countries")
    other = next((r.locations for r in figures.countries if r.country == OTHER_ROW), 0)
    ax.text(
        0.99,
        0.01,
        f"'other': {other:,} locations in countries with fewer than {figures.k} or hidden",
        transform=ax.transAxes,
        ha="right",
        fontsize=7,
    )
    return figure


def _map_figure(figures: AttendanceFigures) -> tuple[Figure | None, str]:
    path = find_atlas()
    if path is None:
        return None, "No world map: the world-atlas file is missing (run `make assets`)."
    counts = {r.country: r.locations for r in figures.countries if r.country != OTHER_ROW}
    other = next((r.locations for r in figures.countries if r.country == OTHER_ROW), 0)
    note = (
        f"Countries with fewer than {figures.k} locations and hidden hosts are not shown "
        f"({other:,} locations)."
    )
    figure = Figure(figsize=(11, 5.6), layout="constrained")
    ax = figure.add_subplot()
    draw_world_map(ax, load_atlas(path), counts, k=figures.k, note=note)
    ax.set_title("Counted locations per country")
    return figure, note


def _png(figure: Figure, path: Path) -> None:
    # No date in the PNG metadata, so the same figures give the same bytes.
    figure.savefig(path, dpi=110, metadata={"Software": None})


def _title_page(figures: AttendanceFigures, summit_title: str, map_note: str | None) -> Figure:
    figure = Figure(figsize=(8.27, 11.69))  # A4 portrait
    figure.text(0.08, 0.93, summit_title, fontsize=20, weight="bold")
    figure.text(0.08, 0.895, "Attendance report", fontsize=14, color="#555555")
    y = 0.83
    for label, value in _headline(figures):
        figure.text(0.08, y, label, fontsize=12)
        figure.text(0.55, y, value, fontsize=12, weight="bold")
        y -= 0.035
    text = _counting_text(figures)
    figure.text(0.08, y - 0.02, _wrap(text, 95), fontsize=9, va="top", linespacing=1.5)
    if map_note:
        figure.text(0.08, 0.06, map_note, fontsize=8, color="#555555")
    return figure


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width))


def _table_page(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> Figure:
    figure = Figure(figsize=(8.27, 11.69))
    figure.text(0.08, 0.95, title, fontsize=14, weight="bold")
    ax = figure.add_axes((0.08, 0.05, 0.84, 0.86))
    ax.set_axis_off()
    if rows:
        table = ax.table(
            cellText=[list(r) for r in rows[:45]], colLabels=list(header), loc="upper center"
        )
        table.auto_set_font_size(False)
        table.set_fontsize(8)
    return figure


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _data_uri(path: Path) -> str:
    # The site's CSP allows img-src 'self' data:, so pages can inline the charts.
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _counting_text(figures: AttendanceFigures) -> str:
    return COUNTING_TEXT.format(
        minutes=figures.bucket_seconds // 60,
        beats=figures.min_heartbeats,
        percent=figures.session_min_percent,
        k=figures.k,
    )


def _ticker(progress: Progress | None) -> Callable[[str], None]:
    """Return a function that reports one more step of `_STEPS` done."""
    done = 0

    def tick(step_name: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(step_name, done, len(_STEPS))

    return tick


@dataclass(frozen=True, slots=True)
class _Charts:
    """The charts drawn for a report, each also written as a PNG (the map only with an atlas)."""

    pngs: dict[str, Path]
    timeline: Figure
    sessions: Figure
    countries: Figure
    map: Figure | None
    map_note: str

    def images(self) -> dict[str, Path]:
        """Return the PNGs written, by chart name."""
        return {
            name: path for name, path in self.pngs.items() if name != "map" or self.map is not None
        }


def _draw_charts(
    figures: AttendanceFigures,
    out_dir: Path,
    timeline: tuple[Sequence[tuple[int, int]], int],
    sessions: Sequence[SessionWindow],
    titles: Mapping[str, str],
    tick: Callable[[str], None],
) -> _Charts:
    """Draw the four charts and write each as a PNG into out_dir."""
    pngs = {name: out_dir / f"{name}.png" for name in ("timeline", "sessions", "countries", "map")}
    timeline_figure = _timeline_figure(*timeline, sessions, titles)
    _png(timeline_figure, pngs["timeline"])
    tick("timeline")
    sessions_figure = _sessions_figure(figures, titles)
    _png(sessions_figure, pngs["sessions"])
    tick("sessions")
    countries_figure = _countries_figure(figures)
    _png(countries_figure, pngs["countries"])
    tick("countries")
    map_figure, map_note = _map_figure(figures)
    if map_figure is not None:
        _png(map_figure, pngs["map"])
    elif pngs["map"].exists():
        pngs["map"].unlink()
    tick("map")
    return _Charts(pngs, timeline_figure, sessions_figure, countries_figure, map_figure, map_note)


def _session_rows(figures: AttendanceFigures, titles: Mapping[str, str]) -> list[list[Any]]:
    """Return one row per session, as the sessions CSV and the web page show them."""
    return [
        [
            s.slug,
            titles.get(s.slug, s.slug),
            s.buckets,
            s.counted_locations,
            s.peak_concurrent,
            _iso(s.peak_bucket_start),
            s.average_seconds_watched,
        ]
        for s in figures.sessions
    ]


def _write_pdf(
    pdf: Path,
    figures: AttendanceFigures,
    summit_title: str,
    charts: _Charts,
    session_rows: Sequence[Sequence[Any]],
    country_rows: Sequence[Sequence[Any]],
) -> None:
    """Write the PDF: title page, the charts, then the sessions and countries tables."""
    # No creation date: the same figures give the same PDF.
    with PdfPages(
        pdf, metadata={"Title": f"{summit_title}: attendance", "CreationDate": None}
    ) as doc:
        doc.savefig(
            _title_page(figures, summit_title, charts.map_note if charts.map is None else None)
        )
        doc.savefig(charts.timeline)
        if charts.map is not None:
            doc.savefig(charts.map)
        doc.savefig(charts.sessions)
        doc.savefig(charts.countries)
        doc.savefig(
            _table_page(
                "Sessions",
                ["session", "counted", "peak", "peak at (UTC)", "avg watched"],
                [
                    [str(r[1]), str(r[3]), str(r[4]), str(r[5]), _duration(int(str(r[6])))]
                    for r in session_rows
                ],
            )
        )
        doc.savefig(
            _table_page(
                f"Countries (cells under k={figures.k} merged into 'other')",
                ["country", "locations"],
                [[str(c), f"{n:,}"] for c, n in country_rows],
            )
        )


def _write_csvs(
    out_dir: Path,
    points: Sequence[tuple[int, int]],
    country_rows: Sequence[Sequence[Any]],
    session_rows: Sequence[Sequence[Any]],
) -> dict[str, Path]:
    """Write the timeline, countries and sessions CSV files; return them by name."""
    csv_files = {
        "timeline": out_dir / "timeline.csv",
        "countries": out_dir / "countries.csv",
        "sessions": out_dir / "sessions.csv",
    }
    _write_csv(
        csv_files["timeline"], ["bucket_start_utc", "online"], [[_iso(s), n] for s, n in points]
    )
    _write_csv(csv_files["countries"], ["country", "locations"], country_rows)
    _write_csv(
        csv_files["sessions"],
        [
            "session",
            "title",
            "buckets",
            "counted_locations",
            "peak_concurrent",
            "peak_bucket_start_utc",
            "average_seconds_watched",
        ],
        session_rows,
    )
    return csv_files


def build_report(
    figures: AttendanceFigures,
    *,
    summit_title: str,
    out_dir: Path,
    sessions: Sequence[SessionWindow] = (),
    session_titles: Mapping[str, str] | None = None,
    timeline: Sequence[tuple[int, int]] | None = None,
    timeline_step: int = 60,
    progress: Progress | None = None,
) -> ReportFiles:
    """Write the report for published figures into out_dir and return what was written.

    `timeline` is the presence time series (sample start, locations online), e.g.
    1-minute samples; without it the 5-minute bucket counts of the figures are used.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    titles = dict(session_titles or {})
    points = list(figures.concurrent) if timeline is None else list(timeline)
    step = figures.bucket_seconds if timeline is None else timeline_step
    tick = _ticker(progress)
    charts = _draw_charts(figures, out_dir, (points, step), sessions, titles, tick)
    session_rows = _session_rows(figures, titles)
    country_rows = [[r.country, r.locations] for r in figures.countries]
    pdf = out_dir / "attendance-report.pdf"
    _write_pdf(pdf, figures, summit_title, charts, session_rows, country_rows)
    tick("pdf")
    csv_files = _write_csvs(out_dir, points, country_rows, session_rows)
    tick("csv")
    html: dict[str, Any] = {
        "title": summit_title,
        "headline": _headline(figures),
        "counting": _counting_text(figures),
        "images": {name: _data_uri(path) for name, path in charts.images().items()},
        "map_note": charts.map_note,
        "sessions": session_rows,
        "countries": country_rows,
        "downloads": {name: path.name for name, path in csv_files.items()} | {"pdf": pdf.name},
    }
    return ReportFiles(
        out_dir=out_dir,
        pdf=pdf,
        timeline_png=charts.pngs["timeline"],
        sessions_png=charts.pngs["sessions"],
        countries_png=charts.pngs["countries"],
        map_png=charts.pngs["map"] if charts.map is not None else None,
        timeline_csv=csv_files["timeline"],
        countries_csv=csv_files["countries"],
        sessions_csv=csv_files["sessions"],
        html=html,
    )
