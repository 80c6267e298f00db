// The live world map: countries shaded by the number of connected locations,
// dots for cities. Drawn offline from the bundled world-atlas topology; no map
// tiles, no request leaves the origin.
import { geoGraticule10, geoNaturalEarth1, geoPath } from "d3-geo";
import { feature } from "topojson-client";

import { assetBase, namespace } from "./common.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const WIDTH = 960;
const HEIGHT = 500;
const LEGEND_HEIGHT = 46;

// Sequential ramp (ColorBrewer "Blues", 6 classes minus the palest), chosen
// so that each class stays distinguishable for common colour-vision deficits.
export const EMPTY_FILL = "#e4e7eb";
export const RAMP = ["#c6dbef", "#9ecae1", "#6baed6", "#3182bd", "#08519c"];
const CITY_FILL = "#d94801";

// world-atlas leaves these features without an ISO numeric id.
const NAMED_WITHOUT_ID = { Kosovo: "XK" };

let atlasPromise = null;

/** Fetch the topology and the numeric->alpha-2 table once per page. */
function loadAtlas(base) {
  if (!atlasPromise) {
    const get = (name) =>
      fetch(new URL(name, base), { credentials: "same-origin" }).then((r) => {
        if (!r.ok) throw new Error(`${name}: HTTP ${r.status}`);
        return r.json();
      });
    atlasPromise = Promise.all([get("countries-110m.json"), get("iso-numeric.json")]).then(
      ([topology, isoNumeric]) => {
        const countries = feature(topology, topology.objects.countries).features;
        for (const f of countries) {
          f.properties.iso2 = isoNumeric[f.id] || NAMED_WITHOUT_ID[f.properties.name] || "";
        }
        return countries;
      },
    );
    atlasPromise.catch(() => {
      atlasPromise = null; // let a later call try again
    });
  }
  return atlasPromise;
}

function el(name, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (parent) parent.appendChild(node);
  return node;
}

function setTitle(node, text) {
  let title = node.querySelector(":scope > title");
  if (!title) title = el("title", {}, node);
  title.textContent = text;
}

const fmt = (n) => Number(n).toLocaleString("en");

/** Normalise {iso2: count} to upper-case keys and positive integer counts. */
function normaliseCountries(countries) {
  const out = new Map();
  for (const [code, count] of Object.entries(countries || {})) {
    const n = Math.floor(Number(count));
    if (n > 0) out.set(code.toUpperCase(), n);
  }
  return out;
}

/**
 * Class edges for the ramp on a log scale: counts at a summit span 1 to
 * thousands, and a linear scale would paint everything but the top country pale.
 */
export function classEdges(max, classes = RAMP.length) {
  const edges = [1];
  for (let i = 1; i < classes; i++) {
    const edge = Math.round(Math.exp((Math.log(max + 1) * i) / classes));
    if (edge > edges[edges.length - 1]) edges.push(edge);
  }
  return edges; // class k holds counts in [edges[k], edges[k+1])
}

function classOf(count, edges) {
  let k = 0;
  while (k + 1 < edges.length && count >= edges[k + 1]) k++;
  // Spread fewer classes over the whole ramp so the darkest means "most".
  return edges.length === 1 ? RAMP.length - 1 : Math.round((k * (RAMP.length - 1)) / (edges.length - 1));
}

function summary(counts, cities, names, suppressedNote) {
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  const top = [...counts.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 5)
    .map(([code, n]) => `${names.get(code) || code} ${fmt(n)}`);
  let text = `World map: ${fmt(total)} locations in ${counts.size} countries`;
  if (cities.length) text += `, ${cities.length} cities marked`;
  text += ".";
  if (top.length) text += ` Most: ${top.join(", ")}.`;
  if (suppressedNote) text += ` ${suppressedNote}`;
  return text;
}

function drawLegend(g, edges, max) {
  g.replaceChildren();
  const box = 18;
  const swatches = [{ fill: EMPTY_FILL, label: "none" }];
  edges.forEach((lo, k) => {
    const hi = k + 1 < edges.length ? edges[k + 1] - 1 : max;
    if (lo > max) return; // no country reaches this class: a "2–1" swatch would be nonsense
    swatches.push({
      fill: RAMP[classOf(lo, edges)],
      label: lo === hi ? fmt(lo) : `${fmt(lo)}–${fmt(hi)}`,
    });
  });
  el("text", { x: 0, y: 12, class: "sc-map-legend-title" }, g).textContent = "Locations";
  let x = 80;
  for (const s of swatches) {
    el("rect", { x, y: 0, width: box, height: box, fill: s.fill, stroke: "#6b7280", "stroke-width": 0.5 }, g);
    const t = el("text", { x: x + box + 4, y: 13 }, g);
    t.textContent = s.label;
    x += box + 12 + 7 * s.label.length;
  }
}

