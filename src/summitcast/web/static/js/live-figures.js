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

  var regions = null;
  try {
    regions = new Intl.DisplayNames(["en"], { type: "region" });
  } catch (e) {
    // Older browsers: the flag's text alternative is the code itself.
  }

  // The flag image the server's |flag filter draws (no emoji: without an emoji font
  // they show as boxes), named for screen readers; nothing for a malformed code or ZZ
  // (undisclosed).
  function flag(code) {
    if (!/^[A-Z]{2}$/.test(code || "") || code === "ZZ") return document.createTextNode("");
    var img = document.createElement("img");
    img.className = "sc-flag";
    img.alt = img.title = regions ? regions.of(code) : code;
    img.width = 20;
    img.height = 15;
    img.addEventListener("error", function () {
      img.remove(); // the code beside it still says which country
    });
    img.src = "/static/build/flags/" + code.toLowerCase() + ".svg";
    return img;
  }

  // The organiser dashboard's arrivals and drops; text nodes only (labels are host input).
  function list(id, entries, prefix, empty) {
    var ol = document.getElementById(id);
    if (!ol || !Array.isArray(entries)) return;
    var items = entries.map(function (e) {
      var li = document.createElement("li");
      var at = typeof e.at === "string" ? e.at.slice(11, 19) + " UTC" : "";
      li.append(e.label + " · ", flag(e.country), " " + e.country + " · " + prefix + at);
      return li;
    });
    if (!items.length) {
      var none = document.createElement("li");
      none.textContent = empty;
      items.push(none);
    }
    ol.replaceChildren.apply(ol, items);
  }

  function apply(data) {
    if (!data || data.type !== "presence") return;
    list("arrivals", data.arrivals, "", "None yet.");
    list("drops", data.drops, "since ", "None.");
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
