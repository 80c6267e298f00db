// Real-time clients: live counters pushed by the server, and the presence
// heartbeat of a location screen.
import { backoffMs, namespace, toHttpUrl, toWebSocketUrl } from "./common.js";
import { hmacSha256 } from "./hmac.js";

const WS_FAILURES_BEFORE_SSE = 2;

// A screen's socket closed with one of these was refused for a reason retrying cannot
// change (web/presence_socket.py: 4401 a wrong, re-issued or unknown link, 4403 revoked;
// 1008 what no honest screen sends): it waits minutes, not seconds, before trying again.
// Refused screens used to reconnect every ~0.75 s for ever (issue 13).
export const REFUSED_CLOSE_CODES = { 1008: "refused", 4401: "bad_signature", 4403: "revoked" };
export const REFUSED_BASE_MS = 60000; // the first wait is 30-60 s (equal jitter)
export const REFUSED_CAP_MS = 300000; // then at most 5 minutes apart
// A network drop or a server restart (1012): back quickly, at most 8 s apart.
export const RETRY_CAP_MS = 8000;

/**
 * Subscribe to server pushes: WebSocket first, Server-Sent Events when the
 * WebSocket cannot connect (some proxies and censored networks block it).
 * Each message is JSON and handed to onUpdate(data). Reconnects for ever with
 * exponential backoff and jitter.
 * opts: {wsUrl, sseUrl, onStatus(state, transport)}; both URLs default to `url`.
 * Returns {close(), transport}.
 */
export function liveCounters(url, onUpdate, opts = {}) {
  const wsUrl = toWebSocketUrl(opts.wsUrl || url);
  const sseUrl = toHttpUrl(opts.sseUrl || url);
  const status = opts.onStatus || (() => {});
  const handle = { transport: null, close };
  let attempt = 0;
  let wsFailures = 0;
  let conn = null;
  let timer = null;
  let closed = false;

  function deliver(text) {
    let data;
    try {
      data = JSON.parse(text);
    } catch {
      return; // not ours (e.g. a keep-alive); ignore
    }
    attempt = 0;
    onUpdate(data);
  }

  function retry() {
    if (closed) return;
    conn = null;
    status("reconnecting", handle.transport);
    timer = setTimeout(connect, backoffMs(attempt++));
  }

  function connect() {
    if (closed) return;
    const useSse = wsFailures >= WS_FAILURES_BEFORE_SSE && typeof EventSource !== "undefined";
    if (!useSse && typeof WebSocket !== "undefined") {
      handle.transport = "websocket";
      let opened = false;
      const ws = new WebSocket(wsUrl);
      conn = ws;
      ws.onopen = () => {
        opened = true;
        wsFailures = 0;
        attempt = 0;
        status("open", "websocket");
      };
      ws.onmessage = (e) => deliver(e.data);
      ws.onclose = () => {
        if (conn !== ws) return;
        if (!opened) wsFailures += 1;
        retry();
      };
      return;
    }
    handle.transport = "sse";
    const es = new EventSource(sseUrl);
    let opened = false;
    conn = es;
    es.onopen = () => {
      opened = true;
      attempt = 0;
      status("open", "sse");
    };
    es.onmessage = (e) => deliver(e.data);
    es.onerror = () => {
      // EventSource retries on its own with a fixed delay; we want backoff
      // with jitter, so close and schedule. SSE that worked stays in use;
      // if SSE fails too, WebSocket gets another chance.
      if (conn !== es) return;
      es.close();
      if (!opened) wsFailures = 0;
      retry();
    };
  }

  function close() {
    closed = true;
    clearTimeout(timer);
    if (conn) {
      const c = conn;
      conn = null;
      c.close();
    }
    status("closed", handle.transport);
  }

  connect();
  return handle;
}

function randomEpoch() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return base64url(bytes);
}

