// Pieces shared by the bundles. Each bundle is a classic script (IIFE) that
// adds its functions to window.summitcast.

/** The window.summitcast namespace, shared by every bundle on the page. */
export const namespace = (window.summitcast = window.summitcast || {});

// Bundles run synchronously when their <script> is parsed, so currentScript
// is this bundle: assets beside it are found wherever the app is mounted.
const script = document.currentScript;
export const assetBase = script && script.src
  ? new URL(".", script.src).href
  : new URL("/static/build/", window.location.href).href;

/**
 * Delay before retry number `attempt` (0-based): exponential backoff with
 * "equal jitter" (half fixed, half random), so that thousands of screens
 * dropped together do not all come back in the same second.
 */
export function backoffMs(attempt, baseMs = 1000, capMs = 30000, random = Math.random) {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 16));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** http(s)://… or a path -> ws(s)://… on the same origin. */
export function toWebSocketUrl(url) {
  const u = new URL(url, window.location.href);
  if (u.protocol === "http:") u.protocol = "ws:";
  else if (u.protocol === "https:") u.protocol = "wss:";
  return u.href;
}

/** ws(s)://… or a path -> http(s)://… on the same origin. */
export function toHttpUrl(url) {
  const u = new URL(url, window.location.href);
  if (u.protocol === "ws:") u.protocol = "http:";
  else if (u.protocol === "wss:") u.protocol = "https:";
  return u.href;
}
