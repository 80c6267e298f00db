"""Must show: a live speaker's RTMP push shows in the green room before it goes on air."""

from __future__ import annotations

import io
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from summitcast.services import programme, speakers
from summitcast.storage.database import Database
from summitcast.storage.tables import Item
from tests.e2e.broadcast_server import (
    FFMPEG,
    Broadcast,
    cmdlines_holding,
    ffmpeg_children,
    free_port,
    running_server,
)

pytestmark = pytest.mark.e2e


def _push(url: str, seconds: int, fmt: str = "flv") -> subprocess.Popen[bytes]:
    """A speaker's OBS: a tiny moving test picture and a tone, sent in real time."""
    return subprocess.Popen(
        [
            FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=10:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=660:duration={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-c:a", "aac",
            "-f", fmt, url,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait(timeout=10)


def _add_speaker(database: Database, slug: str, secret: bytes) -> tuple[int, str]:
    """A live speaker on the session's first item; returns their id and portal token."""
    with database.session() as db:
        summit = programme.get_summit(db, slug)
        speaker = programme.add_speaker(db, summit, programme.SpeakerInput(name="Ana Live"))
        item = db.query(Item).filter(Item.summit_id == summit.id).order_by(Item.id).first()
        assert item is not None
        invitation = speakers.invite_speaker(db, summit, item, speaker.id, valid_days=1)
        return speaker.id, speakers.invitation_token(invitation, secret)


def _room(b: Broadcast) -> str:
    return f"{b.control}/greenroom"


def _feed(b: Broadcast) -> dict[str, Any]:
    feeds = b.client.get(f"{_room(b)}.json").json()["feeds"]
    assert len(feeds) == 1
    feed: dict[str, Any] = feeds[0]
    return feed


def _status(b: Broadcast) -> dict[str, Any]:
    return _feed(b)["status"] or {}


def _post(b: Broadcast, path: str) -> None:
    response = b.client.post(
        f"{_room(b)}/{path}", data={"csrf_token": b.csrf}, follow_redirects=False
    )
    assert response.status_code == 303, response.text


def _on_air_source(b: Broadcast) -> object:
    health = b.health()["health"]
    assert isinstance(health, dict)
    return health["on_air"]["source"]


def _preview(b: Broadcast, speaker_id: int) -> tuple[str, bytes]:
    response = b.client.get(f"{_room(b)}/{speaker_id}/preview.jpg")
    assert response.status_code == 200
    return response.headers["content-type"], response.content


def _decoded_size(jpeg: bytes) -> tuple[int, int]:
    """Decode a preview frame for real (a JPEG header alone proves nothing)."""
    with av.open(io.BytesIO(jpeg), format="image2pipe") as container:
        frame = next(container.decode(video=0))
        return frame.width, frame.height


def test_live_speaker_rtmp_shows_in_green_room_before_it_is_taken_on_air(tmp_path: Path) -> None:
    with running_server(
        tmp_path,
        greenroom_rtmp_port=free_port(),
        greenroom_srt_port=free_port(socket.SOCK_DGRAM),
    ) as b:
        secret = b.settings.secret_key.get_secret_value().encode()
        speaker_id, token = _add_speaker(b.app.state.database, b.slug, secret)
        b.press("start-now")  # the run of show is on air; the speaker waits in the green room
        _post(b, f"{speaker_id}/open")
        page = b.client.get(_room(b)).text
        key = page.split('class="feed-key">')[1].split("<")[0]
        # The speaker sees the same key (and only their own) in their portal.
        portal = httpx.get(f"{b.base}/speak/{token}", timeout=10).text
        assert portal.split('id="live-key">')[1].split("<")[0] == key
        assert b.client.get(b.control).text.split('id="ingest-key">')[1].split("<")[0] != key
        port = b.settings.greenroom_rtmp_port
        b.wait_for(lambda: _feed(b)["status"] is not None, 15, "the green room to listen")
        assert key not in b.client.get(f"{_room(b)}.json").text  # polled often: no key in it

        wrong = _push(f"rtmp://127.0.0.1:{port}/live/not-the-speakers-key", 3)
        try:
            b.wait_for(lambda: _status(b)["refused"] >= 1, 15, "the wrong key to be refused")
            assert _status(b)["receiving"] is None
            assert _preview(b, speaker_id)[0].startswith("image/svg")  # "no signal"
        finally:
            _stop(wrong)

        speaker = _push(f"rtmp://127.0.0.1:{port}/live/{key}", 40)
        try:
            b.wait_for(lambda: _status(b)["receiving"] == "rtmp", 20, "the speaker's feed")
            b.wait_for(lambda: _preview(b, speaker_id)[0] == "image/jpeg", 10, "a preview frame")
            first = _preview(b, speaker_id)[1]
            assert _decoded_size(first) == (320, 180)
            # The speaker's tone (a full-scale-ish sine, about -21 dBFS RMS) shows as a level.
            b.wait_for(lambda: _status(b)["audio_level_db"] is not None, 10, "a sound level")
            assert -40 < _status(b)["audio_level_db"] < 0
            time.sleep(1.5)  # previews refresh: the moving test picture gives new bytes
            assert _preview(b, speaker_id)[1] != first

            # Seen in the green room, yet not on air: the programme plays on.
            assert _on_air_source(b) in ("file", "slate")
            assert b.on_air()["live"] is False
            assert _feed(b)["taken"] is False

            _post(b, f"{speaker_id}/take")
            b.wait_for(lambda: _on_air_source(b) == "live", 20, "the speaker on air")
            assert b.on_air()["live"] is True
            assert _feed(b)["taken"] is True
            # The studio ingest has no publisher: the live input on air is the speaker's.
            health = b.health()["health"]
            assert isinstance(health, dict)
            assert health["input"]["receiving"] is None

            _post(b, f"{speaker_id}/release")  # off air: the run of show plays on
            b.wait_for(lambda: _on_air_source(b) in ("file", "slate"), 20, "the programme back")
            assert b.on_air()["live"] is False
            assert _feed(b)["taken"] is False
            assert _status(b)["receiving"] == "rtmp"  # still in the green room
        finally:
            _stop(speaker)
        b.press("end")
    assert ffmpeg_children() == []


def test_live_speaker_srt_shows_in_green_room_and_wrong_passphrase_is_refused(
    tmp_path: Path,
) -> None:
    with running_server(
        tmp_path,
        greenroom_rtmp_port=free_port(),
        greenroom_srt_port=free_port(socket.SOCK_DGRAM),
    ) as b:
        secret = b.settings.secret_key.get_secret_value().encode()
        speaker_id, _token = _add_speaker(b.app.state.database, b.slug, secret)
        _post(b, f"{speaker_id}/open")  # before the session starts: the green room is open
        key = b.client.get(_room(b)).text.split('class="feed-key">')[1].split("<")[0]
        port = b.settings.greenroom_srt_port
        b.wait_for(lambda: _feed(b)["status"] is not None, 15, "the green room to listen")

        wrong = _push(
            f"srt://127.0.0.1:{port}?passphrase=wrong-passphrase-123&pbkeylen=16", 3, "mpegts"
        )
        assert wrong.wait(timeout=20) != 0  # the handshake is rejected: the caller gives up
        assert _status(b)["receiving"] is None

        speaker = _push(f"srt://127.0.0.1:{port}?passphrase={key}&pbkeylen=16", 20, "mpegts")
        try:
            b.wait_for(lambda: _status(b)["receiving"] == "srt", 20, "the speaker's feed")
            b.wait_for(lambda: _preview(b, speaker_id)[0] == "image/jpeg", 10, "a preview frame")
            assert _decoded_size(_preview(b, speaker_id)[1]) == (320, 180)
            assert b.on_air()["status"] == "idle"  # seen backstage only
            # The passphrase reaches ffmpeg through a 0600 script, never its command line.
            assert cmdlines_holding(key, besides=(speaker.pid,)) == []
        finally:
            _stop(speaker)
        _post(b, f"{speaker_id}/close")
        b.wait_for(lambda: _feed(b)["status"] is None, 15, "the listeners to close")
    assert ffmpeg_children() == []
