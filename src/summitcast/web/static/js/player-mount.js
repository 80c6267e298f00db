// Mount the summitcast player on every [data-player] block of the page.
(function () {
  "use strict";
  // A live playlist answers 404 until the encoder has written its first segment
  // (a viewer who opens the page as the session starts). hls.js does not retry
  // 4xx by default and gives up at once; retry 404s for ~8 s instead.
  const retry404 = (cfg, count, _isTimeout, response, retry) =>
    retry || (count < cfg.maxNumRetry && !!response && response.code === 404);
  const patient = {
    default: {
      maxTimeToFirstByteMs: 10000,
      maxLoadTimeMs: 20000,
      timeoutRetry: { maxNumRetry: 2, retryDelayMs: 0, maxRetryDelayMs: 0 },
      errorRetry: { maxNumRetry: 8, retryDelayMs: 1000, maxRetryDelayMs: 2000, shouldRetry: retry404 },
    },
  };
  function mountAll() {
    const ns = window.summitcast;
    if (!ns || !ns.mountPlayer) return;
    for (const block of document.querySelectorAll("[data-player]")) {
      if (block.dataset.mounted) continue;
      block.dataset.mounted = "1";
      ns.mountPlayer(block.querySelector("video"), {
        src: block.dataset.src,
        controlsEl: block.querySelector(".player-controls"),
        hlsConfig: { manifestLoadPolicy: patient, playlistLoadPolicy: patient },
      });
    }
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mountAll);
  else mountAll();
})();
