// The test bench: posts the editor's code to the REST API as a dry run and
// shows what came back. Everything shown is text (textContent), never markup.
(function () {
  "use strict";
  var bench = document.getElementById("bench");
  if (!bench) return;
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  var out = document.getElementById("b-out");
  document.getElementById("b-run").addEventListener("click", function () {
    var body = { code: document.getElementById("f-code").value };
    var rid = document.getElementById("b-rid").value;
    if (rid) body.record_id = parseInt(rid, 10);
    try {
      body.params = JSON.parse(document.getElementById("b-params").value || "{}");
    } catch (e) {
      out.textContent = "params: " + e.message;
      return;
    }
    out.textContent = "…";
    fetch(bench.getAttribute("data-url"), {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf, "Accept": "application/json" },
      body: JSON.stringify(body)
    }).then(function (r) { return r.json(); }).then(function (data) {
      var lines = [];
      if (data.error && data.error.type) {
        lines.push("ERROR " + data.error.type + (data.error.line ? " (line " + data.error.line + ")" : "") + ": " + data.error.message);
      } else if (data.error) {
        lines.push("ERROR: " + data.error.message);
      } else {
        lines.push("result: " + JSON.stringify(data.result));
      }
      if (data.log) lines.push("log:\n" + data.log);
      if (data.queries && data.queries.length) lines.push("calls:\n" + data.queries.map(function (q) { return "  " + JSON.stringify(q); }).join("\n"));
      if (data.usage) lines.push("usage: " + JSON.stringify(data.usage));
      out.textContent = lines.join("\n");
    }).catch(function (e) { out.textContent = String(e); });
  });
})();
