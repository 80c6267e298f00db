"""The built browser assets: present, self-contained (nothing off-site), small."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pycountry
import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "src" / "summitcast" / "web" / "static" / "build"
BUNDLES = ["player.js", "map.js", "live.js", "golive.js", "passkey.js"]
EXPECTED = [*BUNDLES, "countries-110m.json", "iso-numeric.json", "summitcast.css"]

# URIs that appear in the bundles as identifiers, never fetched.
ALLOWED_URIS = re.compile(
    r"^https?://www\.w3\.org/"  # XML namespaces: SVG, TTML
    r"|^https://aomedia\.org/emsg/ID3$"  # hls.js: emsg scheme_id_uri it compares against
)
URL = re.compile(r"""https?://[^\s"'`)\\<>]+""")
LEGAL_COMMENT = re.compile(r"/\*!.*?\*/|/\*[^*]*?@(?:license|preserve).*?\*/", re.DOTALL)


@pytest.fixture(autouse=True)
def _build_output() -> None:
    """Skip on a developer machine that has not built the assets; in CI they must exist."""
    if BUILD.is_dir():
        return
    message = f"{BUILD} is missing: run `make assets`"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def off_site_urls(text: str) -> list[str]:
    """URLs in the text outside licence comments that are not allowed identifiers."""
    code = LEGAL_COMMENT.sub("", text)
    return sorted({u for u in URL.findall(code) if not ALLOWED_URIS.search(u)})


def test_build_output_has_every_asset() -> None:
    missing = [name for name in EXPECTED if not (BUILD / name).is_file()]

    assert missing == []
    assert all((BUILD / name).stat().st_size > 0 for name in EXPECTED)


@pytest.mark.parametrize("name", [*BUNDLES, "summitcast.css"])
def test_build_asset_loads_nothing_off_site(name: str) -> None:
    text = (BUILD / name).read_text(encoding="utf-8")

    assert off_site_urls(text) == []


def test_off_site_urls_finds_urls_outside_licence_comments() -> None:
    text = '/*! see https://example.org/licence */ fetch("https://cdn.example.com/x.js");'
    text += ' e("http://www.w3.org/2000/svg")'

    assert off_site_urls(text) == ["https://cdn.example.com/x.js"]


def test_stylesheet_uses_no_web_fonts_or_imports() -> None:
    css = (BUILD / "summitcast.css").read_text(encoding="utf-8")

    assert "@font-face" not in css
    assert "@import" not in css
    assert "url(" not in css


@pytest.mark.parametrize(
    ("name", "max_kib"),
    [("map.js", 64), ("live.js", 24), ("player.js", 700)],
)
def test_bundle_stays_small(name: str, max_kib: int) -> None:
    # map.js must hold d3-geo's pieces, not all of d3; player.js is mostly hls.js.
    size_kib = (BUILD / name).stat().st_size / 1024

    assert size_kib < max_kib


def test_bundles_add_to_the_summitcast_namespace() -> None:
    for name, functions in {
        "map.js": ["drawMap", "updateMap"],
        "player.js": ["mountPlayer"],
        "live.js": ["liveCounters", "locationScreen"],
    }.items():
        text = (BUILD / name).read_text(encoding="utf-8")
        assert "summitcast" in text
        assert all(f"{fn}:" in text for fn in functions), name


def test_iso_numeric_covers_every_country_of_the_atlas() -> None:
    atlas = json.loads((BUILD / "countries-110m.json").read_text())
    iso = json.loads((BUILD / "iso-numeric.json").read_text())
    ids = {g["id"] for g in atlas["objects"]["countries"]["geometries"] if "id" in g}

    assert sorted(ids - iso.keys()) == []


def test_iso_numeric_matches_pycountry() -> None:
    committed = json.loads((ROOT / "frontend" / "iso-numeric.json").read_text())

    assert committed == {c.numeric: c.alpha_2 for c in pycountry.countries}


def test_flags_are_inert_svgs_that_load_nothing_off_site() -> None:
    # Served from our own origin: no script, no event handler, no reference elsewhere.
    flags = sorted((BUILD / "flags").glob("*.svg"))
    texts = {path.name: path.read_text(encoding="utf-8") for path in flags}

    assert len(flags) >= 249  # every ISO 3166-1 country
    assert [n for n, t in texts.items() if re.search(r"<script|\son\w+=|<foreignObject", t)] == []
    assert {n: off_site_urls(t) for n, t in texts.items() if off_site_urls(t)} == {}


def test_flag_icons_licence_is_shipped() -> None:
    licences = (BUILD / "THIRD-PARTY-LICENSES.txt").read_text(encoding="utf-8")

    assert re.search(r"^flag-icons \S+ \(MIT\)$", licences, re.M)
