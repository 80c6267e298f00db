"""The HLS route serves each session from its segment store: local folder or in-memory."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from summitcast.app import create_app
from summitcast.config import Settings
from summitcast.media.segment_store import SessionStores
from summitcast.services.broadcast_control import session_folder
from summitcast.storage.database import Database

pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("database", ["sqlite"], indirect=True),
]

PLAYLIST = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg_00000.m4s\n"


def test_hls_from_local_folder_serves_files_with_cache_headers(
    client: TestClient, settings: Settings
) -> None:
    folder = session_folder(settings, "summit", 3)
    (folder / "360p").mkdir(parents=True)
    (folder / "360p" / "index.m3u8").write_bytes(PLAYLIST)
    (folder / "360p" / "seg_00000.m4s").write_bytes(b"\x00segment")
    (folder / "360p" / ".tmp-x").write_bytes(b"half")
    # ffmpeg's own playlist and the publisher's journal are private (dot files).
    (folder / "360p" / ".encoder.m3u8").write_bytes(PLAYLIST)
    (folder / "360p" / ".session.m3u8").write_bytes(PLAYLIST)
    playlist = client.get("/hls/summit/3/360p/index.m3u8")
    segment = client.get("/hls/summit/3/360p/seg_00000.m4s")
    assert (playlist.status_code, playlist.content) == (200, PLAYLIST)
    assert playlist.headers["cache-control"] == "public, max-age=1"
    assert playlist.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert (segment.status_code, segment.content) == (200, b"\x00segment")
    assert segment.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert client.get("/hls/summit/3/360p/.tmp-x").status_code == 404
    assert client.get("/hls/summit/3/360p/.encoder.m3u8").status_code == 404
    assert client.get("/hls/summit/3/360p/.session.m3u8").status_code == 404
    assert client.get("/hls/summit/3/360p/%2e%2e/%2e%2e/x").status_code == 404
    assert client.get("/hls/summit/3/360p/nothing.m4s").status_code == 404


def test_hls_request_for_unknown_session_creates_no_folder(
    client: TestClient, settings: Settings
) -> None:
    assert client.get("/hls/summit/99/master.m3u8").status_code == 404
    assert not session_folder(settings, "summit", 99).exists()


def test_hls_from_memory_store_serves_what_the_store_holds(
    settings: Settings, database: Database
) -> None:
    app = create_app(settings.model_copy(update={"segment_store": "memory"}), database=database)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        origin: SessionStores = app.state.hls_origin
        store = origin.open("summit", 4)  # as a playout on this node would have filled it
        store.put("360p/index.m3u8", PLAYLIST)
        store.put("360p/seg_00000.m4s", b"\x01segment")
        playlist = client.get("/hls/summit/4/360p/index.m3u8")
        segment = client.get("/hls/summit/4/360p/seg_00000.m4s")
        assert (playlist.status_code, playlist.content) == (200, PLAYLIST)
        assert playlist.headers["cache-control"] == "public, max-age=1"
        assert (segment.status_code, segment.content) == (200, b"\x01segment")
        assert segment.headers["content-type"] == "video/iso.segment"
        assert client.get("/hls/summit/4/360p/seg_00001.m4s").status_code == 404
        assert client.get("/hls/summit/5/360p/index.m3u8").status_code == 404  # another session