function base64url(bytes) {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * The canonical bytes a heartbeat signature covers; must equal
 * summitcast.domain.presence.canonical_message.
 */
export function canonicalMessage(locationId, epoch, seq, ts) {
  return new TextEncoder().encode(`summitcast-heartbeat-v1\n${locationId}\n${epoch}\n${seq}\n${ts}`);
}

/** Sign one heartbeat; returns the wire token and its fields (see domain/presence.py). */
export async function signHeartbeat(secret, locationId, epoch, seq, ts) {
  const key = typeof secret === "string" ? new TextEncoder().encode(secret) : secret;
  const sig = base64url(await hmacSha256(key, canonicalMessage(locationId, epoch, seq, ts)));
  return { token: `hb1.${locationId}.${epoch}.${seq}.${ts}.${sig}`, location_id: locationId, epoch, seq, ts, sig };
}

/**
 * The presence client of a location screen.
 * opts: {wsUrl, heartbeatUrl, locationId, secret (string, used as its UTF-8
 * bytes, or Uint8Array), intervalS = 15 (until the server says hello),
 * onStatus({state, transport, seq, error}), onMessage(msg) for the server's other
 * messages (e.g. {type:"on_air", …}, pushed when the broadcast changes), wakeLock = true}
 * The server greets with {type:"hello", interval_s, epoch?}; the screen then
 * sends {type:"hb", token, location_id, epoch, seq, ts, sig, ack: true} every
 * interval_s (shortened by up to 20 % of jitter), its first one at once on the
 * page's first connection (the host sees "connected" now) and then at a random
 * phase of the interval, so that screens that connected together (a herd, a server
 * restart) do not go on beating in the same instant; after a reconnect the first
 * beat already waits a random part of the interval (the location stays online: the
 * server's timeout is several intervals). It reports "ok" only when the
 * server's {type:"ack"} for it arrives: a socket that died without closing (a cut
 * cable, a sleeping router) still accepts sends, so a send proves nothing. A beat
 * that gets no answer within ackTimeoutMs ends the socket and it connects again.
 * Without a WebSocket it POSTs the same JSON to heartbeatUrl.
 * A socket closed with a refusal (REFUSED_CLOSE_CODES) reports
 * {state: "refused", error: <reason word>, retryInMs} and waits 30 s to 5 minutes
 * (exponential, jittered) before trying again; other drops retry within 1-8 s.
 * Returns {stop(), state}.
 */
export function locationScreen(opts) {
  const { locationId, secret } = opts;
  if (!locationId || !secret) throw new Error("locationScreen: locationId and secret are required");
  const report = opts.onStatus || (() => {});
  const state = {
    transport: null,
    epoch: randomEpoch(),
    seq: 0,
    intervalS: opts.intervalS || 15,
    sent: 0,
    lastError: null,
  };
  let ws = null;
  let hbTimer = null;
  let retryTimer = null;
  let ackTimer = null;
  let attempt = 0; // drops in a row (reset by any answer to a heartbeat)
  let refusals = 0; // refusals in a row (reset only by a counted beat)
  let connectedBefore = false;
  let stopped = false;
  let wakeLock = null;
  const random = Math.random;

  function status(name, extra = {}) {
    report({ state: name, transport: state.transport, seq: state.seq, ...extra });
  }

  function nextDelayMs() {
    // Jitter only shortens the interval (as presence.next_interval does), so the
    // gap never exceeds what the server's timeout allows for.
    return state.intervalS * 1000 * (1 - 0.2 * random());
  }

  function phaseMs() {
    // A random point of the interval: beats of screens that connected together spread.
    return state.intervalS * 1000 * random();
  }

  async function heartbeat() {
    const hb = await signHeartbeat(secret, locationId, state.epoch, state.seq, Math.floor(Date.now() / 1000));
    state.seq += 1;
    return { type: "hb", ...hb };
  }

  function schedule(send, delayMs = nextDelayMs()) {
    clearTimeout(hbTimer);
    hbTimer = setTimeout(async () => {
      if (stopped) return;
      try {
        await send();
        state.sent += 1;
        // Over HTTP the answer came with the send; a socket's comes as an "ack".
        if (send === sendOverHttp) status("ok");
      } catch (e) {
        state.lastError = String(e && e.message ? e.message : e);
        status("error", { error: state.lastError });
      }
      if (!stopped) schedule(send);
    }, delayMs);
  }

  function ackTimeoutMs() {
    // Long enough for a slow link's round trip, short enough that the screen says it
    // lost the server well before the server's own timeout drops the location.
    return opts.ackTimeoutMs || Math.min(10000, Math.max(3000, state.intervalS * 500));
  }

  async function sendOverWebSocket() {
    if (!ws || ws.readyState !== WebSocket.OPEN) throw new Error("websocket not open");
    const sock = ws;
    sock.send(JSON.stringify({ ...(await heartbeat()), ack: true }));
    if (!ackTimer) ackTimer = setTimeout(() => silent(sock), ackTimeoutMs());
  }

  /** The server answered a beat (ack or refusal): the connection is alive. */
  function answered() {
    clearTimeout(ackTimer);
    ackTimer = null;
  }

  /** No answer to a beat: drop the socket without waiting for a close that may never come. */
  function silent(sock) {
    ackTimer = null;
    if (ws !== sock || stopped) return;
    state.lastError = "no answer from the server";
    sock.onclose = null;
    sock.onmessage = null;
    try {
      sock.close();
    } catch {
      // already closing
    }
    lost(sock, true);
  }

  async function sendOverHttp() {
    const r = await fetch(opts.heartbeatUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(await heartbeat()),
      credentials: "same-origin",
      cache: "no-store",
    });
    if (!r.ok) throw new Error(`heartbeat: HTTP ${r.status}`);
    try {
      const body = await r.json();
      if (body && body.interval_s > 0) state.intervalS = Number(body.interval_s);
    } catch {
      // an empty 204 is fine
    }
    attempt = 0;
  }

  function useHttp() {
    if (!opts.heartbeatUrl) return false;
    state.transport = "http";
    status("fallback");
    // Send one right away so the location shows up without waiting an interval.
    sendOverHttp().then(
      () => status("ok"),
      (e) => status("error", { error: String(e.message || e) }),
    );
    schedule(sendOverHttp);
    return true;
  }

  function connect() {
    if (stopped) return;
    if (!opts.wsUrl || typeof WebSocket === "undefined") {
      if (!useHttp()) status("error", { error: "no wsUrl and no heartbeatUrl" });
      return;
    }
    state.transport = "websocket";
    let greeted = false;
    let refusedFor = null; // the reason of the last refusal on this socket
    const sock = new WebSocket(toWebSocketUrl(opts.wsUrl));
    ws = sock;
    status("connecting");
    sock.onmessage = async (e) => {
      let msg;
      try {
        msg = JSON.parse(e.data);
      } catch {
        return;
      }
      if (msg.type === "hello") {
        // No reset of the backoff here: a hello only says the server is up, and a
        // refusal may follow it (that reset made refused screens retry every ~0.75 s).
        greeted = true;
        if (msg.interval_s > 0) state.intervalS = Number(msg.interval_s);
        if (typeof msg.epoch === "string" && /^[A-Za-z0-9_-]{8,64}$/.test(msg.epoch) && msg.epoch !== state.epoch) {
          state.epoch = msg.epoch;
          state.seq = 0;
        }
        clearTimeout(hbTimer);
        if (connectedBefore) {
          // A reconnect (maybe of every screen at once): the first beat waits too.
          schedule(sendOverWebSocket, phaseMs());
          return;
        }
        connectedBefore = true;
        try {
          await sendOverWebSocket(); // first heartbeat at once, the next at a random phase
          state.sent += 1;
        } catch (err) {
          status("error", { error: String(err.message || err) });
        }
        if (ws === sock && !stopped) schedule(sendOverWebSocket, phaseMs());
      } else if (msg.type === "ack") {
        answered();
        attempt = 0;
        refusals = 0;
        status("ok");
      } else if (msg.type === "error") {
        answered();
        attempt = 0; // the server is there and answers (e.g. "pending"): not a drop
        refusedFor = msg.reason || msg.error || "refused";
        state.lastError = refusedFor;
        status("error", { error: state.lastError });
      } else if (opts.onMessage) {
        opts.onMessage(msg);
      }
    };
    sock.onclose = (event) => {
      const code = event && event.code;
      if (code in REFUSED_CLOSE_CODES) {
        refused(sock, (event.reason || refusedFor || REFUSED_CLOSE_CODES[code]).slice(0, 40));
      } else {
        lost(sock, greeted);
      }
    };
  }

  /** The server refused this screen for good (until an organiser acts): try again in minutes. */
  function refused(sock, reason) {
    if (ws !== sock || stopped) return;
    ws = null;
    clearTimeout(hbTimer);
    answered();
    state.epoch = randomEpoch();
    state.seq = 0;
    state.lastError = reason;
    const retryInMs = backoffMs(refusals++, REFUSED_BASE_MS, REFUSED_CAP_MS, random);
    status("refused", { error: reason, retryInMs });
    retryTimer = setTimeout(connect, retryInMs);
  }

  /** A socket ended (closed, or silent): try again with backoff, or fall back to HTTP. */
  function lost(sock, greeted) {
    if (ws !== sock || stopped) return;
    ws = null;
    clearTimeout(hbTimer);
    answered();
    // A fresh epoch per connection, as presence.py expects.
    state.epoch = randomEpoch();
    state.seq = 0;
    // A socket that failed while the browser is offline says nothing about proxies:
    // only fall back to HTTP when the network is there and the socket still fails.
    if (!greeted && attempt >= 1 && navigator.onLine !== false && useHttp()) {
      // WebSocket blocked: keep heartbeats flowing over HTTP and try the
      // socket again later.
      // HTTP heartbeats go on while it connects; its hello takes over.
      retryTimer = setTimeout(connect, Math.max(60000, backoffMs(attempt++, 1000, 300000, random)));
      return;
    }
    status("reconnecting");
    retryTimer = setTimeout(connect, backoffMs(attempt++, 1000, RETRY_CAP_MS, random));
  }

  async function keepAwake() {
    // A location screen runs for hours on a wall: ask the display to stay on.
    if (opts.wakeLock === false || !navigator.wakeLock) return;
    try {
      wakeLock = await navigator.wakeLock.request("screen");
    } catch {
      wakeLock = null; // not allowed without a gesture or in this browser
    }
  }
  const onVisible = () => document.visibilityState === "visible" && !stopped && keepAwake();
  document.addEventListener("visibilitychange", onVisible);
  // The network is back (a hall's Wi-Fi dropped): reconnect now, not after the backoff
  // that grew while it was away. Only this screen does, so there is no herd.
  const onOnline = () => {
    // A refused screen waits its minutes: the network coming back changes nothing.
    if (stopped || refusals > 0 || !opts.wsUrl || (ws && ws.readyState <= WebSocket.OPEN)) return;
    clearTimeout(retryTimer);
    attempt = 0;
    connect();
  };
  window.addEventListener("online", onOnline);
  keepAwake();

  connect();
  return {
    state,
    stop() {
      stopped = true;
      clearTimeout(hbTimer);
      clearTimeout(retryTimer);
      answered();
      document.removeEventListener("visibilitychange", onVisible);
      window.removeEventListener("online", onOnline);
      if (ws) ws.close();
      if (wakeLock) wakeLock.release().catch(() => {});
      status("stopped");
    },
  };
}

Object.assign(namespace, { liveCounters, locationScreen, signHeartbeat, canonicalMessage });
