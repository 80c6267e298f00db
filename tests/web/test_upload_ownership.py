"""An upload belongs to the speaker whose link started it: a co-speaker of the item gets 404."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import imageio_ffmpeg
import pytest
from fastapi.testclient import TestClient

from summitcast.domain.accounts import Role
from summitcast.domain.uploads import crc32c_digest
from summitcast.media.testclips import make_clip
from summitcast.services import programme, speakers
from summitcast.storage.database import Database
from summitcast.storage.tables import Item, ItemMedia, Notice, Upload
from tests.conftest import grant, log_in, make_summit, make_user
from tests.web.test_speaker_portal import _drain, _upload

pytestmark = pytest.mark.integration

CHUNK = 64 * 1024
HEAD = b"\x00\x00\x00\x18ftypmp42"
DATA = (HEAD + bytes(range(256)) * (2 * CHUNK // 256))[: CHUNK + 5000]
NO_SUCH_UPLOAD = {"detail": "No such upload."}


@pytest.fixture
def settings(settings):  # type: ignore[no-untyped-def]
    """Small chunks and programme format (real ffmpeg stays quick); no background worker."""
    return settings.model_copy(
        update={
            "programme_width": 320,
            "programme_height": 180,
            "programme_fps": 15,
            "normalise_preset": "ultrafast",
            "upload_chunk_bytes": CHUNK,
            "job_workers": False,
        }
    )


@dataclass(frozen=True)
class Panel:
    """One item with two speakers, each with a link; a second link of the first speaker."""

    item_id: int
    ana: str
    ben: str
    ana_again: str  # a re-issued link of Ana's to the same item


def _panel(database: Database, secret: bytes) -> Panel:
    make_summit(database, "panel")
    with database.session() as db:
        summit = programme.get_summit(db, "panel")
        session = programme.add_session(
            db,
            summit,
            programme.SessionInput(
                title="Opening",
                planned_start=datetime(2027, 7, 17, 10, tzinfo=UTC),
                planned_end=datetime(2027, 7, 17, 11, tzinfo=UTC),
            ),
        )
        item = programme.add_item(db, session, programme.ItemInput(title="Panel"))
        ana = programme.add_speaker(db, summit, programme.SpeakerInput(name="Ana Lima"))
        ben = programme.add_speaker(db, summit, programme.SpeakerInput(name="Ben Okafor"))
        links = [
            speakers.invite_speaker(db, summit, item, who.id, valid_days=30)
            for who in (ana, ben, ana)
        ]
        tokens = [speakers.invitation_token(link, secret) for link in links]
        return Panel(item.id, *tokens)


def _secret(app) -> bytes:  # type: ignore[no-untyped-def]
    return app.state.settings.secret_key.get_secret_value().encode()


def _chunk_headers(offset: int, part: bytes) -> dict[str, str]:
    digest = base64.b64encode(crc32c_digest(part)).decode()
    return {"Upload-Offset": str(offset), "Upload-Checksum": f"crc32c {digest}"}


def _start(client: TestClient, token: str) -> str:
    """Create an upload and send its first chunk; its public id."""
    created = client.post(
        f"/speak/{token}/uploads", json={"size": len(DATA), "filename": "mine.mp4"}
    )
    assert created.status_code == 201, created.text
    first = client.patch(
        created.json()["url"], content=DATA[:CHUNK], headers=_chunk_headers(0, DATA[:CHUNK])
    )
    assert first.status_code == 204, first.text
    upload_id: str = created.json()["id"]
    return upload_id


def test_co_speaker_cannot_see_or_touch_an_upload(
    client: TestClient, app, database: Database
) -> None:  # type: ignore[no-untyped-def]
    panel = _panel(database, _secret(app))
    upload_id = _start(client, panel.ana)
    url = f"/speak/{panel.ben}/uploads/{upload_id}"
    rest = DATA[CHUNK:]

    status = client.get(url)
    head = client.head(url)
    chunk = client.patch(url, content=rest, headers=_chunk_headers(CHUNK, rest))
    again = client.patch(url, content=DATA[:CHUNK], headers=_chunk_headers(0, DATA[:CHUNK]))
    poster = client.get(f"{url}/poster.jpg")
    preview = client.get(f"{url}/preview.mp4")
    portal = client.get(f"/speak/{panel.ben}")

    assert (status.status_code, status.json()) == (404, NO_SUCH_UPLOAD)
    assert (head.status_code, head.headers.get("upload-offset")) == (404, None)
    assert (chunk.status_code, chunk.json()) == (404, NO_SUCH_UPLOAD)
    assert (again.status_code, again.json()) == (404, NO_SUCH_UPLOAD)
    assert (poster.status_code, preview.status_code) == (404, 404)
    assert portal.status_code == 200
    assert upload_id not in portal.text
    assert "mine.mp4" not in portal.text
    with database.session() as db:
        stored = db.query(Upload).filter_by(public_id=upload_id).one()
        assert (stored.received, stored.state) == (CHUNK, "receiving")


def test_owner_goes_on_through_any_of_their_links(
    client: TestClient, app, database: Database
) -> None:  # type: ignore[no-untyped-def]
    panel = _panel(database, _secret(app))
    upload_id = _start(client, panel.ana)
    url = f"/speak/{panel.ana_again}/uploads/{upload_id}"
    rest = DATA[CHUNK:]

    status = client.get(url)
    last = client.patch(url, content=rest, headers=_chunk_headers(CHUNK, rest))
    portal = client.get(f"/speak/{panel.ana_again}")

    assert (status.status_code, status.json()["offset"]) == (200, CHUNK)
    assert (last.status_code, last.headers["upload-state"]) == (204, "checking")
    assert f'data-upload-id="{upload_id}"' in portal.text


def test_each_speaker_lists_their_own_and_the_organiser_all(
    client: TestClient, app, database: Database
) -> None:  # type: ignore[no-untyped-def]
    panel = _panel(database, _secret(app))
    anas = _start(client, panel.ana)
    bens = _start(client, panel.ben)
    user = make_user(database, "org@example.org")
    with database.session() as db:
        summit = programme.get_summit(db, "panel")
    grant(database, user, summit, Role.ORGANISER)

    ana_page = client.get(f"/speak/{panel.ana}").text
    ben_page = client.get(f"/speak/{panel.ben}").text
    ben_own = client.get(f"/speak/{panel.ben}/uploads/{bens}")
    log_in(client, "org@example.org")
    organiser_page = client.get(f"/backstage/s/panel/items/{panel.item_id}/speaker").text

    assert (anas in ana_page, bens in ana_page) == (True, False)
    assert (anas in ben_page, bens in ben_page) == (False, True)
    assert ben_own.status_code == 200
    assert (anas in organiser_page, bens in organiser_page) == (True, True)


def test_co_speakers_file_waits_on_standby_until_the_organiser_chooses_it(
    client: TestClient, app, database: Database, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    panel = _panel(database, _secret(app))
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    anas = make_clip(ffmpeg, tmp_path / "ana.mp4", duration_s=1.0).read_bytes()
    bens = make_clip(ffmpeg, tmp_path / "ben.mp4", duration_s=1.0, width=160, height=90)
    ana_url = _upload(client, panel.ana, anas, chunk=CHUNK)
    ben_url = _upload(client, panel.ben, bens.read_bytes(), chunk=CHUNK)
    ana_id, ben_id = ana_url.rsplit("/", 1)[1], ben_url.rsplit("/", 1)[1]
    _drain(app)

    def states() -> tuple[str, str, str, str]:
        with database.session() as db:
            by_id = {u.public_id: u for u in db.query(Upload)}
            media = db.query(ItemMedia).filter_by(item_id=panel.item_id, kind="programme").one()
            on_air = next(u.public_id for u in by_id.values() if u.output_path == media.path)
            item = db.get(Item, panel.item_id)
            return by_id[ana_id].state, by_id[ben_id].state, on_air, item.status

    after_upload = states()
    with database.session() as db:
        told = [n.message for n in db.query(Notice).order_by(Notice.id)]
    user = make_user(database, "org@example.org")
    with database.session() as db:
        grant(database, user, programme.get_summit(db, "panel"), Role.ORGANISER)
    csrf = log_in(client, "org@example.org")
    page = client.get(f"/backstage/s/panel/items/{panel.item_id}/speaker").text
    chosen = client.post(
        f"/backstage/s/panel/uploads/{ben_id}/choose",
        data={"csrf_token": csrf},
        follow_redirects=False,
    )
    after_choice = states()

    assert after_upload == ("ready", "standby", ana_id, "ready")
    assert told[-1] == (
        "Your video passed the checks. Another speaker of this item sent one that is in the "
        "programme already; the organisers choose which one goes on air."
    )
    assert re.search(r"from Ben Okafor · \d+ bytes", page)
    assert f"/backstage/s/panel/uploads/{ben_id}/choose" in page
    assert f"/backstage/s/panel/uploads/{ana_id}/choose" not in page  # in the programme
    assert chosen.status_code == 303
    assert after_choice == ("standby", "ready", ben_id, "ready")
