// The lead settings pages: copy the web form's snippet, and follow a
// rescoring job or a duplicate scan (polling its GET endpoint with the
// session cookie) until it has finished, then reload for the result.
(function () {
  "use strict";
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var box = document.getElementById(button.getAttribute("data-copy"));
      var label = button.textContent;
      function done() {
        button.textContent = button.getAttribute("data-done") || label;
        setTimeout(function () { button.textContent = label; }, 1500);
      }
      box.select();
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(box.value).then(done, function () { document.execCommand("copy"); done(); });
      } else {
        document.execCommand("copy");
        done();
      }
    });
  });

  function follow(box, update) {
    if (!box) return;
    var status = box.getAttribute("data-status");
    if (status !== "queued" && status !== "running") return;
    function tick() {
      fetch(box.getAttribute("data-url"), { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.json(); })
        .then(function (job) {
          if (update) update(job);
          if (job.status === "queued" || job.status === "running") setTimeout(tick, 1000);
          else window.location.reload();
        });
    }
    setTimeout(tick, 1000);
  }

  var rescore = document.getElementById("rescore-progress");
  follow(rescore, function (job) {
    var bar = rescore.querySelector("progress");
    bar.max = job.total || 1;
    bar.value = job.done || 0;
    ["done", "total", "changed"].forEach(function (k) {
      var el = rescore.querySelector('[data-key="' + k + '"]');
      if (el && job[k] !== null && job[k] !== undefined) el.textContent = job[k];
    });
  });
  follow(document.getElementById("scan-status"));
})();
