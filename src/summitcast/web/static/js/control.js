// Poll the control room's health endpoint once a second and update the figures.
(function () {
  "use strict";
  const panel = document.getElementById("on-air-panel");
  if (!panel) return;
  const alarm = document.getElementById("alarm");
  function show(name, value) {
    const el = document.querySelector(`[data-health="${name}"]`);
    if (el) el.textContent = value === null || value === undefined || value === "" ? "—" : String(value);
  }
  async function tick() {
    try {
      const r = await fetch(panel.dataset.healthUrl, { headers: { accept: "application/json" } });
      if (!r.ok) return;
      const v = await r.json();
      for (const f of ["status", "on_air", "next"]) {
        const el = panel.querySelector(`[data-field="${f}"]`);
        if (el) el.textContent = v[f] || "—";
      }
      const h = v.health;
      if (h) {
        show("speed", h.speed === null ? null : `${h.speed}×`);
        show("dropped_frames", h.dropped_frames);
        show("segment_age_s", h.segment_age_s);
        show("restarts", h.restarts);
        show("input", h.input.receiving || "no studio connected");
        show("input_bitrate", h.input.bitrate_kbps);
        show("feeding", h.on_air.label);
        show("last_error", h.last_error);
        const sending = Object.keys(h.interpreters || {}).filter((code) => h.interpreters[code]);
        show("interpreters", sending.length ? sending.join(", ") : "none connected");
        // Another node's figures say how old they are (they stop after 5 s without news).
        const age = h.published_s_ago === undefined ? "" : ` (${h.published_s_ago} s ago)`;
        show("node", h.node ? h.node + age : null);
      }
      const problem = (h && h.alarm) || v.manager_error;
      alarm.hidden = !problem;
      alarm.textContent = problem || "";
    } catch (e) {
      alarm.hidden = false;
      alarm.textContent = "The control room lost contact with the server.";
    }
  }
  setInterval(tick, 1000);
})();
