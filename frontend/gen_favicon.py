"""Write src/summitcast/web/static/icons/favicon.ico: the globe of favicon.svg at 16 and 32 px.

Browsers ask for /favicon.ico even when a page links the SVG, and some (older Safari,
Windows tiles) only take a bitmap. Drawn with Pillow at 8x and scaled down, so the
edges are smooth. Run after changing favicon.svg, and keep the two drawings alike:
    .venv/bin/python frontend/gen_favicon.py
"""

from pathlib import Path

from PIL import Image, ImageDraw

ICONS = Path(__file__).resolve().parents[1] / "src" / "summitcast" / "web" / "static" / "icons"
ACCENT = (11, 92, 173, 255)  # #0b5cad, --sc-accent of summitcast.css
WHITE = (255, 255, 255, 255)
SCALE = 8  # drawn at 256 px, then reduced: Pillow draws no anti-aliased lines itself


def draw_icon() -> Image.Image:
    """The 32 px icon, the same shapes as favicon.svg (its viewBox is 32 units)."""
    s = SCALE
    image = Image.new("RGBA", (32 * s, 32 * s), (0, 0, 0, 0))
    pen = ImageDraw.Draw(image)
    pen.rounded_rectangle((0, 0, 32 * s - 1, 32 * s - 1), radius=7 * s, fill=ACCENT)
    width = round(2.2 * s)
    # SVG strokes are centred on the path; Pillow draws inward from the box: grow by half.
    half = 2.2 * s / 2
    r, rx = 10.5 * s + half, 4.6 * s + half
    c = 16 * s
    pen.ellipse((c - r, c - r, c + r, c + r), outline=WHITE, width=width)
    pen.ellipse((c - rx, c - r, c + rx, c + r), outline=WHITE, width=width)
    pen.rectangle((5.5 * s, c - half, 26.5 * s, c + half), fill=WHITE)
    return image.resize((32, 32), Image.Resampling.LANCZOS)


if __name__ == "__main__":
    icon = draw_icon()
    icon.save(ICONS / "favicon.ico", format="ICO", sizes=[(16, 16), (32, 32)])
