"""One suite for every SegmentStore implementation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from summitcast.errors import ValidationError
from summitcast.media.segment_store import InMemorySegmentStore, LocalSegmentStore, SegmentStore


@pytest.fixture(params=["memory", "local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SegmentStore]:
    if request.param == "memory":
        yield InMemorySegmentStore(base_url="/hls/")
    else:
        yield LocalSegmentStore(tmp_path / "hls", base_url="/hls/")


def test_store_put_then_get_returns_bytes(store: SegmentStore) -> None:
    store.put("720p/seg_00001.m4s", b"\x00\x01")
    assert store.get("720p/seg_00001.m4s") == b"\x00\x01"


def test_store_get_missing_returns_none(store: SegmentStore) -> None:
    assert store.get("720p/nothing.m4s") is None


def test_store_put_overwrites(store: SegmentStore) -> None:
    store.put("master.m3u8", b"old")
    store.put("master.m3u8", b"new")
    assert store.get("master.m3u8") == b"new"


def test_store_delete_removes_and_tolerates_missing(store: SegmentStore) -> None:
    store.put("a/x.ts", b"1")
    store.delete("a/x.ts")
    store.delete("a/x.ts")
    assert (store.exists("a/x.ts"), store.get("a/x.ts")) == (False, None)


def test_store_list_filters_by_prefix_sorted(store: SegmentStore) -> None:
    for path in ["b/2.ts", "a/1.ts", "b/1.ts", "master.m3u8"]:
        store.put(path, b"x")
    assert store.list("b/") == ["b/1.ts", "b/2.ts"]
    assert store.list() == ["a/1.ts", "b/1.ts", "b/2.ts", "master.m3u8"]


def test_store_url_for_joins_base(store: SegmentStore) -> None:
    assert store.url_for("720p/index.m3u8") == "/hls/720p/index.m3u8"


@pytest.mark.parametrize("bad", ["../etc/passwd", "/abs.ts", "a/../../b", "", "a\\b", "a/\x00b"])
def test_store_escaping_path_refused(store: SegmentStore, bad: str) -> None:
    with pytest.raises(ValidationError):
        store.put(bad, b"x")


def test_store_implementations_satisfy_protocol(store: SegmentStore) -> None:
    assert isinstance(store, SegmentStore)


def test_local_store_put_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = LocalSegmentStore(tmp_path)
    store.put("360p/index.m3u8", b"#EXTM3U\n")
    assert sorted(p.name for p in (tmp_path / "360p").iterdir()) == ["index.m3u8"]
    assert ((tmp_path / "360p" / "index.m3u8").stat().st_mode & 0o777) == 0o644


def test_local_store_list_skips_temporary_files(tmp_path: Path) -> None:
    store = LocalSegmentStore(tmp_path)
    store.put("a.ts", b"x")
    (tmp_path / ".tmp-abc").write_bytes(b"half")
    assert store.list() == ["a.ts"]


def test_local_store_local_path_inside_folder(tmp_path: Path) -> None:
    store = LocalSegmentStore(tmp_path)
    assert store.local_path("720p/seg_00001.m4s") == tmp_path / "720p" / "seg_00001.m4s"
