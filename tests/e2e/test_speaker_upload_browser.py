"""A speaker uploads in Chromium, the network drops mid-way, another browser resumes; item ready.

Then the speaker's interpretation audio arrives over the same protocol, and the session's
broadcast plays both: the uploaded speech's tone in English, the interpretation's in French.
"""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import av
import httpx
import imageio_ffmpeg
import numpy
import pytest
import uvicorn

from summitcast.app import create_app
from summitcast.config import Settings
from summitcast.domain.accounts import Role
from summitcast.domain.uploads import crc32c_digest, file_checksum
from summitcast.media.testclips import Tone, make_clip
from summitcast.services import broadcast, programme, speakers
from summitcast.services.accounts import Actor
from summitcast.storage.database import Database
from summitcast.storage.tables import Item, ItemMedia, Upload
from tests.conftest import grant, make_summit, make_user
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.e2e.conftest import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
CHUNK = 32 * 1024
SPEECH_HZ = 660  # the uploaded speech's tone: the broadcast's English track must carry it
FRENCH_HZ = 880  # the uploaded French interpretation's tone


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
        # The session is broadcast at the end: a tiny, fast ladder on free ports.
        broadcast_workers=True,
        broadcast_ladder="small",
        broadcast_fps=15,
        broadcast_preset="ultrafast",
        broadcast_min_free_mb=0,
        ingest_rtmp_port=free_port(),
        ingest_srt_port=_free_udp_port(),
        broadcast_max_sessions=2,  # random base ports: keep the refused-overlap ranges small
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


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
        imageio_ffmpeg.get_ffmpeg_exe(),
        tmp_path / "my talk.mp4",
        duration_s=4.0,
        text="Ana",
        tones=(Tone(SPEECH_HZ),),
    )
    expected = file_checksum(clip.read_bytes())
    assert clip.stat().st_size > 5 * CHUNK
    link = f"{base}/speak/{token}"
    sent: list[int] = []
    checksums: list[str] = []

    def record(route: Route) -> None:
        if route.request.method == "PATCH":
            checksums.append(route.request.headers.get("upload-checksum", ""))
        route.continue_()

    def drop_after_three(route: Route) -> None:
        if route.request.method == "PATCH":
            sent.append(1)
            checksums.append(route.request.headers.get("upload-checksum", ""))
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
            page.route("**/uploads/**", record)
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
    # Every chunk the page sent carried its CRC-32C, and the server checked it (a wrong
    # one is refused as damaged, and the upload would not have finished).
    assert len(checksums) > 5
    assert all(c.startswith("crc32c ") and len(base64.b64decode(c[7:])) == 4 for c in checksums)

    # The speaker's French interpretation, over the same protocol the page speaks.
    french = make_clip(
        imageio_ffmpeg.get_ffmpeg_exe(),
        tmp_path / "french.m4a",
        duration_s=4.0,
        tones=(Tone(FRENCH_HZ, "fra"),),
        width=64,
        height=36,
    )
    assert _send(base, token, french, kind="audio", language="fr") == "ready"
    with database.session() as db:
        media = {(m.kind, m.language) for m in db.query(ItemMedia).filter_by(item_id=item_id)}
    assert media == {("programme", ""), ("audio", "fr")}

    # The producer starts the session through the broadcast service; the worker plays it.
    producer = _producer(database)
    session_id = _start_broadcast(database, producer, item_id)
    hls = f"{base}/hls/browser/{session_id}"
    on_air = f"{base}/s/browser/sessions/{session_id}/on-air.json"
    assert httpx.get(on_air, timeout=5).json()["on_air"] == "Keynote"
    _wait_for_segments(hls, 3)
    _end_broadcast(database, producer, session_id, f"{hls}/audio_en/index.m3u8")
    assert round(_dominant_hz(f"{hls}/audio_en/index.m3u8", 3.5), -1) == SPEECH_HZ
    assert round(_dominant_hz(f"{hls}/audio_fr/index.m3u8", 3.5), -1) == FRENCH_HZ
    with av.open(f"{hls}/360p/index.m3u8") as container:
        frame = next(container.decode(video=0))
    assert (frame.width, frame.height) == (640, 360)


def _send(base: str, token: str, path: Path, *, kind: str, language: str) -> str:
    """Upload a file as upload.js does (chunks with checksums); wait for its checks to end."""
    data = path.read_bytes()
    with httpx.Client(base_url=base, timeout=30) as client:
        created = client.post(
            f"/speak/{token}/uploads",
            json={"size": len(data), "kind": kind, "language": language, "filename": path.name},
        )
        assert created.status_code == 201, created.text
        url = created.json()["url"]
        for offset in range(0, len(data), CHUNK):
            part = data[offset : offset + CHUNK]
            digest = base64.b64encode(crc32c_digest(part)).decode()
            sent = client.patch(
                url,
                content=part,
                headers={"Upload-Offset": str(offset), "Upload-Checksum": f"crc32c {digest}"},
            )
            assert sent.status_code == 204, sent.text
        deadline = time.monotonic() + 60
        while (state := client.get(url).json()["state"]) in ("checking", "processing"):
            assert time.monotonic() < deadline, "the checks never finished"
            time.sleep(0.2)
    return str(state)


def _producer(database: Database) -> Actor:
    user = make_user(database, "producer@example.org")
    with database.session() as db:
        grant(database, user, programme.get_summit(db, "browser"), Role.PRODUCER)
    return Actor(user.id, False)


def _start_broadcast(database: Database, actor: Actor, item_id: int) -> int:
    """Start the item's session with its first item, as the control room's button does."""
    with database.session() as db:
        summit = programme.get_summit(db, "browser")
        session_id = db.get(Item, item_id).session_id  # type: ignore[union-attr]
        broadcast.start_session(db, actor, summit, session_id, countdown=False)
    return session_id


def _end_broadcast(database: Database, actor: Actor, session_id: int, playlist: str) -> None:
    """End the session and wait until its playlists are closed."""
    with database.session() as db:
        broadcast.end_session(db, actor, programme.get_summit(db, "browser"), session_id)
    deadline = time.monotonic() + 30
    while "#EXT-X-ENDLIST" not in httpx.get(playlist, timeout=5).text:
        assert time.monotonic() < deadline, "the encoder never closed its playlists"
        time.sleep(0.2)


def _wait_for_segments(hls: str, count: int) -> None:
    """Wait until the English audio playlist lists count segments."""
    deadline = time.monotonic() + 60
    while True:
        response = httpx.get(f"{hls}/audio_en/index.m3u8", timeout=5)
        if response.status_code == 200 and response.text.count("#EXTINF") >= count:
            return
        assert time.monotonic() < deadline, "the broadcast never wrote its segments"
        time.sleep(0.3)


def _dominant_hz(url: str, until_s: float) -> float:
    """The loudest frequency of the first until_s seconds of an audio rendition."""
    with av.open(url) as container:
        chunks = []
        for frame in container.decode(audio=0):
            if frame.time is not None and frame.time > until_s:
                break
            chunks.append(frame.to_ndarray()[0])
        rate = container.streams.audio[0].rate
    samples = numpy.concatenate(chunks)
    spectrum = numpy.abs(numpy.fft.rfft(samples))
    return float(numpy.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()])
