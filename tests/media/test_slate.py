"""Slates rendered with Pillow."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from summitcast.domain.playout import Slate
from summitcast.media.slate import covers, font_for, render_slate

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
