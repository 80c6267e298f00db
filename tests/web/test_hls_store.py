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


def test_hls_files_revalidate_with_304_and_answer_head(
    client: TestClient, settings: Settings
) -> None:
    folder = session_folder(settings, "summit", 5)
    (folder / "360p").mkdir(parents=True)
    (folder / "360p" / "index.m3u8").write_bytes(PLAYLIST)
    (folder / "360p" / "seg_00000.m4s").write_bytes(b"\x00segment")
    for path in ("360p/index.m3u8", "360p/seg_00000.m4s"):
        first = client.get(f"/hls/summit/5/{path}")
        etag = first.headers["etag"]
        again = client.get(f"/hls/summit/5/{path}", headers={"If-None-Match": etag})
        assert (again.status_code, again.content) == (304, b"")
        # A 304 carries what a cache needs to refresh its copy's lifetime.
        assert again.headers["etag"] == etag
        assert again.headers["cache-control"] == first.headers["cache-control"]
        weak_list = client.get(
            f"/hls/summit/5/{path}", headers={"If-None-Match": f'"other", W/{etag}'}
        )
        assert weak_list.status_code == 304
        stale = client.get(f"/hls/summit/5/{path}", headers={"If-None-Match": '"other"'})
        assert (stale.status_code, stale.content) == (200, first.content)
        head = client.head(f"/hls/summit/5/{path}")
        assert (head.status_code, head.content) == (200, b"")
        assert head.headers["etag"] == etag
        assert head.headers["content-length"] == str(len(first.content))
    segment = client.get("/hls/summit/5/360p/seg_00000.m4s")
    since = client.get(
        "/hls/summit/5/360p/seg_00000.m4s",
        headers={"If-Modified-Since": segment.headers["last-modified"]},
    )
    assert since.status_code == 304
    garbled = client.get(
        "/hls/summit/5/360p/seg_00000.m4s", headers={"If-Modified-Since": "yesterday-ish"}
    )
    assert garbled.status_code == 200
    assert client.head("/hls/summit/5/360p/missing.m4s").status_code == 404


def test_a_changed_playlist_gets_a_new_etag(client: TestClient, settings: Settings) -> None:
    folder = session_folder(settings, "summit", 6)
    (folder / "360p").mkdir(parents=True)
    (folder / "360p" / "index.m3u8").write_bytes(PLAYLIST)
    old = client.get("/hls/summit/6/360p/index.m3u8").headers["etag"]
    newer = PLAYLIST + b"#EXTINF:2.0,\nseg_00001.m4s\n"
    (folder / "360p" / "index.m3u8").write_bytes(newer)
    fresh = client.get("/hls/summit/6/360p/index.m3u8", headers={"If-None-Match": old})
    assert (fresh.status_code, fresh.content) == (200, newer)
    assert fresh.headers["etag"] != old
