"""Slates: still pictures with a speaker's name, title and country, rendered with Pillow."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path

from fontTools.ttLib import TTFont
from PIL import Image, ImageDraw, ImageFont

from summitcast.domain.playout import Slate

# Names are drawn with the first font that has every glyph of the text, so the
# order matters: DejaVu (fonts-dejavu-core) covers Latin, Greek, Cyrillic, Arabic
# and Hebrew; the smallest Debian packages that add the rest (`make browser`
# installs them, ~7 MB): Lohit Devanagari (fonts-lohit-deva), Abyssinica SIL for
# Ethiopic (fonts-sil-abyssinica), WenQuanYi Micro Hei for Chinese, Japanese and
# Korean (fonts-wqy-microhei). Noto, if an operator installs it, is used too.
FONT_CANDIDATES: tuple[Path, ...] = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf"),
    Path("/usr/share/fonts/truetype/noto/NotoSansDevanagari-Regular.ttf"),
    Path("/usr/share/fonts/truetype/lohit-devanagari/Lohit-Devanagari.ttf"),
    Path("/usr/share/fonts/truetype/noto/NotoSansEthiopic-Regular.ttf"),
    Path("/usr/share/fonts/truetype/abyssinica/AbyssinicaSIL-Regular.ttf"),
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf"),
)
BACKGROUND = (16, 32, 64)
HEADING_COLOUR = (255, 255, 255)
LINE_COLOUR = (200, 210, 230)


def available_fonts() -> list[Path]:
    """The candidate fonts present on this machine, best first."""
    return [path for path in FONT_CANDIDATES if path.exists()]


@cache
def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    """Load a font once per size."""
    return ImageFont.truetype(str(path), size)


@cache
def _code_points(path: Path) -> frozenset[int]:
    """Every character a font file has a glyph for (its cmap)."""
    # fontTools arrives with matplotlib; fontNumber=0 picks the first face of a .ttc.
    with TTFont(str(path), fontNumber=0, lazy=True) as font:
        return frozenset(font.getBestCmap() or {})


def covers(path: Path, text: str) -> bool:
    """Whether the font at path has a glyph for every visible character of text."""
    points = _code_points(path)
    return all(ch.isspace() or ord(ch) in points for ch in text)


def font_for(text: str, size: int, fonts: Sequence[Path] | None = None) -> ImageFont.FreeTypeFont:
    """The first available font that covers text (the first font if none covers it all)."""
    candidates = list(fonts) if fonts is not None else available_fonts()
    if not candidates:
        raise FileNotFoundError("no TrueType font found for slates; install fonts-dejavu-core")
    for path in candidates:
        if covers(path, text):
            return _font(path, size)
    return _font(candidates[0], size)


def _fit(draw: ImageDraw.ImageDraw, text: str, size: int, max_width: int) -> ImageFont.FreeTypeFont:
    """Shrink the font until text fits the width (long names, long titles)."""
    while True:
        font = font_for(text, size)
        if size <= 10 or draw.textlength(text, font=font) <= max_width:
            return font
        size = int(size * 0.9)


def render_slate(slate: Slate, path: Path, width: int, height: int) -> Path:
    """Draw slate centred on a plain background and save it as a PNG at path."""
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    margin = width // 16
    heading_font = _fit(draw, slate.heading, height // 9, width - 2 * margin)
    line_fonts = [_fit(draw, line, height // 18, width - 2 * margin) for line in slate.lines]
    # Stack heading and lines, then centre the block vertically.
    gap = height // 40
    blocks = [(slate.heading, heading_font, HEADING_COLOUR)]
    blocks += [
        (line, font, LINE_COLOUR) for line, font in zip(slate.lines, line_fonts, strict=True)
    ]
    heights = [draw.textbbox((0, 0), text, font=font)[3] for text, font, _ in blocks]
    y = (height - sum(heights) - gap * (len(blocks) - 1)) // 2
    for (text, font, colour), block_height in zip(blocks, heights, strict=True):
        # anchor "ma": middle-ascender, so lines centre horizontally on the width.
        draw.text((width // 2, y), text, font=font, fill=colour, anchor="ma")
        y += block_height + gap
    image.save(path, format="PNG")
    return path
