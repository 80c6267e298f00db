"""The organisers' attendance report page, its downloads, publishing and the public page."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from summitcast.config import Settings
from summitcast.domain.accounts import Role
from summitcast.services.attendance import AttendanceRecorder
from summitcast.storage.database import Database
from summitcast.storage.tables import Summit
from tests.conftest import grant, log_in, make_user
from tests.services.test_attendance import T0, Clock, count_beats, make_world

pytestmark = pytest.mark.integration


@pytest.fixture
def organiser(client: TestClient, database: Database, settings: Settings) -> str:
    """Seven FR and two KE locations counted in three buckets; an organiser logged in."""
    world = make_world(database, settings, [("FR", "public")] * 7 + [("KE", "country")] * 2)
    clock = Clock(T0)
    recorder = AttendanceRecorder(settings.attendance_bucket_s, clock)
    for location in world.locations:
        for bucket in range(3):
            count_beats(recorder, clock, location, [T0 + 300 * bucket + s for s in (0, 10, 20)])
    recorder.flush_now(database)
    user = make_user(database, "org@example.org")
    with database.session() as db:
        summit = db.get(Summit, world.summit.id)
    grant(database, user, summit, Role.ORGANISER)  # type: ignore[arg-type]
    return log_in(client, "org@example.org")


def test_report_page_shows_figures_charts_and_both_country_views(
    client: TestClient, organiser: str
) -> None:
    page = client.get("/backstage/s/test-summit/report")

    assert page.status_code == 200
    assert page.text.count('src="data:image/png;base64,') == 4  # timeline, map, sessions, countries
    assert "<dt>Distinct locations</dt><dd>9</dd>" in page.text
    assert 'data-country="KE" class="suppressed"' in page.text
    assert "The public sees" in page.text
    assert "How counts were made" in page.text


def test_report_downloads_pdf_and_csv(client: TestClient, organiser: str, tmp_path: Path) -> None:
    pdf = client.get("/backstage/s/test-summit/report/download?file=attendance-report.pdf")
    countries = client.get("/backstage/s/test-summit/report/download?file=countries.csv")
    exact = client.get("/backstage/s/test-summit/report/download?file=countries-exact.csv")
    unknown = client.get("/backstage/s/test-summit/report/download?file=../summitcast.db")

    assert pdf.status_code == 200
    assert pdf.content.startswith(b"%PDF-")
    assert countries.text == "country,locations\nFR,7\nother,2\n"
    assert exact.text == "country,locations,note\nFR,7,\nKE,2,\n"
    assert unknown.status_code == 404
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    (tmp_path / "r.pdf").write_bytes(pdf.content)
    text = subprocess.run(
        ["pdftotext", str(tmp_path / "r.pdf"), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "Attendance report" in text
    assert "Distinct locations" in text


def test_report_is_cached_until_published(
    client: TestClient,
    organiser: str,
    app,  # type: ignore[no-untyped-def]
) -> None:
    client.get("/backstage/s/test-summit/report")
    first = app.state.reports._built[1].built_at

    client.get("/backstage/s/test-summit/report")
    published = client.post(
        "/backstage/s/test-summit/attendance/publish",
        data={"csrf_token": organiser},
        follow_redirects=False,
    )

    assert app.state.reports._built.get(1) is None
    assert published.status_code == 303
    page = client.get("/backstage/s/test-summit/report")
    assert app.state.reports._built[1].built_at > first
    assert 'id="published"' in page.text


def test_public_attendance_page_before_and_after_publishing(
    client: TestClient, organiser: str
) -> None:
    before = client.get("/s/test-summit/attendance")
    missing_log = client.get("/s/test-summit/attendance/log.jsonl")
    client.post("/backstage/s/test-summit/attendance/publish", data={"csrf_token": organiser})

    after = client.get("/s/test-summit/attendance")
    key = client.get("/s/test-summit/attendance/public-key.txt").text.strip()
    log = client.get("/s/test-summit/attendance/log.jsonl")
    image = client.get("/s/test-summit/attendance/map.png")

    assert 'id="not-published"' in before.text
    assert missing_log.status_code == 404
    assert f"summitcast audit verify attendance-log.jsonl --public-key {key}" in after.text
    assert '<dd id="distinct">9</dd>' in after.text
    assert log.text.splitlines()[0].startswith('{"type":"header"')
    assert image.headers["content-type"] == "image/png"
