// Adds the viewer's own clock time beside every programme time shown in the summit's zone.
(function () {
  "use strict";
  var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  var fmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
  var shown = false;
  document.querySelectorAll("time[data-local]").forEach(function (el) {
    var when = new Date(el.getAttribute("datetime"));
    if (isNaN(when)) return;
    var local = fmt.format(when);
    if (local === el.textContent.trim()) return;
    var span = document.createElement("span");
    span.className = "local-time";
    span.textContent = " (" + local + " " + zone + ")";
    el.after(span);
    shown = true;
  });
  if (shown) document.querySelectorAll(".viewer-zone").forEach(function (el) { el.hidden = false; });
})();
