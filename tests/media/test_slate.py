"""Slates rendered with Pillow."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from summitcast.domain.playout import Slate
from summitcast.media.slate import (
    FONT_CANDIDATES,
    available_fonts,
    covers,
    font_for,
    render_slate,
)
from tests.conftest import service_missing

DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def test_render_slate_writes_png_of_requested_size(tmp_path: Path) -> None:
    slate = Slate("Ольга Петрова", ("Water for all", "Mayor, Україна"))
    path = render_slate(slate, tmp_path / "s.png", 426, 240)
    with Image.open(path) as image:
        assert (image.format, image.size) == ("PNG", (426, 240))
        # Text was drawn: more than the background colour is present.
        assert len(image.getcolors(maxcolors=100_000) or []) > 10


def test_render_slate_very_long_name_fits(tmp_path: Path) -> None:
    slate = Slate("María Fernanda de la Concepción Rodríguez", ())
    path = render_slate(slate, tmp_path / "long.png", 320, 180)
    with Image.open(path) as image:
        # The outermost columns stay background: the name was shrunk to fit.
        left = {image.getpixel((x, y)) for x in range(3) for y in range(180)}
        assert left == {(16, 32, 64)}


def test_covers_dejavu_scripts() -> None:
    assert [covers(DEJAVU, t) for t in ["Amina", "Ольга", "Σοφία", "عربي", "אבג", "李娜"]] == [
        True,
        True,
        True,
        True,
        True,
        False,
    ]


def test_font_for_picks_first_covering_font() -> None:
    liberation = Path("/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf")
    assert font_for("Ольга عربي", 20, [liberation, DEJAVU]).path == str(DEJAVU)


def test_font_for_uncovered_text_falls_back_to_first_font() -> None:
    liberation = Path("/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf")
    assert font_for("李娜", 20, [liberation, DEJAVU]).path == str(liberation)


NAMES = {
    "Latin": "Zoë Łukasz Ñandú",
    "Cyrillic": "Ольга Петрова",
    "Greek": "Ελένη Παπαδοπούλου",
    "Arabic": "محمد عبد الله",
    "Hebrew": "דוד כהן",
    "Devanagari": "प्रिया शर्मा",
    "Ethiopic": "አበበ ቢቂላ",
    "Chinese": "王小明",
    "Japanese": "山田 はなこ",
    "Korean": "김민준",
}


def _fonts_or_skip() -> list[Path]:
    fonts = available_fonts()
    # The fonts `make browser` installs (Noto candidates are the operator's choice).
    required = [p for p in FONT_CANDIDATES if "noto" not in p.parts and "liberation" not in p.parts]
    missing = [p.name for p in required if not p.exists()]
    if missing:
        service_missing("slate fonts", f"missing {missing}; run `make browser`")
    return fonts


@pytest.mark.parametrize("script", list(NAMES))
def test_available_fonts_cover_every_script_of_speaker_names(script: str) -> None:
    fonts = _fonts_or_skip()
    assert [p.name for p in fonts if covers(p, NAMES[script])] != []


@pytest.mark.parametrize("script", ["Devanagari", "Ethiopic", "Chinese", "Korean"])
def test_render_slate_draws_real_glyphs_not_boxes(tmp_path: Path, script: str) -> None:
    _fonts_or_skip()
    text = NAMES[script]
    # Missing glyphs all draw as the same box: two different names would look alike.
    first = render_slate(Slate(text), tmp_path / "a.png", 426, 240)
    other = render_slate(Slate(text[::-1]), tmp_path / "b.png", 426, 240)
    with Image.open(first) as a, Image.open(other) as b:
        assert a.tobytes() != b.tobytes()
    assert covers(Path(font_for(text, 20).path), text)
