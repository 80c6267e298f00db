"""The world-atlas TopoJSON decoded offline, and a choropleth of locations per country."""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.collections import PatchCollection
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure, SubFigure
from matplotlib.patches import Polygon
from matplotlib.text import Text

from summitcast.domain.attendance import OTHER_ROW

__all__ = [
    "Atlas",
    "atlas_candidates",
    "colour_ticks",
    "draw_published_map",
    "draw_world_map",
    "find_atlas",
    "load_atlas",
]

Ring = list[tuple[float, float]]
_PACKAGE = Path(__file__).resolve().parents[1]
_REPO = Path(__file__).resolve().parents[3]


@dataclass(frozen=True, slots=True)
class Atlas:
    """Country outlines: ISO alpha-2 (or the atlas name when it has no code) → polygons."""

    countries: dict[str, list[list[Ring]]]
    source: Path


def atlas_candidates() -> list[Path]:
    """Return where the atlas may be: `make assets` output, then the npm package itself."""
    override = os.environ.get("SUMMITCAST_WORLD_ATLAS")
    found = [Path(override)] if override else []
    return [
        *found,
        _PACKAGE / "web" / "static" / "build" / "countries-110m.json",
        _REPO / "node_modules" / "world-atlas" / "countries-110m.json",
    ]


def find_atlas() -> Path | None:
    """Return the first atlas file that exists, or None."""
    return next((path for path in atlas_candidates() if path.is_file()), None)


def _iso_numeric(atlas_path: Path) -> dict[str, str]:
    for path in (atlas_path.with_name("iso-numeric.json"), _REPO / "frontend" / "iso-numeric.json"):
        if path.is_file():
            table: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
            return table
    return {}


def _decode_arcs(topology: Mapping[str, Any]) -> list[Ring]:
    """Return the arcs in degrees: quantized, delta-encoded positions undone with the transform."""
    transform = topology.get("transform")
    arcs: list[Ring] = []
    for arc in topology["arcs"]:
        if transform is None:
            arcs.append([(float(x), float(y)) for x, y in arc])
            continue
        (sx, sy), (tx, ty) = transform["scale"], transform["translate"]
        x = y = 0
        points = []
        for dx, dy in arc:
            x += dx  # each position is a delta from the previous one (TopoJSON §2.1.3)
            y += dy
            points.append((x * sx + tx, y * sy + ty))
        arcs.append(points)
    return arcs


def _ring(arcs: list[Ring], indices: list[int]) -> Ring:
    points: Ring = []
    for index in indices:
        # A negative index ~i means arc i reversed; consecutive arcs share an end point.
        arc = arcs[index] if index >= 0 else arcs[~index][::-1]
        points.extend(arc if not points else arc[1:])
    return points


def _unwrap(ring: Ring) -> list[Ring]:
    """Return a ring with continuous longitudes, plus a copy shifted back onto the map.

    Rings crossing the antimeridian (Russia, Fiji) jump from 180 to -180; drawn as
    they are, they smear a band across the whole map.
    """
    if not ring:
        return [ring]
    out = [ring[0]]
    shift = 0.0
    for (x0, _), (x1, y1) in itertools.pairwise(ring):
        if x1 - x0 > 180:
            shift -= 360
        elif x0 - x1 > 180:
            shift += 360
        out.append((x1 + shift, y1))
    xs = [x for x, _ in out]
    if max(xs) > 180:
        return [out, [(x - 360, y) for x, y in out]]
    if min(xs) < -180:
        return [out, [(x + 360, y) for x, y in out]]
    return [out]


def load_atlas(path: Path) -> Atlas:
    """Decode the `countries` object of a world-atlas TopoJSON file."""
    topology = json.loads(path.read_text(encoding="utf-8"))
    arcs = _decode_arcs(topology)
    codes = _iso_numeric(path)
    countries: dict[str, list[list[Ring]]] = {}
    for geometry in topology["objects"]["countries"]["geometries"]:
        kind = geometry.get("type")
        if kind == "Polygon":
            polygons = [geometry["arcs"]]
        elif kind == "MultiPolygon":
            polygons = geometry["arcs"]
        else:
            continue
        name = codes.get(str(geometry.get("id")), geometry.get("properties", {}).get("name", "?"))
        outlines = countries.setdefault(name, [])
        for polygon in polygons:
            # Only outer rings are filled; holes (lakes, enclaves) are too small to matter here.
            outlines.extend([piece] for piece in _unwrap(_ring(arcs, polygon[0])))
    return Atlas(countries, path)


