"""The JSON API: CRUD over the programme, validation errors, imports, the OpenAPI document."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from summitcast.domain.accounts import Role
from summitcast.storage.database import Database
from tests.conftest import grant, log_in, make_summit, make_user
from tests.interchange.counting import FIXTURES, count_json

pytestmark = pytest.mark.integration


@pytest.fixture
def api(client: TestClient, database: Database) -> TestClient:
    """A client logged in as organiser of 'test-summit', sending the CSRF header."""
    user = make_user(database, "org@example.org")
    grant(database, user, make_summit(database), Role.ORGANISER)
    client.headers["x-csrf-token"] = log_in(client, "org@example.org")
    return client


def test_openapi_document_lists_programme_endpoints(client: TestClient) -> None:
    document = client.get("/api/openapi.json").json()
    assert "/api/summits/{slug}/sessions/{session_id}/items" in document["paths"]
    assert "/api/summits/{slug}/schedule" in document["paths"]


def test_build_programme_through_api(api: TestClient) -> None:
    session = api.post(
        "/api/summits/test-summit/sessions",
        json={
            "title": "Opening",
            "planned_start": "2027-07-17T18:00:00+02:00",
            "planned_end": "2027-07-17T19:00:00+02:00",
        },
    )
    assert session.status_code == 201, session.text
    sid = session.json()["id"]
    speaker = api.post(
        "/api/summits/test-summit/speakers", json={"name": "ليلى الحسيني", "country": "JO"}
    ).json()
    items = [
        api.post(
            f"/api/summits/test-summit/sessions/{sid}/items",
            json={"title": t, "planned_duration_s": 300},
        ).json()["id"]
        for t in ("A", "B", "C")
    ]
    linked = api.put(
        f"/api/summits/test-summit/items/{items[1]}/speakers", json={"speakers": [speaker["id"]]}
    )
    reordered = api.put(
        f"/api/summits/test-summit/sessions/{sid}/order",
        json={"order": [items[2], items[0], items[1]]},
    )

    assert linked.json()["speakers"] == [{"id": speaker["id"], "name": "ليلى الحسيني"}]
    assert [i["title"] for i in reordered.json()["items"]] == ["C", "A", "B"]
    public = api.get("/api/summits/test-summit/sessions").json()
    assert [i["position"] for i in public[0]["items"]] == [0, 1, 2]


def test_naive_datetime_is_refused_with_field_name(api: TestClient) -> None:
    response = api.post(
        "/api/summits/test-summit/sessions",
        json={
            "title": "X",
            "planned_start": "2027-07-17T18:00:00",
            "planned_end": "2027-07-17T19:00:00+02:00",
        },
    )
    assert response.status_code == 422
    assert any("planned_start" in problem for problem in response.json()["detail"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {
                "slug": "Bad Slug!",
                "title": "T",
                "time_zone": "UTC",
                "start_date": "2027-01-01",
                "end_date": "2027-01-02",
            },
            "slug",
        ),
        (
            {
                "slug": "good-slug",
                "title": "T",
                "time_zone": "Nowhere/Land",
                "start_date": "2027-01-01",
                "end_date": "2027-01-02",
            },
            "time_zone",
        ),
        (
            {
                "slug": "good-slug",
                "title": "T",
                "time_zone": "UTC",
                "start_date": "2027-01-05",
                "end_date": "2027-01-02",
            },
            "end_date",
        ),
    ],
)
def test_create_summit_with_bad_field_names_it(api: TestClient, body: dict, field: str) -> None:  # type: ignore[type-arg]
    response = api.post("/api/summits", json=body)
    assert response.status_code == 422
    assert response.json()["field"] == field
    assert api.get("/api/summits/good-slug").status_code == 404


def test_item_of_other_summit_is_404_through_api(api: TestClient, database: Database) -> None:
    make_summit(database, "other-summit")
    response = api.get("/api/summits/other-summit/items/999")
    assert response.status_code == 404
    assert response.json()["detail"] == "There is no such item in this summit."


def test_schedule_import_via_api_then_export_ics(api: TestClient) -> None:
    data = (FIXTURES / "pretalx-democon-day1.json").read_bytes()
    imported = api.post(
        "/api/summits/test-summit/schedule",
        content=data,
        headers={"content-type": "application/json"},
    )
    assert imported.status_code == 200, imported.text
    assert imported.json()["items"] == count_json("pretalx-democon-day1.json").items
    ics = api.get("/api/summits/test-summit/schedule?format=ics")
    assert ics.headers["content-type"].startswith("text/calendar")
    assert ics.text.count("BEGIN:VEVENT") == count_json("pretalx-democon-day1.json").items


def test_schedule_import_of_broken_json_is_422_with_line(api: TestClient) -> None:
    response = api.post(
        "/api/summits/test-summit/schedule",
        content=b'{"schedule": [1, 2,,]}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert "line 1" in response.json()["detail"]


def test_schedule_import_over_cap_is_413(api: TestClient) -> None:
    response = api.post(
        "/api/summits/test-summit/schedule",
        content=b" " * (50 * 1024 * 1024),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413


def test_malformed_json_body_is_422_not_500(api: TestClient) -> None:
    response = api.post(
        "/api/summits/test-summit/speakers",
        content=b"{nope",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
