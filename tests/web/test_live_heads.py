"""Publishing live from the report page; the public page and its JSON list the signed heads."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from summitcast.audit.live import PublishedHead
from summitcast.audit.verify import verify_log
from summitcast.config import Settings
from summitcast.domain.accounts import Role
from summitcast.services.attendance import AttendanceRecorder
from summitcast.storage.database import Database
from summitcast.storage.tables import Location
from tests.conftest import grant, log_in, make_user
from tests.services.test_attendance import T0, Clock, count_beats, make_world
from tests.test_no_ip_addresses import CLIENT_V4, addresses_in
from tests.web.test_report import organiser  # noqa: F401 - the fixture is shared

pytestmark = pytest.mark.integration


def test_live_publishing_lists_heads_and_finishes_into_the_published_log(
    client: TestClient,
    organiser: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    started = client.post(
        "/backstage/s/test-summit/attendance/live",
        data={"csrf_token": organiser},
        follow_redirects=False,
    )
    again = client.post("/backstage/s/test-summit/attendance/live", data={"csrf_token": organiser})
    page = client.get("/s/test-summit/attendance")
    live = client.get("/s/test-summit/attendance/heads.json").json()
    live_log = client.get("/s/test-summit/attendance/live-log.jsonl")
    report = client.get("/backstage/s/test-summit/report")

    client.post("/backstage/s/test-summit/attendance/publish", data={"csrf_token": organiser})
    final = client.get("/s/test-summit/attendance/heads.json").json()
    published = client.get("/s/test-summit/attendance/log.jsonl")
    path = tmp_path / "log.jsonl"
    path.write_bytes(published.content)
    key = base64.b64decode(client.get("/s/test-summit/attendance/public-key.txt").text)

    assert started.status_code == 303
    assert again.status_code == 409
    assert 'id="heads-table"' in page.text
    assert 'id="not-published"' in page.text
    # The summit's sessions lie ahead: no bucket is closed yet, the first head is empty.
    assert [h["tree_size"] for h in live["heads"]] == [0]
    assert live["public_key"] == base64.b64encode(key).decode()
    assert live_log.text.splitlines()[-1].startswith('{"type":"head"')
    assert 'id="live-on"' in report.text
    heads = [PublishedHead.from_json(h) for h in final["heads"]]
    assert [h.head.tree_size for h in heads] == [0, 27]
    assert all(h.head.signature_valid(key) for h in heads)
    assert verify_log(path, key).ok
    assert published.content.startswith(live_log.content)


def test_heads_json_without_live_publishing_is_not_found(
    client: TestClient,
    organiser: str,  # noqa: F811
) -> None:
    response = client.get("/s/test-summit/attendance/heads.json")

    assert response.status_code == 404
    assert "not started publishing attendance live" in response.text


def test_live_files_carry_no_address_nor_location_and_suppress_small_countries(
    app,  # type: ignore[no-untyped-def]
    settings: Settings,
    database: Database,
) -> None:
    # Seven FR and two KE hosts counted in three buckets, as in test_report's fixture.
    world = make_world(database, settings, [("FR", "public")] * 7 + [("KE", "country")] * 2)
    clock = Clock(T0)
    recorder = AttendanceRecorder(settings.attendance_bucket_s, clock)
    for location in world.locations:
        for bucket in range(3):
            count_beats(recorder, clock, location, [T0 + 300 * bucket + s for s in (0, 10, 20)])
    recorder.flush_now(database)
    grant(database, make_user(database, "org@example.org"), world.summit, Role.ORGANISER)
    with TestClient(app, base_url="http://summit.test", client=(CLIENT_V4, 51234)) as client:
        token = log_in(client, "org@example.org")
        client.post("/backstage/s/test-summit/attendance/live", data={"csrf_token": token})
        client.post("/backstage/s/test-summit/attendance/publish", data={"csrf_token": token})
        heads = client.get("/s/test-summit/attendance/heads.json").text
        log = client.get("/s/test-summit/attendance/log.jsonl").text
    # The log, its snapshot, its heads and its lock file (the index is SQLite, binary).
    files = [
        p.read_text(encoding="utf-8")
        for p in sorted(settings.attendance_dir.rglob("*.jsonl*"))
        if not p.name.endswith(".index")
    ]
    with database.session() as db:
        public_ids = list(db.scalars(select(Location.public_id)))
    entries = [
        entry
        for line in log.splitlines()
        if json.loads(line)["type"] == "bucket"
        for entry in json.loads(line)["entries"]
    ]

    assert len(files) == 4
    assert [found for text in [heads, log, *files] for found in addresses_in(text)] == []
    assert not any(public_id in text for public_id in public_ids for text in [log, *files])
    # Two KE hosts are fewer than k=5: logged as ZZ, never as KE.
    assert sorted({entry["country"] for entry in entries}) == ["FR", "ZZ"]
