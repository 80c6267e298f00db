"""The report's world map: the footnote stays off the land, the colour bar's labels readable."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox
from PIL import Image

from summitcast.reports.worldmap import Atlas, colour_ticks, draw_world_map, find_atlas, load_atlas

pytestmark = pytest.mark.unit

NOTE = "Countries with fewer than 5 locations and hidden hosts are not shown (1,234 locations)."
# South America's south, where the note used to sit, and a spread of other countries.
COUNTS = {"CL": 40, "AR": 90, "BR": 3000, "PE": 12, "US": 800, "DE": 200, "IN": 600, "AU": 7}
DPI = 110


@pytest.fixture(scope="module")
def atlas() -> Atlas:
    path = find_atlas()
    if path is None:
        pytest.fail("the world-atlas file is missing: run `make assets`")
    return load_atlas(path)


def _map(atlas: Atlas, tmp_path: Path, figsize: tuple[float, float]) -> tuple[Figure, Path]:
    """The map as the report draws it (constrained layout), written to a PNG."""
    figure = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(figure)  # the renderer that measures the texts, as savefig draws them
    ax = figure.add_subplot()
    draw_world_map(ax, atlas, COUNTS, k=5, note=NOTE)
    ax.set_title("Counted locations per country")
    png = tmp_path / "map.png"
    figure.savefig(png, dpi=DPI)
    return figure, png


def _renderer(figure: Figure) -> RendererAgg:
    canvas = figure.canvas
    assert isinstance(canvas, FigureCanvasAgg)
    renderer: RendererAgg = canvas.get_renderer()  # type: ignore[no-untyped-call]
    return renderer


def _extent(artist: Artist, figure: Figure) -> Bbox:
    return artist.get_window_extent(_renderer(figure))


@pytest.mark.parametrize("figsize", [(11, 5.6), (8.27, 5.0)])
def test_draw_world_map_note_lies_below_the_map_and_its_colour_bar(
    atlas: Atlas, tmp_path: Path, figsize: tuple[float, float]
) -> None:
    figure, _ = _map(atlas, tmp_path, figsize)
    map_ax, bar_ax = figure.axes
    note = next(t for t in figure.texts if t.get_text() == NOTE)

    text = _extent(note, figure)
    land = _extent(map_ax, figure)  # every country is drawn inside the map's axes
    bar = bar_ax.get_tightbbox(_renderer(figure))
    assert bar is not None

    assert not text.overlaps(land)
    assert not text.overlaps(bar)  # ticks and "locations (log scale)" included
    assert text.y1 < bar.y0 < land.y0
    assert figure.bbox.contains(text.x0, text.y0)
    assert figure.bbox.contains(text.x1, text.y1)


def test_draw_world_map_png_has_no_land_under_the_note(atlas: Atlas, tmp_path: Path) -> None:
    figure, png = _map(atlas, tmp_path, (11, 5.6))
    note = next(t for t in figure.texts if t.get_text() == NOTE)
    box = _extent(note, figure)
    scale = DPI / figure.dpi

    with Image.open(png) as image:
        rgb = image.convert("RGB")
        height = rgb.height
        crop = rgb.crop(
            (
                int(box.x0 * scale),
                height - int(box.y1 * scale) - 1,  # window coordinates count from the bottom
                int(box.x1 * scale) + 1,
                height - int(box.y0 * scale),
            )
        )
    colours = {tuple(c) for _, c in crop.getcolors(maxcolors=1 << 16) or [] if isinstance(c, tuple)}

    # Only the note's grey text on white: the land's grey (#e4e7eb) is bluish and the
    # shading (viridis) coloured, so any pixel with unequal channels is something else.
    assert len(colours) > 2  # the text is really there
    assert [c for c in colours if max(c) - min(c) > 3] == []


def test_draw_world_map_without_a_note_adds_no_text(atlas: Atlas) -> None:
    figure = Figure(figsize=(11, 5.6), layout="constrained")
    ax = figure.add_subplot()

    returned = draw_world_map(ax, atlas, COUNTS, k=5)

    assert returned is None
    assert figure.texts == []
    assert list(ax.texts) == []


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (5, 80, [5, 10, 20, 50]),
        (5, 2500, [10, 30, 100, 300, 1000]),
        (5, 30000, [10, 100, 1000, 10000]),
        (5, 6, [5]),
        (1, 2, [1, 2]),
    ],
)
def test_colour_ticks_are_round_and_sparser_over_many_decades(
    low: int, high: int, expected: list[int]
) -> None:
    assert colour_ticks(low, high) == expected


def test_draw_world_map_colour_bar_labels_do_not_overlap(atlas: Atlas, tmp_path: Path) -> None:
    figure, _ = _map(atlas, tmp_path, (11, 5.6))
    renderer = _renderer(figure)
    labels = [t for t in figure.axes[1].get_xticklabels() if t.get_text()]

    boxes = sorted((t.get_window_extent(renderer) for t in labels), key=lambda b: b.x0)

    assert [t.get_text() for t in sorted(labels, key=lambda t: t.get_position()[0])] == [
        "10",
        "30",
        "100",
        "300",
        "1,000",
        "3,000",
    ]
    assert all(a.x1 < b.x0 for a, b in itertools.pairwise(boxes))
