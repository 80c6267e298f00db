"""The world map drawn by build/map.js in a real Chromium, served from loopback only."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.e2e.browser import chromium_page

STATIC = Path(__file__).resolve().parents[2] / "src" / "summitcast" / "web" / "static"
SCREENSHOT = Path("/tmp/map.png")

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>map test</title><link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/build/summitcast.css">
<script src="/static/build/map.js"></script></head>
<body><main><h1>Live map</h1><svg id="map"></svg></main></body></html>
"""

SAMPLE = {
    "countries": {"BR": 3000, "NG": 1200, "IN": 800, "US": 150, "FR": 40, "de": 9, "JP": 1},
    "cities": [
        {"name": "São Paulo", "lat": -23.55, "lon": -46.63, "count": 900},
        {"name": "Lagos", "lat": 6.52, "lon": 3.38, "count": 400},
        {"name": "Mumbai", "lat": 19.08, "lon": 72.88, "count": 250},
        {"name": "Paris", "lat": 48.86, "lon": 2.35, "count": 20},
    ],
    "suppressedNote": "Countries with fewer than 5 locations are shown as none.",
}


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serve /static/… from the package's static folder and everything else from a tmp dir."""

    def __init__(self, *args: object, page_dir: Path, **kwargs: object) -> None:
        self.page_dir = page_dir
        super().__init__(*args, directory=str(page_dir), **kwargs)  # type: ignore[arg-type]

    def translate_path(self, path: str) -> str:
        clean = urlsplit(path).path
        if clean.startswith("/static/"):
            rel = clean.removeprefix("/static/")
            return str(STATIC.joinpath(*[p for p in rel.split("/") if p not in ("", ".", "..")]))
        return super().translate_path(path)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    """A loopback HTTP server for the test page and the built assets; yields its base URL."""
    if not (STATIC / "build" / "map.js").is_file():
        pytest.fail("build/map.js is missing: run `make assets`")
    (tmp_path / "map.html").write_text(PAGE, encoding="utf-8")
    handler = functools.partial(_Handler, page_dir=tmp_path)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_map_draws_countries_shading_and_cities_from_loopback_only(site: str) -> None:
    console: list[str] = []
    hosts: list[str] = []
    with chromium_page(console=console) as page:
        page.on("request", lambda req: hosts.append(urlsplit(req.url).hostname or req.url))
        page.goto(f"{site}/map.html")
        page.evaluate("data => summitcast.drawMap(document.getElementById('map'), data)", SAMPLE)

        paths = page.locator("svg#map path.sc-map-country")
        fills = page.eval_on_selector_all(
            "svg#map path.sc-map-country",
            "ps => ps.map(p => [p.dataset.iso, p.getAttribute('fill')])",
        )
        dots = page.locator("svg#map circle.sc-map-city").count()
        label = page.get_attribute("svg#map", "aria-label") or ""
        role = page.get_attribute("svg#map", "role")
        brazil_title = page.text_content("svg#map path[data-iso='BR'] > title")
        page.locator("svg#map").screenshot(path=str(SCREENSHOT))

        count = paths.count()
    by_iso = dict(fills)
    empty = by_iso["AU"]
    shaded = {iso: by_iso[iso] for iso in ("BR", "NG", "IN", "US", "FR", "DE", "JP")}

    assert count > 150
    assert all(fill != empty for fill in shaded.values()), shaded
    assert shaded["BR"] != shaded["JP"]  # the scale tells many from few
    assert dots == len(SAMPLE["cities"])
    assert role == "img"
    assert label.startswith("World map: 5,200 locations in 7 countries, 4 cities marked.")
    assert brazil_title == "Brazil: 3,000 locations"
    assert set(hosts) == {"127.0.0.1"}
    assert [line for line in console if line.startswith(("error", "pageerror"))] == []


def test_update_map_reshades_without_redrawing_paths(site: str) -> None:
    with chromium_page() as page:
        page.goto(f"{site}/map.html")
        page.evaluate("data => summitcast.drawMap(document.getElementById('map'), data)", SAMPLE)
        page.evaluate("() => { window.firstPath = document.querySelector('.sc-map-country'); }")
        before = page.get_attribute("svg#map path[data-iso='AU']", "fill")

        page.evaluate(
            """() => summitcast.updateMap(document.getElementById('map'),
                   {countries: {AU: 500}, cities: []})"""
        )

        same_nodes = page.evaluate(
            "() => window.firstPath === document.querySelector('.sc-map-country')"
        )
        after = page.get_attribute("svg#map path[data-iso='AU']", "fill")
        brazil = page.get_attribute("svg#map path[data-iso='BR']", "fill")
        dots = page.locator("svg#map circle.sc-map-city").count()

    assert same_nodes is True
    assert after != before
    assert brazil == before  # Brazil lost its count: back to the empty fill
    assert dots == 0
