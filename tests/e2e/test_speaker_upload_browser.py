"""A speaker uploads in Chromium, the network drops mid-way, another browser resumes; item ready."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import imageio_ffmpeg
import pytest
import uvicorn

from summitcast.app import create_app
from summitcast.config import Settings
from summitcast.media.testclips import make_clip
from summitcast.services import programme, speakers
from summitcast.storage.database import Database
from summitcast.storage.tables import Item, Upload
from tests.conftest import make_summit
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.e2e.conftest import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
CHUNK = 32 * 1024


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Database, Settings]]:
    """The real app under uvicorn in a thread, with its job worker, on a free port."""
    port = free_port()
    settings = Settings(
        environment="test",
        secret_key="test-secret-" + "x" * 32,
        data_dir=tmp_path / "data",
        base_url=f"http://127.0.0.1:{port}",
        programme_width=320,
        programme_height=180,
        programme_fps=15,
        normalise_preset="ultrafast",
        upload_chunk_bytes=CHUNK,
        job_poll_interval_s=0.2,
        broadcast_workers=False,
    )
    database = Database(settings.effective_database_url)
    database.upgrade()
    config = uvicorn.Config(
        create_app(settings, database=database), host="127.0.0.1", port=port, log_level="warning"
    )
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not instance.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", database, settings
    instance.should_exit = True
    thread.join(timeout=20)
    database.dispose()


def _invite(database: Database, settings: Settings) -> tuple[str, int]:
    make_summit(database, "browser")
    with database.session() as db:
        summit = programme.get_summit(db, "browser")
        session = programme.add_session(
            db,
            summit,
            programme.SessionInput(
                title="Opening",
                planned_start=datetime(2027, 7, 17, 10, tzinfo=UTC),
                planned_end=datetime(2027, 7, 17, 11, tzinfo=UTC),
            ),
        )
        item = programme.add_item(
            db, session, programme.ItemInput(title="Keynote", planned_duration_s=300)
        )
        speaker = programme.add_speaker(db, summit, programme.SpeakerInput(name="Ana Lima"))
        invitation = speakers.invite_speaker(db, summit, item, speaker.id, valid_days=5)
        secret = settings.secret_key.get_secret_value().encode()
        return speakers.invitation_token(invitation, secret), item.id


def test_interrupted_upload_resumes_in_another_browser_and_item_turns_ready(
    server: tuple[str, Database, Settings], tmp_path: Path
) -> None:
    require_chromium()
    from playwright.sync_api import Route, sync_playwright

    base, database, settings = server
    token, item_id = _invite(database, settings)
    clip = make_clip(
        imageio_ffmpeg.get_ffmpeg_exe(), tmp_path / "my talk.mp4", duration_s=4.0, text="Ana"
    )
    expected = hashlib.sha256(clip.read_bytes()).hexdigest()
    assert clip.stat().st_size > 5 * CHUNK
    link = f"{base}/speak/{token}"
    sent: list[int] = []

    def drop_after_three(route: Route) -> None:
        if route.request.method == "PATCH":
            sent.append(1)
            if len(sent) > 3:
                route.abort("internetdisconnected")  # the speaker's connection drops
                return
        route.continue_()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            first = browser.new_context()
            page = first.new_page()
            page.route("**/uploads/**", drop_after_three)
            page.goto(link)
            page.set_input_files("#upload-file", str(clip))
            page.click("#upload-start")
            # A text locator, not wait_for_function: the page's CSP forbids eval.
            page.locator("#upload-status", has_text="Connection lost").wait_for(timeout=20_000)
            first.close()  # the tab is closed for good
            with database.session() as db:
                partial = db.query(Upload).one()
                assert (partial.state, partial.received) == ("receiving", 3 * CHUNK)

            second = browser.new_context()  # another browser session: no localStorage
            page = second.new_page()
            page.goto(link)
            assert "Choose the same file again to continue" in page.inner_text("#pending")
            page.set_input_files("#upload-file", str(clip))
            page.click("#upload-start")
            # The page reloads itself once the file is normalised; the preview appears.
            page.wait_for_selector("#preview", timeout=60_000)
            poster = page.get_attribute("#preview", "poster")
            assert poster is not None
            assert page.request.get(base + poster).headers["content-type"] == "image/jpeg"
            findings = page.inner_text("#uploads")
            second.close()
        finally:
            browser.close()

    with database.session() as db:
        upload = db.query(Upload).one()
        assert (upload.state, upload.sha256, upload.size) == (
            "ready",
            expected,
            clip.stat().st_size,
        )
        assert db.get(Item, item_id).status == "ready"
    assert "Length: 4 seconds (your slot: 5 minutes)." in findings
