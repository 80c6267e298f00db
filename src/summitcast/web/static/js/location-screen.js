// The location screen: keeps presence with the server (build/live.js locationScreen)
// and refreshes "now" and "next". The secret comes from the link's fragment (#k=…),
// which the browser never sends to the server.
(function () {
  "use strict";
  var main = document.getElementById("screen");
  var status = document.getElementById("presence-status");
  if (!main || !status) return;
  var secret = new URLSearchParams(window.location.hash.slice(1)).get("k");
  var interval = Number(main.dataset.interval) || 10;
  var REFUSED = {
    pending: "Waiting for an organiser to approve this location.",
    revoked: "This location was revoked by the organisers.",
    bad_signature: "This link is not valid any more.",
    unknown_location: "This link is not valid.",
    stale: "This screen's clock is wrong: set the date and time, then reload.",
    future: "This screen's clock is wrong: set the date and time, then reload.",
    // The server keeps the connection; the next heartbeats count once it is back.
    unavailable: "The server is briefly unavailable: this screen keeps trying by itself.",
  };
  var refusedUntil = 0;

  function show(state, text) {
    status.dataset.state = state;
    status.textContent = text;
  }

  if (!secret || !window.summitcast || !window.summitcast.locationScreen) {
    show("no-secret", "This link is incomplete: open the whole link you got when registering.");
    return;
  }

  var screen = window.summitcast.locationScreen({
    wsUrl: main.dataset.wsUrl,
    heartbeatUrl: main.dataset.heartbeatUrl,
    locationId: main.dataset.locationId,
    secret: secret,
    intervalS: interval,
    onStatus: function (s) {
      if (s.state === "error" && REFUSED[s.error]) {
        // A refusal answers the heartbeat just sent: keep showing it until a
        // later heartbeat goes unanswered by one.
        refusedUntil = Date.now() + 1500 * interval;
        show(s.error, REFUSED[s.error]);
      } else if (s.state === "ok" && Date.now() > refusedUntil) {
        show("online", "Connected: this location counts as watching.");
      } else if (s.state === "reconnecting" || s.state === "fallback") {
        show(s.state, "Connection lost: trying again…");
      }
    },
  });
  window.addEventListener("pagehide", function () { screen.stop(); });

  function refreshProgramme() {
    fetch(main.dataset.nowUrl, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) return;
        [["on-now", data.now], ["up-next", data.next]].forEach(function (pair) {
          var el = document.getElementById(pair[0]);
          if (!el) return;
          el.querySelector(".title").textContent = pair[1] ? pair[1].title : "—";
          el.querySelector(".when").textContent = pair[1] ? pair[1].session : "";
        });
      })
      .catch(function () { /* keep what is shown; try again later */ });
  }
  setInterval(refreshProgramme, 60000);
})();
