"""Publishing live from the report page; the public page and its JSON list the signed heads."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from summitcast.audit.live import PublishedHead
from summitcast.audit.verify import verify_log
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