def colour_ticks(low: float, high: float) -> list[int]:
    """Round values from low to high for the log colour bar, sparser as the range grows."""
    low = max(low, 1)
    decades = math.log10(max(high, low + 1) / low)
    # About six labels fit under the map at 7 pt without touching.
    steps = (1, 2, 5) if decades <= 1.5 else (1, 3) if decades < 2.9 else (1,)
    ticks = [
        step * 10**power
        for power in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
        for step in steps
    ]
    inside = [t for t in ticks if low <= t <= high]
    return inside or [math.ceil(low)]


def draw_world_map(
    ax: Axes, atlas: Atlas, counts: Mapping[str, int], *, k: int, note: str | None = None
) -> Text | None:
    """Fill countries by locations (log scale) on an equirectangular map; others stay grey.

    Returns the note's text, drawn below the map and its colour bar (never over land).
    """
    shown = {
        c: n for c, n in counts.items() if n >= k
    }  # callers pass suppressed counts; belt and braces
    patches = []
    values = []
    empty = []
    for code, polygons in atlas.countries.items():
        for polygon in polygons:
            outer = polygon[0]
            # Antarctica would take a fifth of the picture and holds no watch locations.
            if code == "AQ" or len(outer) < 3:
                continue
            patch = Polygon(outer, closed=True)
            if code in shown:
                patches.append(patch)
                values.append(shown[code])
            else:
                empty.append(patch)
    ax.add_collection(PatchCollection(empty, facecolor="#e4e7eb", edgecolor="white", linewidth=0.3))
    figure = ax.get_figure()
    if patches:
        filled = PatchCollection(patches, cmap="viridis_r", edgecolor="white", linewidth=0.3)
        filled.set_array(values)
        low = max(k, 1)
        high = max(max(values), low + 1)
        filled.set_norm(LogNorm(vmin=low, vmax=high))
        ax.add_collection(filled)
        if isinstance(figure, Figure):
            bar = figure.colorbar(filled, ax=ax, orientation="horizontal", fraction=0.04, pad=0.02)
            bar.set_label("locations (log scale)")
            # Plain numbers at round values: the default log ticks of a range under a decade
            # label every minor tick in scientific notation, and the labels overlap.
            ticks = colour_ticks(low, high)
            bar.set_ticks(ticks, labels=[f"{t:,}" for t in ticks])
            bar.minorticks_off()
    ax.set_xlim(-180, 180)
    ax.set_ylim(-58, 84)
    ax.set_aspect("equal")
    ax.set_axis_off()
    if not note or not isinstance(figure, Figure | SubFigure):
        return None
    # A figure-level label at the bottom, left-aligned: constrained layout keeps room for
    # it below the colour bar. Inside the axes (as it once was) it covered Chile and
    # Argentina, whatever corner was picked: the map fills the axes edge to edge.
    return figure.supxlabel(note, x=0.01, ha="left", fontsize=7, color="#444444")


def draw_published_map(figures: Mapping[str, Any], path: Path) -> bool:
    """Write the PNG world map of a published figures record to path; False without an atlas."""
    atlas = find_atlas()
    if atlas is None:
        return False
    k = int(figures["k"])
    counts = {
        row["country"]: int(row["locations"])
        for row in figures["countries"]
        if row["country"] != OTHER_ROW
    }
    other = sum(int(r["locations"]) for r in figures["countries"] if r["country"] == OTHER_ROW)
    figure = Figure(figsize=(11, 5.6), layout="constrained")
    ax = figure.add_subplot()
    note = (
        f"Countries with fewer than {k} locations and hidden hosts are not shown "
        f"({other:,} locations)."
    )
    draw_world_map(ax, load_atlas(atlas), counts, k=k, note=note)
    ax.set_title("Counted locations per country (published figures)")
    # Renamed only when whole: a reader never gets half a PNG.
    partial = path.with_name(f".partial-{path.name}")
    figure.savefig(partial, format="png", dpi=100, metadata={"Software": None})
    partial.rename(path)
    return True
