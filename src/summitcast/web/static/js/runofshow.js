// Drag-and-drop reordering of the run of show; posts the whole new order, the server checks it.
(function () {
  "use strict";
  var table = document.getElementById("run-of-show");
  if (!table) return;
  var body = table.tBodies[0];
  var token = document.querySelector('meta[name="csrf-token"]').content;
  var dragged = null;
  body.addEventListener("dragstart", function (e) {
    dragged = e.target.closest("tr");
    e.dataTransfer.effectAllowed = "move";
  });
  body.addEventListener("dragover", function (e) {
    e.preventDefault();
    var over = e.target.closest("tr");
    if (!dragged || !over || over === dragged) return;
    var after = e.clientY > over.getBoundingClientRect().top + over.offsetHeight / 2;
    body.insertBefore(dragged, after ? over.nextSibling : over);
  });
  body.addEventListener("drop", function (e) {
    e.preventDefault();
    var order = Array.prototype.map.call(body.rows, function (r) { return r.dataset.itemId; });
    var form = new URLSearchParams({ order: order.join(","), csrf_token: token });
    fetch(table.dataset.orderUrl, { method: "POST", body: form, credentials: "same-origin" })
      .then(function (r) { if (r.ok) location.reload(); else alert("The new order was not saved."); });
  });
})();
