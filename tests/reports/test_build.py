"""The attendance report of a small simulated summit: files, CSV contents, privacy, PDF pages."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from summitcast.audit.log import pseudonym
from summitcast.domain.attendance import (
    AttendanceFigures,
    Bucket,
    SessionWindow,
    bucketize,
    summarise,
)
from summitcast.reports.build import ReportFiles, build_report
from summitcast.reports.simulate import SimulatedSummit, simulate_summit
from summitcast.reports.worldmap import find_atlas, load_atlas

pytestmark = pytest.mark.unit

T0 = datetime(2024, 7, 17, 12, 0, tzinfo=UTC)


def _tiny() -> tuple[AttendanceFigures, list[SessionWindow]]:
    """Six DE locations, two FR (under k=5), one bucket each in two sessions."""
    sessions = [
        SessionWindow("a", T0, T0 + timedelta(minutes=10)),
        SessionWindow("b", T0 + timedelta(hours=1), T0 + timedelta(hours=1, minutes=5)),
    ]
    start = int(T0.timestamp())
    de = {f"de{i}": "DE" for i in range(6)}
    buckets = [
        Bucket(start, {**de, "fr0": "FR", "fr1": "FR"}),
        Bucket(start + 300, {"de0": "DE"}),
        Bucket(start + 3600, {"de1": "DE", "de2": "DE"}),
    ]
    return summarise(buckets, sessions), sessions


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> ReportFiles:
    figures, sessions = _tiny()
    return build_report(
        figures,
        summit_title="Tiny Summit",
        out_dir=tmp_path_factory.mktemp("tiny"),
        sessions=sessions,
        session_titles={"a": "Opening", "b": "Closing"},
    )


@pytest.fixture(scope="module")
def simulated() -> SimulatedSummit:
    return simulate_summit(600, days=1, sessions_per_day=2, session_minutes=30, seed=3)


@pytest.fixture(scope="module")
def report(simulated: SimulatedSummit, tmp_path_factory: pytest.TempPathFactory) -> ReportFiles:
    figures = summarise(simulated.buckets(), simulated.sessions)
    return build_report(
        figures,
        summit_title=simulated.title,
        out_dir=tmp_path_factory.mktemp("report"),
        sessions=simulated.sessions,
        session_titles=simulated.session_titles,
        timeline=simulated.online_timeline(),
    )


def test_build_report_tiny_timeline_csv_is_exact(tiny: ReportFiles) -> None:
    assert tiny.timeline_csv.read_text() == (
        "bucket_start_utc,online\n"
        "2024-07-17T12:00:00Z,8\n"
        "2024-07-17T12:05:00Z,1\n"
        "2024-07-17T13:00:00Z,2\n"
    )


def test_build_report_tiny_countries_csv_suppresses_under_k(tiny: ReportFiles) -> None:
    assert tiny.countries_csv.read_text() == "country,locations\nDE,6\nother,2\n"


def test_build_report_tiny_sessions_csv_is_exact(tiny: ReportFiles) -> None:
    assert tiny.sessions_csv.read_text() == (
        "session,title,buckets,counted_locations,peak_concurrent,peak_bucket_start_utc,"
        "average_seconds_watched\n"
        "a,Opening,2,8,8,2024-07-17T12:00:00Z,337\n"
        "b,Closing,1,2,2,2024-07-17T13:00:00Z,300\n"
    )


def _pdf_pages(path: Path) -> int:
    return len(re.findall(rb"/Type /Page\b(?!s)", path.read_bytes()))


def test_build_report_pdf_has_title_charts_map_and_tables(report: ReportFiles) -> None:
    # title, timeline, map, sessions chart, countries chart, two tables
    assert _pdf_pages(report.pdf) == (7 if report.map_png is not None else 6)


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed")
def test_build_report_pdf_text_holds_headline_figures(tiny: ReportFiles) -> None:
    text = subprocess.run(
        ["pdftotext", "-l", "1", str(tiny.pdf), "-"], capture_output=True, check=True, text=True
    ).stdout
    assert "Tiny Summit" in text
    assert "Peak concurrent locations" in text
    assert "8 at 17 Jul 2024 12:00 UTC" in text
    assert "How counts were made." in text


def test_build_report_images_are_pngs_and_inline_data(report: ReportFiles) -> None:
    for path in (report.timeline_png, report.sessions_png, report.countries_png):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(report.html["images"]) >= {"timeline", "sessions", "countries"}
    assert all(uri.startswith("data:image/png;base64,") for uri in report.html["images"].values())


def test_build_report_world_map_is_drawn(report: ReportFiles) -> None:
    if report.map_png is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no world atlas: CI must run `make assets` first")
        pytest.skip("no world atlas (run `make assets`)")
    assert report.map_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "map" in report.html["images"]


def test_load_atlas_decodes_countries_by_iso_code() -> None:
    path = find_atlas()
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no world atlas: CI must run `make assets` first")
        pytest.skip("no world atlas (run `make assets`)")
    atlas = load_atlas(path)
    assert {"DE", "BR", "US", "IN", "RU", "AU"} <= set(atlas.countries)
    xs = [x for ring in atlas.countries["DE"][0] for x, _ in ring]
    assert 5 < min(xs) < max(xs) < 16  # Germany lies between 5.9° and 15.0° east


def test_build_report_public_outputs_hold_no_country_under_k(report: ReportFiles) -> None:
    rows = report.countries_csv.read_text().splitlines()[1:]
    counts = {line.split(",")[0]: int(line.split(",")[1]) for line in rows}
    assert counts.pop("other") > 0
    assert min(counts.values()) >= 5
    assert "ZZ" not in counts
    assert all(c not in counts for c in ("IS", "LU", "MT", "BT", "FJ", "MN"))
    assert [c for c, _ in report.html["countries"]] == [*counts, "other"]


def test_build_report_public_outputs_hold_no_location_or_pseudonym(
    simulated: SimulatedSummit, report: ReportFiles
) -> None:
    secret = b"any secret"
    needles = [loc.location_id for loc in simulated.locations[:50]]
    needles += [pseudonym(secret, loc.location_id) for loc in simulated.locations[:50]]
    text = "".join(
        path.read_text()
        for path in (report.timeline_csv, report.countries_csv, report.sessions_csv)
    ) + repr(report.html)
    assert not [n for n in needles if n in text]


def test_simulated_buckets_equal_bucketize_of_heartbeats(simulated: SimulatedSummit) -> None:
    assert simulated.buckets() == bucketize(simulated.heartbeats(), simulated.sessions)


def test_simulated_summit_same_seed_same_summit() -> None:
    first = simulate_summit(50, seed=9)
    assert first == simulate_summit(50, seed=9)
    assert first != simulate_summit(50, seed=10)
