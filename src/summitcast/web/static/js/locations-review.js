// Review list: "select all" ticks every location checkbox of the bulk-approve form.
(function () {
  "use strict";
  var all = document.getElementById("select-all");
  if (!all) return;
  all.addEventListener("change", function () {
    document.querySelectorAll('input[name="ids"][form="approve-form"]').forEach(function (box) {
      box.checked = all.checked;
    });
  });
})();
