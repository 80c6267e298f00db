// The location screen: a full-screen player of the summit's session on air, what is on
// now and next as the broadcast has it (pushed over the presence socket), and the
// presence heartbeat (build/live.js locationScreen). It runs unattended for a whole
// day: it picks up a session when one goes on air, and the player recovers from
// network drops and encoder restarts by itself. The secret comes from the link's
// fragment (#k=…), which the browser never sends to the server.
(function () {
  "use strict";
  const main = document.getElementById("screen");
  const status = document.getElementById("presence-status");
  if (!main || !status) return;
  const ns = window.summitcast || {};
  const block = main.querySelector("[data-player]");
  const video = block.querySelector("video");
  const slate = document.getElementById("screen-slate");
  const secret = new URLSearchParams(window.location.hash.slice(1)).get("k");
  const interval = Number(main.dataset.interval) || 10;
  const FALLBACK_POLL_MS = 30000; // now.json, only while the socket is blocked
  const RETRY_CAP_MS = 8000; // a hall screen retries at least this often once offline
  const REFUSED = {
    pending: "Waiting for an organiser to approve this location: it counts as soon as they do.",
    revoked: "This location was revoked by the organisers: ask them if it should still be counted.",
    bad_signature: "This screen's link is no longer valid: ask the organiser for the new link.",
    unknown_location: "This link is not valid: open the whole link you were sent, or ask the organiser for a new one.",
    // A socket closed with 1008: nothing a reload of an up-to-date page would send.
    refused: "The server refused this screen: reload the page; if that does not help, ask the organiser.",
    stale: "This screen's clock is wrong: set the date and time, then reload.",
    future: "This screen's clock is wrong: set the date and time, then reload.",
    // The server keeps the connection; the next heartbeats count once it is back.
    unavailable: "The server is briefly unavailable: this screen keeps trying by itself.",
  };
  let refusedUntil = 0;
  const refusedCover = document.getElementById("screen-refused");
  let player = null;
  let playing = null; // the master playlist the player plays
  let pollTimer = null;

  // Language and captions are chosen once per screen and kept across reloads and
  // sessions, by location (several screens of one browser profile keep their own).
  const prefsKey = `summitcast.screen.${main.dataset.locationId}`;
  function loadPrefs() {
    try {
      return JSON.parse(window.localStorage.getItem(prefsKey)) || {};
    } catch {
      return {};
    }
  }
  function savePrefs(choice) {
    const prefs = { audioLang: choice.audioLang || null, subtitleLang: choice.subtitleLang };
    try {
      window.localStorage.setItem(prefsKey, JSON.stringify(prefs));
    } catch {
      // private mode or full storage: the choice lasts until the page is reloaded
    }
  }

  function showStatus(state, text) {
    status.dataset.state = state;
    status.textContent = text;
  }

  function setLine(id, title, when) {
    const el = document.getElementById(id);
    el.querySelector(".title").textContent = title || "—";
    el.querySelector(".when").textContent = when || "";
  }

  function plannedAt(iso) {
    if (!iso) return "";
    try {
      const zone = main.dataset.zone || undefined;
      const at = new Intl.DateTimeFormat(undefined, {
        weekday: "short",
        hour: "2-digit",
        minute: "2-digit",
        timeZone: zone,
        timeZoneName: "short",
      }).format(new Date(iso));
      return `planned ${at}`;
    } catch {
      return "";
    }
  }

  function startPlayer(master) {
    if (player && playing === master) return;
    stopPlayer();
    const prefs = loadPrefs();
    playing = master;
    player = ns.mountPlayer(video, {
      src: master,
      controlsEl: block.querySelector(".player-controls"),
      nativeControls: false, // a wall screen: our controls only, nothing over the picture
      // Sound turned on stays on for the next session (the page has had its click).
      muted: video.muted,
      audioLang: prefs.audioLang,
      subtitleLang: prefs.subtitleLang,
      // Sound only when the link cannot carry the lowest video rung (player.js says when).
      autoAudioOnly: true,
      maxRetryDelayMs: RETRY_CAP_MS,
      onChoice: savePrefs,
      onAudioOnly(on) {
        if (on) block.dataset.soundOnly = "Sound only: the connection is too slow for video";
        else delete block.dataset.soundOnly;
      },
    });
  }

  function stopPlayer() {
    if (!player) return;
    delete block.dataset.soundOnly;
    player.destroy();
    player = null;
    playing = null;
    video.removeAttribute("src");
    video.load(); // let go of the last frame: the slate shows instead
  }

  /** Show a view of the broadcast (web/on_air.py screen_view): play it or show the slate. */
  function show(view) {
    if (!view || view.type !== "on_air") return;
    if (view.active && view.master) {
      setLine("on-now", view.on_air, view.session);
      setLine("up-next", view.next, "");
      // Until the encoder has written a few segments its playlists answer 404: wait
      // for the server to say the stream is ready (a playing screen keeps playing).
      if (view.ready || playing === view.master) {
        slate.hidden = true;
        startPlayer(view.master);
      } else {
        slate.querySelector(".slate-title").textContent = "The broadcast is starting…";
        slate.hidden = false;
      }
      return;
    }
    setLine("on-now", null, "");
    setLine("up-next", view.session, plannedAt(view.starts_at));
    slate.querySelector(".slate-title").textContent =
      view.status === "ended" ? "This session has ended." : "The broadcast has not started yet.";
    slate.hidden = false;
    stopPlayer();
  }

  function pollNow() {
    fetch(main.dataset.nowUrl, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : null))
      .then(show)
      .catch(() => {
        /* keep what is shown; the next poll or push brings the rest */
      });
  }

  function polling(on) {
    if (on && pollTimer === null) {
      pollNow();
      pollTimer = setInterval(pollNow, FALLBACK_POLL_MS);
    } else if (!on && pollTimer !== null) {
      clearInterval(pollTimer);
      pollTimer = null;
    }
  }

  try {
    show(JSON.parse(main.dataset.view));
  } catch {
    pollNow();
  }

  // One click or key press turns the sound on (browsers start video muted).
  function unmute(e) {
    if (!player || !video.muted) return;
    if (e && e.target && e.target.closest && e.target.closest("select, a, button:not([data-action=unmute])")) return;
    player.unmute();
  }
  document.addEventListener("keydown", unmute);
  video.addEventListener("click", unmute);

  const fullscreen = main.querySelector("[data-action=fullscreen]");
  fullscreen.addEventListener("click", () => {
    const p = document.documentElement.requestFullscreen && document.documentElement.requestFullscreen();
    if (p && p.catch) p.catch(() => {});
  });

  if (!secret || !ns.locationScreen) {
    showStatus("no-secret", "This link is incomplete: open the whole link you got when registering.");
    return;
  }

  const screen = ns.locationScreen({
    wsUrl: main.dataset.wsUrl,
    heartbeatUrl: main.dataset.heartbeatUrl,
    locationId: main.dataset.locationId,
    secret: secret,
    intervalS: interval,
    onMessage: show,
    onStatus(s) {
      // Pushes come over the socket; without it, ask now.json now and then.
      polling(s.transport === "http");
      // Refused for good (server closed the socket with 4401/4403/1008): say what to do,
      // over the picture, until a heartbeat counts again (live.js retries in minutes).
      if (s.state === "refused") {
        const text = REFUSED[s.error] || REFUSED.refused;
        refusedCover.querySelector(".slate-title").textContent = text;
        refusedCover.hidden = false;
        showStatus(s.error in REFUSED ? s.error : "refused", text);
        return;
      }
      if (s.state === "ok") refusedCover.hidden = true;
      if (!refusedCover.hidden) return; // trying again: keep saying what is wrong
      if (s.state === "error" && REFUSED[s.error]) {
        // A refusal answers the heartbeat just sent: keep showing it until a
        // later heartbeat goes unanswered by one.
        refusedUntil = Date.now() + 1500 * interval;
        showStatus(s.error, REFUSED[s.error]);
      } else if (s.state === "ok" && Date.now() > refusedUntil) {
        showStatus("online", "Connected: counted as watching");
      } else if (s.state === "reconnecting" || s.state === "fallback") {
        showStatus(s.state, "Connection lost: trying again…");
      }
    },
  });
  window.addEventListener("pagehide", () => screen.stop());
})();
