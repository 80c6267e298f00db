"""`summitcast report build --summit SLUG -o DIR`: the web page's service from the command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from summitcast.cli.main import app
from summitcast.config import Settings
from summitcast.services.attendance import AttendanceRecorder
from summitcast.storage.database import Database
from tests.services.test_attendance import T0, Clock, count_beats, make_world

pytestmark = pytest.mark.integration


def test_report_build_for_a_summit_writes_pdf_and_csv(
    database: Database, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_world(database, settings, [("FR", "public")] * 5)
    clock = Clock(T0)
    recorder = AttendanceRecorder(settings.attendance_bucket_s, clock)
    for location in world.locations:
        count_beats(recorder, clock, location, [T0, T0 + 10, T0 + 20])
    recorder.flush_now(database)
    monkeypatch.setenv("SUMMITCAST_DATABASE_URL", database.url)
    monkeypatch.setenv("SUMMITCAST_DATA_DIR", str(tmp_path / "data"))

    result = CliRunner().invoke(
        app, ["report", "build", "--summit", "test-summit", "-o", str(tmp_path / "out")]
    )

    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "attendance-report.pdf").read_bytes().startswith(b"%PDF-")
    assert (tmp_path / "out" / "countries.csv").read_text() == "country,locations\nFR,5\n"
    assert "countries-exact.csv" in result.output


def test_report_build_needs_summit_or_log(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", "build", "-o", str(tmp_path)])

    assert result.exit_code == 2
    assert "either --summit or --log" in result.output
