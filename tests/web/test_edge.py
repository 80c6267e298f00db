"""The edge (web/edge.py): refusals before routing, error pages or JSON, the sampled 500."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from summitcast.app import create_app
from summitcast.config import Settings
from summitcast.storage.database import Database
from summitcast.web.edge import (
    MAX_PATH_BYTES,
    SERVER_ERROR,
    ErrorSampler,
    refusal,
)

pytestmark = pytest.mark.integration

HTML = {"accept": "text/html,application/xhtml+xml"}


# One app for the module, on SQLite: nothing here reaches the database's rules (the
# hostile walk runs on both databases), and each app start costs seconds on a loaded box.
@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    folder = tmp_path_factory.mktemp("edge")
    database = Database(f"sqlite:///{folder / 'summitcast.db'}")
    database.upgrade()
    settings = Settings(
        environment="test",
        secret_key="test-secret-" + "x" * 32,
        data_dir=folder / "data",
        database_url=database.url,
        auto_migrate=False,
        broadcast_workers=False,
    )
    yield _failing_app(create_app(settings, database=database))
    database.dispose()


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client


JSON = {"accept": "application/json"}


def _scope(path: str, query: bytes = b"") -> dict[str, object]:
    return {"type": "http", "path": path, "raw_path": path.encode(), "query_string": query}


def test_refusal_passes_ordinary_requests() -> None:
    assert refusal(_scope("/s/demo-summit/sessions/12", b"page=2&q=caf%C3%A9+bar")) is None
    assert refusal(_scope("/hls/demo/1/" + "x" * 200 + ".ts")) is None


def test_refusal_names_each_hostile_path_and_query() -> None:
    statuses = [
        (refusal(_scope(path, query)) or (200, ""))[0]
        for path, query in [
            ("/s/x\x00y/live", b""),
            ("/s/\x7f", b""),
            ("/a", b"q=%00"),
            ("/a", b"q=%1b%5b31m"),
            ("/photos/" + "a" * 300 + ".jpg", b""),
            ("/photos/" + "漢" * 90 + ".jpg", b""),  # 90 characters, 270 bytes
            ("/s/" + "a" * MAX_PATH_BYTES, b""),
            ("/a", b"q=" + b"x" * 5000),
        ]
    ]
    assert statuses == [400, 400, 400, 400, 404, 404, 414, 414]


def test_nul_in_a_path_answers_400_page_or_json(client: TestClient) -> None:
    page = client.get("/s/x%00y/live", headers=HTML)
    api = client.get("/api/summits/x%00y")
    photo = client.get("/photos/a%00.jpg")

    assert (page.status_code, api.status_code, photo.status_code) == (400, 400, 400)
    assert "<html" in page.text
    assert "control character" in page.text
    assert "control character" in api.json()["detail"]
    # Answered before the app's middleware: the security headers are there all the same.
    assert page.headers["x-frame-options"] == "DENY"
    assert "default-src 'self'" in page.headers["content-security-policy"]


def test_overlong_file_names_answer_404_and_long_paths_414(client: TestClient) -> None:
    assert client.get("/photos/" + "a" * 5000 + ".jpg").status_code == 414
    assert client.get("/photos/" + "a" * 1000 + ".jpg").status_code == 404
    assert client.get("/hls/demo/1/" + "a" * 1000 + ".ts").status_code == 404
    assert client.get("/hls/demo/1/" + "/".join(["a" * 200] * 9)).status_code == 404


def test_ids_past_the_database_integer_answer_422(client: TestClient) -> None:
    for bad in (2**31, 2**63, 2**64, 0, -1):
        response = client.get(f"/api/summits/demo/sessions/{bad}")
        assert response.status_code == 422, (bad, response.text)
        assert response.json()["detail"][0].startswith("path.session_id: ")


def test_unknown_route_answers_a_page_to_browsers_and_json_to_api_clients(
    client: TestClient,
) -> None:
    page = client.get("/no/such/page", headers=HTML)
    api = client.get("/api/no-such-thing")
    json_client = client.get("/no/such/page", headers=JSON)

    assert (page.status_code, api.status_code, json_client.status_code) == (404, 404, 404)
    assert page.headers["content-type"].startswith("text/html")
    assert "No such page." in page.text
    assert api.json() == {"detail": "Not Found"}
    assert json_client.json() == {"detail": "Not Found"}


def test_wrong_method_keeps_its_allow_header_on_the_page(client: TestClient) -> None:
    response = client.put("/login", headers=HTML)

    assert response.status_code == 405
    assert response.headers["content-type"].startswith("text/html")
    assert "GET" in response.headers["allow"]


def test_oversized_body_answers_413_page_to_browsers_and_json_to_api(
    client: TestClient, app: FastAPI
) -> None:
    limit = app.state.settings.max_import_bytes + 64 * 1024
    body = b"x" * (limit + 1)
    form = {"content-type": "application/x-www-form-urlencoded"}

    page = client.post("/backstage/s/demo/import", content=body, headers={**HTML, **form})
    api = client.post("/api/summits/demo/schedule", content=body, headers=form)

    assert (page.status_code, api.status_code) == (413, 413)
    assert page.headers["content-type"].startswith("text/html")
    assert "larger than" in page.text
    assert "larger than" in api.json()["detail"]


def _failing_app(app: FastAPI) -> FastAPI:
    """The app with a route that fails unexpectedly (RuntimeError or KeyError)."""

    @app.get("/boom/{kind}")
    def boom(kind: str) -> None:
        raise (RuntimeError if kind == "runtime" else KeyError)(f"secret-{kind}")

    return app


def test_unexpected_errors_answer_500_and_log_one_traceback_per_kind(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="summitcast.web.edge")
    answers = [client.get("/boom/runtime", headers=HTML) for _ in range(5)]
    answers.append(client.get("/boom/key", headers=JSON))

    assert [a.status_code for a in answers] == [500] * 6
    assert SERVER_ERROR in answers[0].text
    assert "secret" not in answers[0].text  # no exception text or traceback in the answer
    assert answers[-1].json() == {"detail": SERVER_ERROR}
    with_traceback = [r for r in caplog.records if r.exc_info]
    assert [r.exc_info[0] for r in with_traceback] == [RuntimeError, KeyError]  # type: ignore[index]
    assert "GET /boom/{kind}" in with_traceback[0].getMessage()


def test_sampler_summarises_the_errors_it_did_not_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="summitcast.web.edge")
    now = [0.0]
    sampler = ErrorSampler(window_s=60, clock=lambda: now[0])
    for second in range(0, 130, 10):  # 13 errors over 130 s
        now[0] = float(second)
        sampler.record(ValueError("x"), "GET /x")

    lines = [r.getMessage() for r in caplog.records]
    assert sampler.total == 13
    assert len([r for r in caplog.records if r.exc_info]) == 3  # at 0, 60 and 120 s
    assert [line for line in lines if "more like it" in line] == [
        "5 more like it (builtins.ValueError) in the 60 s after the last traceback",
        "5 more like it (builtins.ValueError) in the 60 s after the last traceback",
    ]
