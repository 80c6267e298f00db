"""Organiser pages through real forms, and the public programme pages."""

from __future__ import annotations

import io
import re

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from summitcast.domain.accounts import Role
from summitcast.services import programme
from summitcast.storage.database import Database
from tests.conftest import csrf_of, grant, log_in, make_summit, make_user

pytestmark = pytest.mark.integration


@pytest.fixture
def organiser(client: TestClient, database: Database) -> str:
    """Log in an organiser of 'test-summit'; returns the CSRF token."""
    user = make_user(database, "org@example.org")
    grant(database, user, make_summit(database), Role.ORGANISER)
    return log_in(client, "org@example.org")


def _post(client: TestClient, url: str, token: str, **fields: object):  # type: ignore[no-untyped-def]
    return client.post(url, data={"csrf_token": token, **fields}, follow_redirects=False)


def test_organiser_builds_a_programme_through_forms(client: TestClient, organiser: str) -> None:
    created = _post(
        client,
        "/backstage/s/test-summit/sessions",
        organiser,
        title="Opening night",
        planned_start="2027-07-17T18:00",
        planned_end="2027-07-17T19:30",
    )
    assert created.status_code == 303
    session_url = created.headers["location"]
    for title, minutes in [("Welcome", "10"), ("Keynote", "25:00"), ("Song", "6")]:
        added = _post(client, f"{session_url}/items", organiser, title=title, duration=minutes)
        assert added.status_code == 303
    speaker = _post(
        client,
        "/backstage/s/test-summit/speakers",
        organiser,
        name="陈晓岚",
        country="TW",
        role_line="Network lead",
    )
    assert speaker.status_code == 303

    page = client.get(session_url)
    assert page.status_code == 200
    assert [m for m in re.findall(r'data-item-id="(\d+)"', page.text)]
    ids = re.findall(r'data-item-id="(\d+)"', page.text)
    moved = _post(
        client, f"/backstage/s/test-summit/items/{ids[2]}/move", organiser, direction="up"
    )
    assert moved.status_code == 303

    public = client.get("/s/test-summit")
    assert public.status_code == 200
    assert "Opening night" in public.text
    order = re.findall(r"<li>(Welcome|Keynote|Song)", public.text)
    assert order == ["Welcome", "Song", "Keynote"]


def test_drag_order_post_reorders_run_of_show(
    client: TestClient, organiser: str, database: Database
) -> None:
    session_url = _post(
        client,
        "/backstage/s/test-summit/sessions",
        organiser,
        title="S",
        planned_start="2027-07-17T10:00",
        planned_end="2027-07-17T11:00",
    ).headers["location"]
    for title in "ABC":
        _post(client, f"{session_url}/items", organiser, title=title, duration="5")
    ids = re.findall(r'data-item-id="(\d+)"', client.get(session_url).text)

    response = _post(client, f"{session_url}/order", organiser, order=",".join(reversed(ids)))

    assert response.status_code == 303
    with database.session() as db:
        summit = programme.get_summit(db, "test-summit")
        session = programme.programme_of(db, summit)[0]
        assert [i.title for i in session.items] == ["C", "B", "A"]


def test_bad_form_input_gets_a_clear_422_and_stores_nothing(
    client: TestClient, organiser: str, database: Database
) -> None:
    response = _post(
        client,
        "/backstage/s/test-summit/sessions",
        organiser,
        title="Backwards",
        planned_start="2027-07-17T18:00",
        planned_end="2027-07-17T17:00",
    )
    assert response.status_code == 422
    assert "must end after it starts" in response.text
    with database.session() as db:
        assert programme.programme_of(db, programme.get_summit(db, "test-summit")) == []


def test_public_pages_show_times_in_summit_zone(client: TestClient, database: Database) -> None:
    make_summit(database)
    from datetime import UTC, datetime

    with database.session() as db:
        summit = programme.get_summit(db, "test-summit")
        session = programme.add_session(
            db,
            summit,
            programme.SessionInput(
                title="Morning",
                planned_start=datetime(2027, 7, 18, 8, tzinfo=UTC),
                planned_end=datetime(2027, 7, 18, 9, tzinfo=UTC),
            ),
        )
        item = programme.add_item(
            db, session, programme.ItemInput(title="Talk", planned_duration_s=600)
        )
        speaker = programme.add_speaker(
            db, summit, programme.SpeakerInput(name="Оксана", country="UA")
        )
        programme.set_item_speakers(db, item, [speaker.id])
        session_id, speaker_id = session.id, speaker.id

    page = client.get(f"/s/test-summit/sessions/{session_id}")
    assert page.status_code == 200
    assert 'datetime="2027-07-18T08:00:00+00:00"' in page.text
    assert ">10:00</time>" in page.text  # 08:00 UTC is 10:00 in Berlin in July
    speaker_page = client.get(f"/s/test-summit/speakers/{speaker_id}")
    assert "Оксана" in speaker_page.text
    assert "Ukraine" in speaker_page.text
    assert client.get("/s/test-summit/speakers").status_code == 200
    assert client.get("/s/no-such-summit").status_code == 404


def _png(width: int = 64, height: int = 64) -> bytes:
    out = io.BytesIO()
    image = Image.new("RGB", (width, height), (200, 30, 30))
    image.save(out, format="PNG")
    return out.getvalue()


