// Build summitcast's browser assets into src/summitcast/web/static/build/.
//
// Run from the repository root after `npm ci`: `node frontend/build.mjs`.
// Everything a page needs is written here and served by summitcast itself:
// no page may load anything from a CDN (see DESIGN.md, threat model).
import { createHash } from "node:crypto";
import { copyFile, mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import * as esbuild from "esbuild";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const src = join(root, "frontend", "src");
const out = join(root, "src", "summitcast", "web", "static", "build");

await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });

const licences = new Map(); // package name -> {version, license, text}

for (const name of ["player", "map", "live", "golive", "passkey"]) {
  const result = await esbuild.build({
    entryPoints: [join(src, `${name}.js`)],
    outfile: join(out, `${name}.js`),
    bundle: true,
    // IIFE: each bundle is a classic <script> that adds its functions to
    // window.summitcast, so server-rendered pages need no module loader.
    format: "iife",
    // Chromium, Firefox ESR (Tor Browser) and Safari of the last few years.
    target: ["es2020"],
    minify: true,
    // Licence headers are gathered in THIRD-PARTY-LICENSES.txt instead.
    legalComments: "none",
    logLevel: "warning",
    metafile: true,
    write: false,
  });
  const packages = await bundledPackages(Object.keys(result.metafile.inputs));
  const banner =
    `/*! summitcast ${name}.js — bundles ` +
    (packages.map((p) => `${p.name} ${p.version} (${p.license})`).join(", ") || "no packages") +
    "; licence texts in THIRD-PARTY-LICENSES.txt */\n";
  await writeFile(join(out, `${name}.js`), banner + result.outputFiles[0].text);
  for (const p of packages) licences.set(p.name, p);
}

/** The npm packages whose files went into a bundle, with their licences. */
async function bundledPackages(inputs) {
  const names = new Set();
  for (const input of inputs) {
    const m = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//);
    if (m) names.add(m[1]);
  }
  const found = [];
  for (const pkgName of [...names].sort()) {
    const dir = join(root, "node_modules", pkgName);
    const meta = JSON.parse(await readFile(join(dir, "package.json"), "utf8"));
    const file = (await readdir(dir)).find((f) => /^licen[cs]e/i.test(f));
    const text = file ? await readFile(join(dir, file), "utf8") : `License: ${meta.license}\n`;
    found.push({ name: pkgName, version: meta.version, license: meta.license, text });
  }
  return found;
}

const copies = [
  [join(root, "node_modules", "world-atlas", "countries-110m.json"), "countries-110m.json"],
  [join(root, "frontend", "iso-numeric.json"), "iso-numeric.json"],
  [join(src, "summitcast.css"), "summitcast.css"],
];
for (const [from, name] of copies) {
  await copyFile(from, join(out, name));
}

licences.set("world-atlas", {
  ...(await bundledPackages([join(root, "node_modules", "world-atlas", "package.json")]))[0],
});

// Country flags as images (flag-icons, MIT): a regional-indicator emoji shows as two
// boxes where the system has no emoji font. Only the 4:3 SVGs of two-letter codes
// (~1.7 MB on disk; a page loads only the flags it shows, most of 1-5 KB).
const flagsFrom = join(root, "node_modules", "flag-icons", "flags", "4x3");
await mkdir(join(out, "flags"));
const flagFiles = (await readdir(flagsFrom)).filter((f) => /^[a-z]{2}\.svg$/.test(f));
for (const file of flagFiles) {
  await copyFile(join(flagsFrom, file), join(out, "flags", file));
}
licences.set("flag-icons", {
  ...(await bundledPackages([join(root, "node_modules", "flag-icons", "package.json")]))[0],
});
await writeFile(
  join(out, "THIRD-PARTY-LICENSES.txt"),
  [...licences.values()]
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((p) => `${"=".repeat(72)}\n${p.name} ${p.version} (${p.license})\n${"=".repeat(72)}\n${p.text.trim()}\n`)
    .join("\n"),
);

// A manifest of content hashes lets templates add ?v=<hash> for cache busting.
const manifest = {};
for (const entry of (await readdir(out, { withFileTypes: true })).sort((a, b) =>
  a.name.localeCompare(b.name),
)) {
  if (!entry.isFile()) continue; // flags/: listed below as one line
  const name = entry.name;
  const bytes = await readFile(join(out, name));
  manifest[name] = {
    bytes: bytes.length,
    sha256: createHash("sha256").update(bytes).digest("hex").slice(0, 16),
  };
}
await writeFile(join(out, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");

for (const [name, info] of Object.entries(manifest)) {
  console.log(`build/${name}\t${(info.bytes / 1024).toFixed(1)} KiB`);
}
console.log(`build/flags/\t${flagFiles.length} SVG files`);
