"""The site icon: /favicon.ico and the versioned SVG, served with cache headers and linked."""

from __future__ import annotations

import io
import re

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from summitcast.web.routes.icons import ICONS, icon_version

pytestmark = pytest.mark.integration


def test_favicon_ico_is_a_32_px_icon_cached_for_a_week(client: TestClient) -> None:
    response = client.get("/favicon.ico")

    assert response.status_code == 200
    assert response.headers["content-type"] == "image/vnd.microsoft.icon"
    assert response.headers["cache-control"] == "public, max-age=604800"
    with Image.open(io.BytesIO(response.content)) as icon:
        assert icon.format == "ICO"
        assert {(16, 16), (32, 32)} <= set(icon.info["sizes"])
    assert response.content == (ICONS / "favicon.ico").read_bytes()


def test_favicon_svg_by_its_version_is_immutable_for_a_year(client: TestClient) -> None:
    version = icon_version("favicon.svg")

    current = client.get(f"/favicon.svg?v={version}")
    stale = client.get("/favicon.svg?v=0")

    assert current.status_code == 200
    assert current.headers["content-type"] == "image/svg+xml"
    assert current.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert current.text.startswith("<svg")
    assert 'viewBox="0 0 32 32"' in current.text
    # An old page's link gets today's icon, but not for a year.
    assert stale.headers["cache-control"] == "public, max-age=604800"


def test_favicon_answers_head_and_if_none_match(client: TestClient) -> None:
    first = client.get("/favicon.ico")

    head = client.head("/favicon.ico")
    again = client.get("/favicon.ico", headers={"If-None-Match": first.headers["etag"]})

    assert head.status_code == 200
    assert head.content == b""
    assert again.status_code == 304
    assert again.content == b""


def test_every_base_page_links_both_icons(client: TestClient) -> None:
    page = client.get("/login")

    links = re.findall(r'<link rel="icon"[^>]*>', page.text)

    assert links == [
        '<link rel="icon" href="/favicon.ico" sizes="32x32">',
        f'<link rel="icon" href="/favicon.svg?v={icon_version("favicon.svg")}"'
        ' type="image/svg+xml">',
    ]
    for href in re.findall(r'rel="icon" href="([^"]+)"', page.text):
        assert client.get(href).status_code == 200