def _speaker(client: TestClient, token: str) -> str:
    return _post(client, "/backstage/s/test-summit/speakers", token, name="P").headers["location"]


def test_photo_upload_is_reencoded_without_metadata(client: TestClient, organiser: str) -> None:
    url = _speaker(client, organiser)
    exif = Image.Exif()
    exif[0x010F] = "SecretCameraMaker"
    source = io.BytesIO()
    Image.new("RGB", (1600, 1200), (10, 120, 200)).save(source, format="JPEG", exif=exif)

    response = client.post(
        f"{url}/photo",
        data={"csrf_token": organiser},
        files={"photo": ("me.png", source.getvalue(), "image/png")},
        follow_redirects=False,
    )

    assert response.status_code == 303
    page = client.get(url).text
    name = re.search(r'src="/photos/([^"]+)"', page)
    assert name
    served = client.get(f"/photos/{name.group(1)}")
    assert served.headers["content-type"] == "image/jpeg"
    stored = Image.open(io.BytesIO(served.content))
    assert max(stored.size) == 800
    assert b"SecretCameraMaker" not in served.content


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"PK\x03\x04 zip file renamed", "must be a JPEG, PNG or WebP"),
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "cannot be read"),
    ],
)
def test_bad_photo_is_refused_with_message(
    client: TestClient, organiser: str, payload: bytes, message: str
) -> None:
    url = _speaker(client, organiser)
    response = client.post(
        f"{url}/photo",
        data={"csrf_token": organiser},
        files={"photo": ("x.jpg", payload, "image/jpeg")},
        follow_redirects=False,
    )
    assert response.status_code == 422
    assert message in response.text


def test_photo_bomb_is_refused(client: TestClient, organiser: str) -> None:
    url = _speaker(client, organiser)
    out = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(out, format="PNG")  # 100 Mpx in a few KiB
    response = client.post(
        f"{url}/photo",
        data={"csrf_token": organiser},
        files={"photo": ("bomb.png", out.getvalue(), "image/png")},
        follow_redirects=False,
    )
    assert response.status_code == 422
    assert "40 megapixels" in response.text


def test_import_page_imports_and_reports_counts(client: TestClient, organiser: str) -> None:
    from tests.interchange.counting import FIXTURES

    data = (FIXTURES / "summit-non-latin.xml").read_bytes()
    response = client.post(
        "/backstage/s/test-summit/import",
        data={"csrf_token": organiser},
        files={"file": ("summit.xml", data, "application/xml")},
    )
    assert response.status_code == 200
    assert "created" in response.text


def test_import_of_50_mib_file_is_refused_with_413(client: TestClient, organiser: str) -> None:
    response = client.post(
        "/backstage/s/test-summit/import",
        data={"csrf_token": organiser},
        files={"file": ("big.json", b" " * (50 * 1024 * 1024), "application/json")},
    )
    assert response.status_code == 413
    assert "MiB" in response.text


def test_login_is_rate_limited_per_client(client: TestClient, database: Database) -> None:
    token = csrf_of(client)
    # One guess at each of twelve accounts: no account's delay starts, the client's limit does.
    codes = [
        client.post(
            "/login",
            data={"email": f"victim{n}@example.org", "password": "guess", "csrf_token": token},
            follow_redirects=False,
        ).status_code
        for n in range(12)
    ]
    assert codes[:10] == [401] * 10
    assert codes[10:] == [429, 429]


def test_login_guesses_at_one_account_are_slowed(client: TestClient, database: Database) -> None:
    make_user(database, "victim@example.org")
    token = csrf_of(client)
    answers = [
        client.post(
            "/login",
            data={"email": "victim@example.org", "password": f"guess-{n}", "csrf_token": token},
            follow_redirects=False,
        )
        for n in range(5)
    ]
    # Three free tries, then the account's doubling delay refuses the next ones at once.
    assert [a.status_code for a in answers] == [401, 401, 401, 429, 429]
    assert int(answers[-1].headers["Retry-After"]) >= 1


def test_login_redirect_refuses_offsite_next(client: TestClient, database: Database) -> None:
    make_user(database, "u@example.org")
    token = csrf_of(client)
    response = client.post(
        "/login",
        data={
            "email": "u@example.org",
            "password": "correct horse battery staple",
            "csrf_token": token,
            "next": "//evil.example/",
        },
        follow_redirects=False,
    )
    assert response.headers["location"] == "/backstage"


def test_pages_carry_security_headers_and_no_third_party_assets(
    client: TestClient, database: Database
) -> None:
    make_summit(database)
    page = client.get("/s/test-summit")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert not re.search(r'(src|href)="(https?:)?//', page.text)


def test_organiser_edits_summit_settings_and_slug(
    client: TestClient, organiser: str, database: Database
) -> None:
    response = _post(
        client,
        "/backstage/s/test-summit",
        organiser,
        slug="renamed-summit",
        title="Renamed Summit",
        time_zone="America/Sao_Paulo",
        start_date="2027-07-17",
        end_date="2027-07-21",
        languages="en, pt",
    )
    assert response.status_code == 303
    with database.session() as db:
        summit = programme.get_summit(db, "renamed-summit")
        assert (summit.title, summit.time_zone, summit.languages) == (
            "Renamed Summit",
            "America/Sao_Paulo",
            ["en", "pt"],
        )
