// Review list: "select all" ticks every pending location of this page for "Approve selected",
// and the count beside the button says how many are ticked. Without this script the
// boxes and both approve forms still work.
(function () {
  "use strict";
  var all = document.getElementById("select-all");
  var button = document.getElementById("approve-selected");
  var count = document.getElementById("selected-count");

  function boxes() {
    return document.querySelectorAll('input[name="ids"][form="approve-form"]');
  }

  function update() {
    var ticked = 0;
    var total = 0;
    boxes().forEach(function (box) {
      total += 1;
      if (box.checked) ticked += 1;
    });
    if (button) button.disabled = ticked === 0;
    if (count) count.textContent = ticked ? ticked + " of " + total + " on this page selected" : "";
    if (all) {
      all.checked = total > 0 && ticked === total;
      all.indeterminate = ticked > 0 && ticked < total;
    }
  }

  if (all) {
    all.addEventListener("change", function () {
      boxes().forEach(function (box) {
        box.checked = all.checked;
      });
      update();
    });
  }
  boxes().forEach(function (box) {
    box.addEventListener("change", update);
  });
  update();
})();
