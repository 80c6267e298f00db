// Mount the summitcast player on every [data-player] block of the page (the location
// screen mounts its own: it marks the block data-player-manual).
(function () {
  "use strict";
  function mountAll() {
    const ns = window.summitcast;
    if (!ns || !ns.mountPlayer) return;
    for (const block of document.querySelectorAll("[data-player]:not([data-player-manual])")) {
      if (block.dataset.mounted) continue;
      block.dataset.mounted = "1";
      ns.mountPlayer(block.querySelector("video"), {
        src: block.dataset.src,
        controlsEl: block.querySelector(".player-controls"),
      });
    }
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mountAll);
  else mountAll();
})();
