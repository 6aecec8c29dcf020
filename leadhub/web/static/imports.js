// The progress bar of a running import: polls GET /api/v1/imports/{id}
// until it has finished, updating the bar and the counts (as text).
(function () {
  "use strict";
  var box = document.getElementById("import-progress");
  if (!box) return;
  var bar = box.querySelector("progress"), status = box.querySelector(".status");
  function tick() {
    fetch(box.getAttribute("data-url"), { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (imp) {
        bar.max = imp.rows_total || 1;
        bar.value = imp.rows_done || 0;
        status.textContent = imp.status;
        Object.keys(imp.counts || {}).forEach(function (k) {
          var el = box.querySelector('[data-outcome="' + k + '"] b');
          if (el) el.textContent = imp.counts[k];
        });
        if (imp.status === "queued" || imp.status === "running") setTimeout(tick, 1000);
      });
  }
  tick();
})();