function drawCities(g, cities, projection) {
  g.replaceChildren();
  const max = Math.max(1, ...cities.map((c) => Number(c.count) || 0));
  for (const c of cities) {
    const p = projection([Number(c.lon), Number(c.lat)]);
    if (!p || !Number.isFinite(p[0]) || !Number.isFinite(p[1])) continue;
    const n = Number(c.count) || 0;
    // Area, not radius, proportional to the count.
    const r = 2 + 8 * Math.sqrt(n / max);
    const dot = el("circle", { cx: p[0].toFixed(1), cy: p[1].toFixed(1), r: r.toFixed(1), class: "sc-map-city" }, g);
    setTitle(dot, `${c.name}: ${fmt(n)} location${n === 1 ? "" : "s"}`);
  }
}

function shade(svgEl, data) {
  const state = svgEl.__summitcastMap;
  const counts = normaliseCountries(data.countries);
  const cities = Array.isArray(data.cities) ? data.cities : [];
  const max = Math.max(1, ...counts.values());
  const edges = classEdges(max);
  for (const path of state.paths) {
    const code = path.dataset.iso;
    const n = counts.get(code) || 0;
    path.setAttribute("fill", n > 0 ? RAMP[classOf(n, edges)] : EMPTY_FILL);
    path.dataset.count = String(n);
    setTitle(path, `${path.dataset.name}: ${n ? fmt(n) : "no"} location${n === 1 ? "" : "s"}`);
  }
  drawCities(state.citiesG, cities, state.projection);
  drawLegend(state.legendG, edges, max);
  state.note.textContent = data.suppressedNote || "";
  svgEl.setAttribute("aria-label", summary(counts, cities, state.names, data.suppressedNote));
}

/**
 * Draw the world map into an <svg> element.
 * data: {countries: {ISO2: count}, cities: [{name, lat, lon, count}], suppressedNote}
 * opts: {assetBase} — where countries-110m.json lives (default: next to this script).
 * Resolves once drawn.
 */
export function drawMap(svgEl, data = {}, opts = {}) {
  const drawn = loadAtlas(opts.assetBase || assetBase).then((countries) => render(svgEl, countries, data));
  // updateMap calls made while the atlas loads wait for the drawing.
  svgEl.__summitcastMapDrawn = drawn;
  return drawn;
}

function render(svgEl, countries, data) {
  const projection = geoNaturalEarth1().fitExtent(
    [
      [4, 4],
      [WIDTH - 4, HEIGHT - 4],
    ],
    { type: "Sphere" },
  );
  const path = geoPath(projection);

  svgEl.replaceChildren();
  svgEl.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT + LEGEND_HEIGHT}`);
  svgEl.setAttribute("role", "img");
  svgEl.setAttribute("preserveAspectRatio", "xMidYMid meet");
  svgEl.classList.add("sc-map");

  el("path", { d: path({ type: "Sphere" }), class: "sc-map-sphere", fill: "#f5f9fc" }, svgEl);
  el("path", { d: path(geoGraticule10()), class: "sc-map-graticule", fill: "none", stroke: "#dde3ea", "stroke-width": 0.5 }, svgEl);

  const countriesG = el("g", { class: "sc-map-countries", stroke: "#ffffff", "stroke-width": 0.5 }, svgEl);
  const names = new Map();
  const paths = [];
  for (const f of countries) {
    const d = path(f);
    if (!d) continue;
    const p = el("path", { d, class: "sc-map-country", fill: EMPTY_FILL }, countriesG);
    p.dataset.iso = f.properties.iso2;
    p.dataset.name = f.properties.name;
    if (f.properties.iso2) names.set(f.properties.iso2, f.properties.name);
    paths.push(p);
  }
  const citiesG = el("g", { class: "sc-map-cities", fill: CITY_FILL, "fill-opacity": 0.75, stroke: "#ffffff", "stroke-width": 0.75 }, svgEl);
  const legendG = el("g", { class: "sc-map-legend", transform: `translate(8 ${HEIGHT + 8})`, "font-size": 12, fill: "#1f2933" }, svgEl);
  const note = el("text", { x: WIDTH - 8, y: HEIGHT + 40, "text-anchor": "end", "font-size": 12, fill: "#3e4c59", class: "sc-map-note" }, svgEl);

  svgEl.__summitcastMap = { projection, paths, names, citiesG, legendG, note };
  shade(svgEl, data);
  return svgEl;
}

/** Re-shade a drawn map with new counts (country paths are kept); returns a promise. */
export function updateMap(svgEl, data = {}) {
  if (svgEl.__summitcastMap) {
    shade(svgEl, data);
    return Promise.resolve(svgEl);
  }
  if (!svgEl.__summitcastMapDrawn) throw new Error("updateMap: call drawMap first");
  return svgEl.__summitcastMapDrawn.then(() => shade(svgEl, data)).then(() => svgEl);
}

Object.assign(namespace, { drawMap, updateMap });
