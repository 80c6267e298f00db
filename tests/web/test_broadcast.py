"""The control room in-process: status in words, only the valid buttons enabled, clear 409s."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from summitcast.app import create_app
from summitcast.config import Settings
from summitcast.domain.accounts import Role
from summitcast.domain.programme import ItemKind, ItemStatus
from summitcast.services import programme
from summitcast.storage.database import Database
from summitcast.web.routes.broadcast import remaining_words, reported_by
from tests.conftest import grant, log_in, make_summit, make_user

pytestmark = pytest.mark.integration

START = datetime(2027, 7, 17, 16, 0, tzinfo=UTC)  # 18:00 in Europe/Berlin (summer time)
EVERY = {"start", "start-now", "next", "hold", "live", "back", "end"}


class ControlRoom(HTMLParser):
    """The buttons (enabled or not) and the status element of a rendered control room."""

    def __init__(self) -> None:
        super().__init__()
        self.buttons: dict[str, bool] = {}  # data-action -> enabled
        self.forms: list[str] = []
        self.status: dict[str, str | None] = {}
        self.status_text = ""
        self._in_status = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "form" and "data-control-form" in found:
            self.forms.append(str(found["action"]))
        if tag == "button" and found.get("data-action"):
            self.buttons[str(found["data-action"])] = "disabled" not in found
        if found.get("data-field") == "status":
            self.status, self._in_status = found, True

    def handle_data(self, data: str) -> None:
        if self._in_status:
            self.status_text += data

    def handle_endtag(self, tag: str) -> None:
        self._in_status = False

    @property
    def enabled(self) -> set[str]:
        """The actions whose button can be pressed."""
        return {action for action, enabled in self.buttons.items() if enabled}


def _producer_in_room(client: TestClient, database: Database) -> tuple[str, str]:
    """A producer logged in, and the control room of a two-item session; (url, csrf)."""
    summit = make_summit(database)
    producer = make_user(database, "producer@example.org")
    grant(database, producer, summit, Role.PRODUCER)
    with database.session() as db:
        row = programme.get_summit(db, summit.slug)
        session = programme.add_session(
            db,
            row,
            programme.SessionInput(
                title="Opening", planned_start=START, planned_end=START + timedelta(hours=1)
            ),
        )
        for title in ("Welcome", "Keynote"):
            programme.add_item(
                db,
                session,
                programme.ItemInput(
                    title=title,
                    planned_duration_s=90,
                    status=ItemStatus.READY,
                    kind=ItemKind.SPEECH,
                ),
            )
        session_id = session.id
    csrf = log_in(client, "producer@example.org")
    return f"/backstage/s/{summit.slug}/sessions/{session_id}/control", csrf


def _room(client: TestClient, url: str) -> ControlRoom:
    page = client.get(url)
    assert page.status_code == 200, page.text
    room = ControlRoom()
    room.feed(page.text)
    return room


def test_control_room_enables_exactly_the_valid_buttons_in_each_state(
    client: TestClient, database: Database
) -> None:
    url, csrf = _producer_in_room(client, database)
    on_air = {"next", "hold", "live", "end"}
    steps = [
        (None, "idle", "Not started", {"start", "start-now"}),
        ("start", "countdown", "Countdown to 18:00:00", on_air),
        ("next", "on_air", "On air", on_air),
        ("hold", "hold", "Holding", {"next", "live", "back", "end"}),
        ("live", "on_air", "Live from the studio", on_air | {"back"}),
        ("back", "on_air", "On air", on_air),
        ("next", "on_air", "On air", on_air),
        ("next", "on_air", "On air", {"hold", "live", "end"}),  # the closing slate
        ("end", "ended", "Ended", {"start", "start-now"}),
    ]
    seen = []
    for press, *_ in steps:
        if press is not None:
            response = client.post(f"{url}/{press}", data={"csrf_token": csrf})
            assert response.status_code == 200, response.text  # 303 back to the room
        room = _room(client, url)
        assert set(room.buttons) == EVERY
        seen.append((press, room.status["data-status"], room.status_text.strip(), room.enabled))
    assert seen == steps
    assert room.forms == [f"{url}/{action}" for action in room.buttons]


@pytest.mark.parametrize(
    ("presses", "refused", "message"),
    [
        ((), "hold", "This session is not on air: start it first."),
        ((), "next", "This session is not on air: start it first."),
        (("start-now",), "start", "already on air: end it before starting it again"),
        (("start-now",), "back", "The programme is already on air"),
        (("start-now", "hold"), "hold", "already holding"),
        (("start-now", "next", "next"), "next", "there is no next item"),
        (("start-now", "end"), "end", "This session is not on air: start it first."),
    ],
)
def test_invalid_press_is_a_409_with_what_to_do(
    client: TestClient, database: Database, presses: tuple[str, ...], refused: str, message: str
) -> None:
    url, csrf = _producer_in_room(client, database)
    for press in presses:
        assert client.post(f"{url}/{press}", data={"csrf_token": csrf}).status_code == 200

    page = client.post(f"{url}/{refused}", data={"csrf_token": csrf})
    script = client.post(
        f"{url}/{refused}", data={"csrf_token": csrf}, headers={"accept": "application/json"}
    )

    assert page.status_code == 409
    assert message in page.text
    assert script.status_code == 409
    assert message in script.json()["detail"]
    assert refused not in _room(client, url).enabled


def test_press_asking_for_json_answers_the_new_view_without_redirect(
    client: TestClient, database: Database
) -> None:
    url, csrf = _producer_in_room(client, database)

    started = client.post(
        f"{url}/start-now",
        data={"csrf_token": csrf},
        headers={"accept": "application/json"},
        follow_redirects=False,
    )
    polled = client.get(f"{url}/health.json")

    assert started.status_code == 200
    view = started.json()
    assert (view["status"], view["status_text"], view["on_air"], view["next"]) == (
        "on_air",
        "On air",
        "Welcome",
        "Keynote",
    )
    assert view["allowed"] == ["end", "hold", "live", "next"]
    assert (view["current_index"], view["cued_index"]) == (0, None)
    assert 0 < view["remaining_s"] <= 90  # the item's 90 s, counted from when it went on air
    assert view["remaining_text"].endswith(" left")
    assert view["reported_by"] == "No broadcast worker is running this session."
    assert polled.headers["cache-control"] == "no-store"
    assert {k: polled.json()[k] for k in ("status", "allowed", "current_index")} == {
        "status": "on_air",
        "allowed": ["end", "hold", "live", "next"],
        "current_index": 0,
    }


def test_press_without_csrf_token_is_refused(client: TestClient, database: Database) -> None:
    url, _csrf = _producer_in_room(client, database)
    response = client.post(f"{url}/start-now", headers={"accept": "application/json"})
    assert response.status_code == 403
    assert _room(client, url).status["data-status"] == "idle"


def test_held_item_is_cued_not_on_air(client: TestClient, database: Database) -> None:
    url, csrf = _producer_in_room(client, database)
    for press in ("start-now", "next", "hold"):
        client.post(f"{url}/{press}", data={"csrf_token": csrf})

    view = client.get(f"{url}/health.json").json()

    assert (view["current_index"], view["cued_index"], view["remaining_s"]) == (None, 1, None)
    assert (view["on_air"], view["next"]) == ("We will be right back", "Keynote")


def test_live_cut_names_the_cued_item_as_next(client: TestClient, database: Database) -> None:
    url, csrf = _producer_in_room(client, database)
    for press in ("start-now", "next", "live"):
        client.post(f"{url}/{press}", data={"csrf_token": csrf})

    view = client.get(f"{url}/health.json").json()

    # "Back to programme" plays the cued item (Keynote) from its start.
    assert (view["on_air"], view["next"], view["cued_index"]) == (
        "Live from the studio",
        "Keynote",
        1,
    )


def test_reported_by_says_whose_worker_and_how_long_ago() -> None:
    here = socket.gethostname()
    assert reported_by({"node": f"{here}:1"}, f"{here}:1") == (
        "Reported by this machine's broadcast worker, just now"
    )
    assert reported_by({"node": f"{here}:2", "published_s_ago": 2.0}, f"{here}:1") == (
        "Reported by another broadcast worker on this machine, 2 s ago"
    )
    assert reported_by({"node": "encoder-7:99", "published_s_ago": 1.5}, f"{here}:1") == (
        "Reported by the broadcast worker on encoder-7, 1.5 s ago"
    )
    assert reported_by(None, "x:1") == "No broadcast worker is running this session."


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(83.4, "1:23 left"), (0.2, "0:00 left"), (3725, "1:02:05 left"), (-12.6, "over by 0:13")],
)
def test_remaining_words(seconds: float, words: str) -> None:
    assert remaining_words(seconds) == words


def test_control_room_gives_the_studio_both_encoders_ingest(
    settings: Settings, database: Database
) -> None:
    paired = settings.model_copy(
        update={
            "encoder_names": ["a", "b"],
            "encoder_ingest_hosts": ["ingest-a.example", "ingest-b.example"],
        }
    )
    with TestClient(create_app(paired, database=database), base_url="http://127.0.0.1") as client:
        url, _csrf = _producer_in_room(client, database)
        page = client.get(url)

    assert page.status_code == 200
    assert "Second encoder: send the same signal here too" in page.text
    assert "rtmp://ingest-a.example:" in page.text
    assert "rtmp://ingest-b.example:" in page.text
    assert "srt://ingest-b.example:" in page.text


def test_control_room_of_one_encoder_has_no_second_ingest(
    client: TestClient, database: Database
) -> None:
    url, _csrf = _producer_in_room(client, database)

    assert "Second encoder" not in client.get(url).text
