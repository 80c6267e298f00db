// Live figures pushed by the server (WebSocket, SSE fallback: build/live.js liveCounters):
// counters, and the world map and per-country table where the page has them.
(function () {
  "use strict";
  var sc = window.summitcast;
  var box = document.getElementById("live-counters") || document.getElementById("dashboard");
  if (!box || !sc || !sc.liveCounters) return;
  var svg = document.getElementById("live-map");
  var state = document.getElementById("live-state");
  var drawing = null;
  var fmt = function (n) { return Number(n).toLocaleString("en"); };

  function note(data) {
    if (!data.elsewhere) return "";
    return fmt(data.elsewhere) + " more in countries with fewer than " + data.k +
      " locations online, or not disclosed.";
  }

  function apply(data) {
    if (!data || data.type !== "presence") return;
    box.querySelectorAll("[data-figure]").forEach(function (el) {
      var value = data[el.dataset.figure];
      if (value !== undefined) el.textContent = fmt(value);
    });
    box.dataset.total = String(data.total);
    document.querySelectorAll("tr[data-country]").forEach(function (row) {
      var cell = row.querySelector(".online");
      if (cell) cell.textContent = fmt((data.countries || {})[row.dataset.country] || 0);
    });
    if (svg && sc.drawMap) {
      var mapData = { countries: data.countries, cities: data.cities || [], suppressedNote: note(data) };
      if (!drawing) drawing = sc.drawMap(svg, mapData);
      else sc.updateMap(svg, mapData);
    }
  }

  sc.liveCounters(box.dataset.url, apply, {
    onStatus: function (s) {
      if (!state) return;
      state.dataset.state = s;
      state.textContent = s === "open" ? "live" : s === "reconnecting" ? "reconnecting…" : s;
    },
  });
})();
