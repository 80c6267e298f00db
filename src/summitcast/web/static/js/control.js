// The control room: buttons send their form without leaving the page (the preview keeps
// playing), N and H press "take next" and "hold", and the state is polled once a second
// so status, buttons, run of show and health follow items that end by themselves.
(function () {
  "use strict";
  const room = document.getElementById("control-room");
  if (!room) return;
  const alarm = document.getElementById("alarm");
  const actionError = document.getElementById("action-error");
  const remaining = room.querySelector('[data-field="remaining"]');
  const forms = Array.from(room.querySelectorAll("form[data-control-form]"));
  const SHORTCUTS = { n: "next", h: "hold" };
  let busy = false;
  // When the item on air ends, in this page's clock (ms); null when no item plays.
  let endsAt = null;

  function field(name) {
    return room.querySelector(`[data-field="${name}"]`);
  }
  function setText(el, value) {
    if (el) el.textContent = value === null || value === undefined || value === "" ? "—" : String(value);
  }
  function show(name, value) {
    setText(room.querySelector(`[data-health="${name}"]`), value);
  }
  function buttonFor(action) {
    return room.querySelector(`button[data-action="${action}"]`);
  }

  function clock(seconds) {
    const whole = Math.round(Math.abs(seconds));
    const h = Math.floor(whole / 3600);
    const m = Math.floor((whole % 3600) / 60);
    const s = String(whole % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
  }
  function drawRemaining() {
    const text = endsAt === null ? "" : leftText((endsAt - Date.now()) / 1000);
    if (remaining) {
      remaining.hidden = !text;
      remaining.textContent = text;
    }
    const current = room.querySelector("#run-of-show li.current [data-run-state]");
    if (current) current.textContent = text ? `on air · ${text}` : "on air";
  }
  function leftText(left) {
    return Math.round(left) < 0 ? `over by ${clock(left)}` : `${clock(left)} left`;
  }

  function applyRun(v) {
    for (const li of room.querySelectorAll("#run-of-show li")) {
      const index = Number(li.dataset.index);
      const current = index === v.current_index;
      const cued = !current && index === v.cued_index;
      li.classList.toggle("current", current);
      li.classList.toggle("cued", cued);
      if (current) li.setAttribute("aria-current", "true");
      else li.removeAttribute("aria-current");
      const state = li.querySelector("[data-run-state]");
      if (state) state.textContent = current ? "on air" : cued ? "cued" : "";
    }
  }

  function applyHealth(v) {
    const h = v.health;
    const reporter = field("reported_by");
    if (reporter) {
      reporter.textContent = v.reported_by || "";
      reporter.title = v.node || "";
    }
    if (h) {
      show("speed", h.speed === null ? null : `${h.speed}× real time`);
      show("dropped_frames", h.dropped_frames);
      show("segment_age_s", h.segment_age_s === null ? null : `${h.segment_age_s} s ago`);
      show("restarts", h.restarts);
      show("input", h.input.receiving || "no studio connected");
      show("input_bitrate", h.input.bitrate_kbps ? `${h.input.bitrate_kbps} kbit/s` : null);
      show("feeding", h.on_air.label);
      show("last_error", h.last_error);
      const sending = Object.keys(h.interpreters || {}).filter((code) => h.interpreters[code]);
      show("interpreters", sending.length ? sending.join(", ") : "none connected");
    }
    const problem = (h && h.alarm) || v.manager_error;
    alarm.hidden = !problem;
    alarm.textContent = problem || "";
  }

  // One view of the broadcast (health.json, or the answer to a button) onto the page.
  // A poll sent before a button's change may answer after it: an older generation is
  // dropped, so the buttons never flick back to the state before the press.
  function apply(v) {
    if (v.generation < Number(room.dataset.generation || 0)) return;
    const status = field("status");
    status.textContent = v.status_text;
    status.dataset.status = v.status;
    status.dataset.live = v.live ? "true" : "false";
    setText(field("on_air"), v.on_air);
    setText(field("next"), v.next);
    const allowed = new Set(v.allowed);
    for (const button of room.querySelectorAll("button[data-action]")) {
      button.disabled = busy || !allowed.has(button.dataset.action);
    }
    endsAt = v.remaining_s === null || v.remaining_s === undefined ? null : Date.now() + v.remaining_s * 1000;
    applyRun(v);
    drawRemaining();
    applyHealth(v);
    mountPreview(v);
    room.dataset.generation = String(v.generation);
  }

  // The preview joins the page once the encoder has written segments (before that its
  // playlists answer 404): the player's block from the template, then its scripts in
  // order. It leaves when the session ends, so that the next start mounts it afresh
  // once that run has segments instead of asking for playlists that are not there yet.
  const template = document.getElementById("preview-template");
  const waiting = document.getElementById("preview-waiting");
  let segmentsSeen = 0;
  function mountPreview(v) {
    if (!template) return;
    const active = v.status !== "ended" && v.status !== "idle";
    const written = active && v.health && v.health.segment_age_s !== null && v.health.segment_age_s !== undefined;
    segmentsSeen = written ? segmentsSeen + 1 : 0;
    if (template.dataset.mounted) {
      if (!active) unmountPreview();
      return;
    }
    if (segmentsSeen < 2) return; // every rendition has one by now
    template.dataset.mounted = "1";
    const content = template.content.cloneNode(true);
    const scripts = Array.from(content.querySelectorAll("script"));
    for (const old of scripts) old.remove();
    if (waiting) waiting.remove();
    template.parentNode.insertBefore(content, template);
    const ns = window.summitcast;
    if (ns && ns.mountPlayers) {
      ns.mountPlayers(); // mounted before: its scripts are loaded
      return;
    }
    for (const old of scripts) {
      const script = document.createElement("script");
      script.src = old.src;
      script.async = false; // the player before the script that mounts it
      document.body.append(script);
    }
  }

  function unmountPreview() {
    for (const block of template.parentNode.querySelectorAll("[data-player]")) {
      if (block.scPlayer) block.scPlayer.destroy();
      block.remove();
    }
    if (waiting) template.parentNode.insertBefore(waiting, template);
    delete template.dataset.mounted;
    segmentsSeen = 0;
  }

  let last = null;
  async function send(form) {
    busy = true;
    for (const button of room.querySelectorAll("button[data-action]")) button.disabled = true;
    actionError.hidden = true;
    try {
      // The form's own fields (its CSRF token among them), as the browser would send them.
      const r = await fetch(form.action, {
        method: "POST",
        body: new URLSearchParams(new FormData(form)),
        headers: { accept: "application/json" },
        credentials: "same-origin",
      });
      const body = await r.json().catch(() => null);
      busy = false;
      if (r.ok && body) {
        last = body;
        apply(body);
        return;
      }
      actionError.textContent = (body && body.detail) || `The server refused this (HTTP ${r.status}).`;
      actionError.hidden = false;
    } catch (e) {
      busy = false;
      actionError.textContent = "The button did not reach the server: check the connection and try again.";
      actionError.hidden = false;
    }
    if (last) apply(last);
    tick();
  }

  for (const form of forms) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const button = form.querySelector("button[data-action]");
      if (busy || !button || button.disabled) return;
      send(form);
    });
  }

  function typing(target) {
    if (!target || !(target instanceof Element)) return false;
    if (target.isContentEditable) return true;
    const tag = target.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT") return true;
    if (tag !== "INPUT") return false;
    return !["button", "submit", "reset", "checkbox", "radio", "range", "color", "file"].includes(target.type);
  }

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.repeat || event.ctrlKey || event.metaKey || event.altKey) return;
    if (typing(event.target)) return;
    const action = SHORTCUTS[event.key.toLowerCase()];
    if (!action) return;
    const button = buttonFor(action);
    if (!button || button.disabled || busy) return;
    event.preventDefault();
    // The same form and button a click would submit: same URL, same CSRF token.
    button.form.requestSubmit(button);
  });

  let polling = false;
  async function tick() {
    if (polling) return;
    polling = true;
    try {
      const r = await fetch(room.dataset.healthUrl, { headers: { accept: "application/json" } });
      if (!r.ok) return;
      last = await r.json();
      apply(last);
    } catch (e) {
      alarm.hidden = false;
      alarm.textContent = "The control room lost contact with the server.";
    } finally {
      polling = false;
    }
  }

  const initial = remaining && remaining.dataset.remainingS;
  if (initial) endsAt = Date.now() + Number(initial) * 1000;
  setInterval(tick, 1000);
  setInterval(drawRemaining, 250);
})();
