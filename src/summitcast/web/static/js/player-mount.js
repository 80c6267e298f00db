// Mount the summitcast player on every [data-player] block of the page (the location
// screen mounts its own: it marks the block data-player-manual).
(function () {
  "use strict";
  const WAIT_POLL_MS = 5000;
  // The encoder's first segments (2 s each) come a few seconds after the start.
  const FIRST_SEGMENTS_MS = 4000;

  function mount(block) {
    block.querySelector(".sc-player-waiting")?.remove();
    // Kept on the block so that a page can take its player down again (control.js).
    block.scPlayer = window.summitcast.mountPlayer(block.querySelector("video"), {
      src: block.dataset.src,
      controlsEl: block.querySelector(".player-controls"),
    });
  }

  // Before its session begins a stream has no playlists: every try would answer 404,
  // which the browser logs as an error. A block with data-wait-url asks that JSON
  // (the session's on-air view) until the broadcast has begun, then mounts.
  function whenBegun(block) {
    const check = () =>
      fetch(block.dataset.waitUrl, { headers: { accept: "application/json" } })
        .then((r) => (r.ok ? r.json() : null))
        .then((view) => {
          if (view && view.status && view.status !== "idle") setTimeout(() => mount(block), FIRST_SEGMENTS_MS);
          else setTimeout(check, WAIT_POLL_MS);
        })
        .catch(() => setTimeout(check, WAIT_POLL_MS));
    setTimeout(check, WAIT_POLL_MS);
  }

  function mountAll() {
    const ns = window.summitcast;
    if (!ns || !ns.mountPlayer) return;
    for (const block of document.querySelectorAll("[data-player]:not([data-player-manual])")) {
      if (block.dataset.mounted) continue;
      block.dataset.mounted = "1";
      if (block.dataset.waitUrl) whenBegun(block);
      else mount(block);
    }
  }
  // For blocks a page adds later (the control room's preview).
  if (window.summitcast) window.summitcast.mountPlayers = mountAll;
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mountAll);
  else mountAll();
})();
