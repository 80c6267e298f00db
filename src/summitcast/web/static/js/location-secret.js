// Hand the location's secret from the link's fragment (#k=…) to the forms that need it
// and to links that lead to other host pages. The fragment is never sent to the server,
// so the secret travels only in the body of a POST the host submits.
(function () {
  "use strict";
  var secret = new URLSearchParams(window.location.hash.slice(1)).get("k");
  if (!secret) return;
  document.querySelectorAll("input[data-location-secret]").forEach(function (input) {
    input.value = secret;
  });
  document.querySelectorAll("a[data-keep-secret]").forEach(function (link) {
    link.href = link.getAttribute("href").split("#")[0] + "#k=" + encodeURIComponent(secret);
  });
})();
