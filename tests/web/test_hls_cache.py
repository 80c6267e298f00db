"""Cache headers and content types of HLS files."""

from __future__ import annotations

import pytest

from summitcast.web.hls_cache import cache_headers_for, content_type_for

IMMUTABLE = "public, max-age=31536000, immutable"


@pytest.mark.parametrize(
    ("path", "content_type", "cache_control"),
    [
        ("master.m3u8", "application/vnd.apple.mpegurl", "public, max-age=1"),
        ("720p/index.m3u8", "application/vnd.apple.mpegurl", "public, max-age=1"),
        ("720p/vod.m3u8", "application/vnd.apple.mpegurl", "public, max-age=60"),
        ("720p/seg_00001.ts", "video/mp2t", IMMUTABLE),
        ("720p/seg_00001.m4s", "video/iso.segment", IMMUTABLE),
        ("720p/init_720p.mp4", "video/mp4", IMMUTABLE),
        ("subs_en/seg_00001.vtt", "text/vtt; charset=utf-8", IMMUTABLE),
        ("notes.txt", "application/octet-stream", "no-store"),
    ],
)
def test_cache_headers_for_file_kind(path: str, content_type: str, cache_control: str) -> None:
    assert cache_headers_for(path) == {
        "Content-Type": content_type,
        "Cache-Control": cache_control,
        "Access-Control-Allow-Origin": "*",
    }


def test_content_type_for_uppercase_extension() -> None:
    assert content_type_for("A/SEG.TS") == "video/mp2t"
