// Runs the built presence client (static/build/live.js, locationScreen) for many
// screens in one Node process, against a fake server and a simulated clock, and prints
// what happened as JSON. Driven by tests/web/test_screen_backoff.py.
//
//   node screen_sim.mjs <bundle> <scenario> <screens> <seconds>
//
// Scenarios (the fake server's answer):
//   refused    hello, then the first heartbeat is refused: error frame + close 4401
//   restart    the socket is closed with 1012 after the hello (a server restart)
//   herd       every heartbeat is acknowledged; at 30 s every socket is closed with 1012
import { readFileSync } from "node:fs";
import vm from "node:vm";

const [bundlePath, scenario, screensArg, secondsArg] = process.argv.slice(2);
const SCREENS = Number(screensArg);
const END_MS = Number(secondsArg) * 1000;
const INTERVAL_S = 10;

// --- a simulated clock: timers run in order of their due time, never in real time ----
let now = 0;
let nextId = 1;
const timers = new Map(); // id -> {at, fn}
// Every timer chain starts at one screen: a timer runs as the screen that set it, so a
// connection is counted for the screen that made it.
function setTimeoutFake(fn, ms = 0) {
  const id = nextId++;
  const screen = currentScreen;
  const run = () => {
    currentScreen = screen;
    fn();
  };
  timers.set(id, { at: now + Math.max(0, Number(ms) || 0), fn: run, seq: id });
  return id;
}
function clearTimeoutFake(id) {
  timers.delete(id);
}
const settle = () => new Promise((resolve) => setImmediate(resolve));

// --- the fake server ---------------------------------------------------------------
let currentScreen = 0;
const attempts = []; // {screen, at} of every connection attempt
const beats = []; // {screen, at} of every heartbeat sent
let herdClosed = false;
const open = new Set();

class FakeWebSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;

  constructor(url) {
    this.url = url;
    this.readyState = FakeWebSocket.CONNECTING;
    this.screen = currentScreen;
    attempts.push({ screen: this.screen, at: now });
    setTimeoutFake(() => this._open(), 5); // a handshake on a fast link
  }

  _open() {
    if (this.readyState !== FakeWebSocket.CONNECTING) return;
    this.readyState = FakeWebSocket.OPEN;
    open.add(this);
    if (this.onopen) this.onopen({});
    this._deliver({ type: "hello", interval_s: INTERVAL_S, timeout_s: 35 });
    if (scenario === "restart") setTimeoutFake(() => this._serverClose(1012, "server restart"), 20);
  }

  _deliver(message) {
    if (this.onmessage) this.onmessage({ data: JSON.stringify(message) });
  }

  send(text) {
    if (this.readyState !== FakeWebSocket.OPEN) throw new Error("not open");
    const message = JSON.parse(text);
    beats.push({ screen: this.screen, at: now });
    setTimeoutFake(() => {
      if (this.readyState !== FakeWebSocket.OPEN) return;
      if (scenario === "refused") {
        this._deliver({ type: "error", reason: "bad_signature" });
        this._serverClose(4401, "bad_signature");
      } else {
        this._deliver({ type: "ack", seq: message.seq });
      }
    }, 2);
  }

  _serverClose(code, reason) {
    if (this.readyState === FakeWebSocket.CLOSED) return;
    this.readyState = FakeWebSocket.CLOSED;
    open.delete(this);
    setTimeoutFake(() => this.onclose && this.onclose({ code, reason }), 1);
  }

  close() {
    if (this.readyState === FakeWebSocket.CLOSED) return;
    this.readyState = FakeWebSocket.CLOSED;
    open.delete(this);
    setTimeoutFake(() => this.onclose && this.onclose({ code: 1005, reason: "" }), 1);
  }
}

// --- a page for the bundle: the browser globals locationScreen uses -----------------
const noop = () => {};
const page = {
  setTimeout: setTimeoutFake,
  clearTimeout: clearTimeoutFake,
  setInterval: noop,
  clearInterval: noop,
  WebSocket: FakeWebSocket,
  // No crypto.subtle (as on plain http): hmac.js signs in JavaScript, synchronously.
  crypto: { getRandomValues: (a) => globalThis.crypto.getRandomValues(a) },
  TextEncoder,
  URL,
  URLSearchParams,
  btoa,
  console,
  document: { currentScript: null, visibilityState: "visible", addEventListener: noop, removeEventListener: noop },
  navigator: { onLine: true },
  location: { href: "http://summit.example/l/abc" },
  addEventListener: noop,
  removeEventListener: noop,
};
page.window = page;
page.globalThis = page;
vm.createContext(page);
vm.runInContext(readFileSync(bundlePath, "utf8"), page, { filename: "live.js" });
const locationScreen = page.summitcast.locationScreen;

const statuses = Array.from({ length: SCREENS }, () => []); // per screen: [{at, state, error, retryInMs}]
for (let i = 0; i < SCREENS; i++) {
  currentScreen = i;
  locationScreen({
    wsUrl: "ws://summit.example/live/ws",
    locationId: `loc${i}`,
    secret: "an-old-secret",
    intervalS: INTERVAL_S,
    wakeLock: false,
    onStatus(s) {
      statuses[i].push({ at: now, state: s.state, error: s.error || null, retryInMs: s.retryInMs ?? null });
    },
  });
}

while (timers.size) {
  await settle();
  let next = null;
  for (const [id, t] of timers) if (!next || t.at < next.t.at || (t.at === next.t.at && t.seq < next.t.seq)) next = { id, t };
  if (next.t.at > END_MS) break;
  timers.delete(next.id);
  now = next.t.at;
  if (scenario === "herd" && !herdClosed && now >= 30000) {
    herdClosed = true;
    for (const sock of [...open]) sock._serverClose(1012, "server restart");
  }
  next.t.fn();
}

process.stdout.write(
  JSON.stringify({
    attempts,
    beats,
    statuses,
    refused_waits_ms: statuses.flat().filter((s) => s.state === "refused").map((s) => s.retryInMs),
  }),
);
