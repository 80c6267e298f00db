// Refresh the green room's preview frames and feed status once a second.
(function () {
  "use strict";
  const room = document.getElementById("greenroom");
  if (!room) return;
  const error = document.getElementById("greenroom-error");
  async function tick() {
    try {
      const r = await fetch(room.dataset.statusUrl, { headers: { accept: "application/json" } });
      if (!r.ok) return;
      const v = await r.json();
      for (const feed of v.feeds) {
        const card = room.querySelector(`[data-speaker="${feed.speaker_id}"]`);
        if (!card || !feed.open) continue;
        const s = feed.status || {};
        const set = (name, value) => {
          const el = card.querySelector(`[data-field="${name}"]`);
          if (el) el.textContent = value === null || value === undefined ? "—" : String(value);
        };
        set("receiving", s.receiving || "nothing received");
        set("bitrate", s.bitrate_kbps);
        set("level", s.audio_level_db);
        set("refused", s.refused || 0);
        const img = card.querySelector("img.preview");
        // A changing query string: the frame is served no-store, but some caches ignore that.
        if (img) img.src = `${img.dataset.src}?t=${Date.now()}`;
      }
      error.hidden = !v.manager_error;
      error.textContent = v.manager_error || "";
    } catch (e) {
      error.hidden = false;
      error.textContent = "The green room lost contact with the server.";
    }
  }
  setInterval(tick, 1000);
})();
