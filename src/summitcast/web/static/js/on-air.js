// Refresh "on air" and "next" on the watch page every few seconds.
(function () {
  "use strict";
  const panel = document.querySelector("[data-on-air-url]");
  if (!panel) return;
  async function refresh() {
    try {
      const r = await fetch(panel.dataset.onAirUrl, { headers: { accept: "application/json" } });
      if (r.ok) {
        const v = await r.json();
        panel.querySelector("[data-on-air]").textContent = v.on_air || "Not started yet";
        panel.querySelector("[data-next]").textContent = v.next || "—";
      }
    } catch (e) {
      /* offline for a moment: try again on the next tick */
    }
  }
  setInterval(refresh, 5000);
})();
