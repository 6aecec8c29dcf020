/* leadhub pages: small vanilla enhancements. Every page works without them
   (forms post, links link); these add the filter builder, dependent picklists,
   lookup type-ahead, number formatting and bulk-action toggles. */
(function () {
  "use strict";
  var $ = function (sel, root) { return (root || document).querySelector(sel); };
  var $$ = function (sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); };
  var csrf = ($('meta[name="csrf-token"]') || {}).content || "";
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text != null) e.textContent = text;   // text only: values never become markup
    return e;
  }
  function json(id) { var n = document.getElementById(id); return n ? JSON.parse(n.textContent) : null; }

  // file pickers show the chosen file's name (see the file_pick macro)
  $$(".file-pick .file-input").forEach(function (input) {
    input.addEventListener("change", function () {
      var name = input.parentNode.querySelector(".file-name");
      name.textContent = input.files.length ? input.files[0].name : name.getAttribute("data-empty");
    });
  });

  // phone menu
  var toggle = $(".menu-toggle");
  if (toggle) toggle.addEventListener("click", function () {
    var nav = $("#nav"); nav.classList.toggle("open");
    toggle.setAttribute("aria-expanded", nav.classList.contains("open"));
  });

  // confirmations
  document.addEventListener("click", function (ev) {
    var b = ev.target.closest("[data-confirm]");
    if (b && !window.confirm(b.getAttribute("data-confirm"))) ev.preventDefault();
  });

  // ---------------------------------------------------------------- filter builder
  var builder = $("#filter-builder");
  if (builder) {
    var catalog = json("field-catalog") || [];
    var byName = {}; catalog.forEach(function (f) { byName[f.name] = f; });
    var jsonBox = $(".filter-json");
    var join = $(".filter-join");
    var NO_VALUE = ["is_null", "today", "yesterday", "tomorrow", "this_week", "last_week", "next_week",
      "this_month", "last_month", "next_month", "this_quarter", "this_year", "last_year"];
    var initial = json("current-filter");
    var conds = [];
    if (initial) {
      var node = Array.isArray(initial) ? { and: initial } : initial;
      var key = node.and ? "and" : node.or ? "or" : null;
      var items = key ? node[key] : [node];
      if (items.every(function (n) { return n && n.field && byName[n.field]; })) {
        conds = items; if (key && join) join.value = key;
      } else { conds = null; }   // a nested tree: edit it as JSON
    }
    function valueInput(f, op, value) {
      if (NO_VALUE.indexOf(op) >= 0) {
        if (op !== "is_null") return null;
        var s = el("select", { "class": "val" });
        s.appendChild(el("option", { value: "true" }, "✓")); s.appendChild(el("option", { value: "false" }, "✗"));
        s.value = value === false ? "false" : "true"; return s;
      }
      if (f.options && f.options.length && op !== "contains") {
        var sel = el("select", { "class": "val" });
        if (op === "in" || op === "not_in") sel.multiple = true;
        f.options.forEach(function (o) { sel.appendChild(el("option", { value: o[0] }, o[1])); });
        var vals = Array.isArray(value) ? value : [value];
        $$("option", sel).forEach(function (o) { o.selected = vals.indexOf(o.value) >= 0; });
        return sel;
      }
      if (f.type === "boolean") {
        var b = el("select", { "class": "val" });
        b.appendChild(el("option", { value: "true" }, "✓")); b.appendChild(el("option", { value: "false" }, "✗"));
        b.value = value === false ? "false" : "true"; return b;
      }
      var type = f.type === "date" ? "date" : f.type === "datetime" ? "datetime-local" : "text";
      if (op === "last_n_days" || op === "next_n_days") type = "number";
      var i = el("input", { "class": "val", type: type });
      if (value != null) i.value = Array.isArray(value) ? value.join(",") : value;
      return i;
    }
    function readValue(f, op, input) {
      if (!input) return undefined;
      if (op === "is_null" || f.type === "boolean") return input.value === "true";
      if (input.multiple) return $$("option", input).filter(function (o) { return o.selected; }).map(function (o) { return o.value; });
      var v = input.value;
      if (op === "last_n_days" || op === "next_n_days") return parseInt(v, 10);
      if (op === "in" || op === "not_in" || op === "between") return v.split(",").map(function (x) { return x.trim(); }).filter(Boolean);
      return v;
    }
    function row(c) {
      var r = el("div", { "class": "cond" });
      var fs = el("select", { "class": "fld", "aria-label": "field" });
      catalog.forEach(function (f) { fs.appendChild(el("option", { value: f.name }, f.label)); });
      fs.value = c.field || catalog[0].name;
      var os = el("select", { "class": "op", "aria-label": "operator" });
      var holder = el("span", { "class": "val-holder" });
      function fillOps() {
        var f = byName[fs.value]; os.innerHTML = "";
        f.operators.forEach(function (o) { os.appendChild(el("option", { value: o[0] }, o[1])); });
        if (c.op && f.operators.some(function (o) { return o[0] === c.op; })) os.value = c.op;
      }
      function fillValue(value) {
        holder.innerHTML = ""; var inp = valueInput(byName[fs.value], os.value, value);
        if (inp) { inp.addEventListener("change", sync); inp.addEventListener("input", sync); holder.appendChild(inp); }
      }
      fs.addEventListener("change", function () { c = {}; fillOps(); fillValue(); sync(); });
      os.addEventListener("change", function () { fillValue(); sync(); });
      var rm = el("button", { type: "button", "class": "remove", "aria-label": "remove" }, "×");
      rm.addEventListener("click", function () { r.remove(); sync(); });
      fillOps(); fillValue(c.value);
      r.appendChild(fs); r.appendChild(os); r.appendChild(holder); r.appendChild(rm);
      return r;
    }
    function sync() {
      var rows = $$(".cond", builder).map(function (r) {
        var f = byName[$(".fld", r).value], op = $(".op", r).value;
        var node = { field: f.name, op: op }; var v = readValue(f, op, $(".val", r));
        if (v !== undefined) node.value = v;
        return node;
      });
      var empty = $(".empty", builder); if (empty) empty.hidden = rows.length > 0;
      if (!jsonBox) return;
      if (!rows.length) { jsonBox.value = ""; return; }
      var tree = rows.length === 1 ? rows[0] : {}; if (rows.length > 1) tree[join ? join.value : "and"] = rows;
      jsonBox.value = JSON.stringify(tree);
    }
    builder.appendChild(el("p", { "class": "empty" }, builder.getAttribute("data-empty")));
    if (conds === null) { builder.appendChild(el("p", { "class": "muted" }, "JSON")); }
    else {
      conds.forEach(function (c) { builder.appendChild(row(c)); });
      var addBtn = $(".add-condition");
      if (addBtn && catalog.length) addBtn.addEventListener("click", function () { builder.appendChild(row({})); sync(); });
      if (join) join.addEventListener("change", sync);
      $(".empty", builder).hidden = conds.length > 0;
    }
    window.leadhubFilter = { reset: function (tree) {
      $$(".cond", builder).forEach(function (r) { r.remove(); });
      var node = tree ? (Array.isArray(tree) ? { and: tree } : tree) : null;
      var k = node && (node.and ? "and" : node.or ? "or" : null);
      (node ? (k ? node[k] : [node]) : []).forEach(function (c) { builder.appendChild(row(c)); });
      if (k && join) join.value = k; sync();
    }};
  }

  // the list's total arrives after the rows (a count can cost more than the page)
  $$(".list-total[data-count-url]").forEach(function (span) {
    fetch(span.getAttribute("data-count-url"), { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data || data.total == null) return;
        var size = parseInt(span.getAttribute("data-page-size"), 10) || 50;
        span.textContent = span.getAttribute("data-text").replace("{total}", data.total)
          .replace("{pages}", Math.max(1, Math.ceil(data.total / size)));
      });
  });

  // ---------------------------------------------------------------- bulk bar
  var bulk = $("#bulk-form");
  if (bulk) {
    var action = $("select[name=action]", bulk);
    var fieldSel = $("select[name=field]", bulk);
    function showBulk() {
      $(".bulk-edit", bulk).hidden = action.value !== "edit";
      var owner = $(".bulk-owner", bulk); if (owner) owner.hidden = action.value !== "owner";
    }
    function valueWidget() {
      if (!fieldSel || !fieldSel.selectedOptions.length) return;
      var opt = fieldSel.selectedOptions[0], holder = $(".bulk-value", bulk);
      var opts = JSON.parse(opt.getAttribute("data-options") || "[]"), type = opt.getAttribute("data-type");
      holder.innerHTML = "";
      var input;
      if (opts.length) {
        input = el("select", { name: "value" }); input.appendChild(el("option", { value: "" }, "—"));
        opts.forEach(function (o) { input.appendChild(el("option", { value: o[0] }, o[1])); });
      } else if (type === "boolean") {
        input = el("select", { name: "value" });
        input.appendChild(el("option", { value: "true" }, "✓")); input.appendChild(el("option", { value: "false" }, "✗"));
      } else {
        input = el("input", { name: "value", type: type === "date" ? "date" : type === "datetime" ? "datetime-local" : "text" });
      }
      input.setAttribute("aria-label", "value"); holder.appendChild(input);
    }
    action.addEventListener("change", showBulk);
    if (fieldSel) { fieldSel.addEventListener("change", valueWidget); valueWidget(); }
    showBulk();
  }
  $$(".check-all").forEach(function (box) {
    box.addEventListener("change", function () {
      $$('input[name="ids"]').forEach(function (c) { c.checked = box.checked; });
    });
  });

  // ---------------------------------------------------------------- record forms
  // dependent picklists narrow as the controlling value changes
  $$("select[data-controller]").forEach(function (dep) {
    var form = dep.form, ctlName = dep.getAttribute("data-controller");
    var matrix = JSON.parse(dep.getAttribute("data-dependency") || "{}");
    var all = $$("option", dep).map(function (o) { return { value: o.value, text: o.textContent }; });
    function controlValue() {
      var c = form.elements[ctlName];
      if (!c) return null;
      if (c.type === "checkbox") return c.checked ? "true" : "false";
      if (c.length && !c.tagName) c = c[c.length - 1];
      return c.value || null;
    }
    function narrow() {
      var cv = controlValue(), allowed = cv ? (matrix[cv] || []) : [], keep = dep.value;
      dep.innerHTML = "";
      all.forEach(function (o) {
        if (o.value === "" || allowed.indexOf(o.value) >= 0) dep.appendChild(el("option", { value: o.value }, o.text));
      });
      dep.value = allowed.indexOf(keep) >= 0 ? keep : "";
      dep.disabled = !cv;
      dep.dispatchEvent(new Event("change"));
    }
    var ctl = form.elements[ctlName];
    if (ctl && ctl.addEventListener) { ctl.addEventListener("change", narrow); narrow(); }
  });

  // decimals and currency: show the field's precision once typed
  $$("input.number[data-scale]").forEach(function (inp) {
    inp.addEventListener("blur", function () {
      var v = inp.value.replace(/[,\s]/g, ""), scale = parseInt(inp.getAttribute("data-scale"), 10);
      if (v !== "" && /^[-+]?\d*\.?\d+$/.test(v) && !isNaN(scale)) {
        var parts = v.split("."); var dec = (parts[1] || "");
        if (dec.length <= scale) inp.value = parts[0] + (scale ? "." + (dec + "0".repeat(scale)).slice(0, scale) : "");
      }
    });
  });

  // lookups: type-ahead over the record API, as the signed-in user
  $$(".lookup").forEach(function (box) {
    var target = box.getAttribute("data-target"), nameField = box.getAttribute("data-name-field");
    var idInput = $(".lookup-id", box), text = $(".lookup-text", box), list = $(".lookup-results", box);
    var timer = null, seq = 0;
    function close() { list.hidden = true; text.setAttribute("aria-expanded", "false"); }
    function choose(id, label) { idInput.value = id; text.value = label; close(); }
    function search() {
      var q = text.value.trim(); idInput.value = q ? idInput.value : "";
      if (!q) { close(); return; }
      var fields = ["id"]; if (nameField) fields.push(nameField);
      var url = "/api/v1/objects/" + encodeURIComponent(target) + "/records?page_size=10&fields=" + fields.join(",");
      if (nameField) url += "&filter=" + encodeURIComponent(JSON.stringify({ field: nameField, op: "contains", value: q }));
      else if (/^\d+$/.test(q)) url += "&filter=" + encodeURIComponent(JSON.stringify({ field: "id", op: "eq", value: parseInt(q, 10) }));
      var mine = ++seq;
      fetch(url, { credentials: "same-origin", headers: { "X-CSRF-Token": csrf, "Accept": "application/json" } })
        .then(function (r) { return r.ok ? r.json() : { records: [] }; })
        .then(function (data) {
          if (mine !== seq) return;
          list.innerHTML = "";
          (data.records || []).forEach(function (rec) {
            var label = nameField && rec[nameField] ? rec[nameField] : "#" + rec.id;
            var li = el("li", { role: "option", "data-id": rec.id }, label);
            li.addEventListener("mousedown", function (ev) { ev.preventDefault(); choose(rec.id, label); });
            list.appendChild(li);
          });
          list.hidden = !list.children.length; text.setAttribute("aria-expanded", String(!list.hidden));
        });
    }
    text.addEventListener("input", function () { idInput.value = ""; clearTimeout(timer); timer = setTimeout(search, 200); });
    text.addEventListener("keydown", function (ev) {
      var items = $$("li", list), i = items.findIndex(function (li) { return li.classList.contains("active"); });
      if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
        ev.preventDefault(); if (i >= 0) items[i].classList.remove("active");
        i = ev.key === "ArrowDown" ? Math.min(i + 1, items.length - 1) : Math.max(i - 1, 0);
        if (items[i]) items[i].classList.add("active");
      } else if (ev.key === "Enter" && i >= 0) { ev.preventDefault(); choose(items[i].getAttribute("data-id"), items[i].textContent); }
      else if (ev.key === "Escape") close();
    });
    text.addEventListener("blur", function () { setTimeout(close, 150); });
  });

  // ---------------------------------------------------------------- designer helpers
  $$(".type-switch").forEach(function (sel) {
    function show() { $$(".type-settings").forEach(function (d) {
      var on = d.getAttribute("data-type") === sel.value; d.classList.toggle("active", on);
      $$("input, select, textarea", d).forEach(function (i) { i.disabled = !on; });
    }); }
    sel.addEventListener("change", show); show();
  });
  $$(".sortable").forEach(function (ol) {
    var out = document.getElementById(ol.getAttribute("data-target"));
    function sync() { out.value = $$("li", ol).map(function (li) { return li.getAttribute("data-value"); }).join(","); }
    ol.addEventListener("click", function (ev) {
      var li = ev.target.closest("li"); if (!li) return;
      if (ev.target.classList.contains("up") && li.previousElementSibling) ol.insertBefore(li, li.previousElementSibling);
      if (ev.target.classList.contains("down") && li.nextElementSibling) ol.insertBefore(li.nextElementSibling, li);
      sync();
    });
  });
  var viewForm = $("#view-form");
  if (viewForm) {
    var pick = $(".columns-pick", viewForm), colsOut = $(".columns-value", viewForm), order = [];
    pick.addEventListener("change", function () {
      var chosen = $$("option", pick).filter(function (o) { return o.selected; }).map(function (o) { return o.value; });
      order = order.filter(function (c) { return chosen.indexOf(c) >= 0; });
      chosen.forEach(function (c) { if (order.indexOf(c) < 0) order.push(c); });
      colsOut.value = order.join(",");
    });
    $$(".edit-view").forEach(function (b) {
      b.addEventListener("click", function () {
        var v = JSON.parse(b.getAttribute("data-view"));
        viewForm.elements.view_id.value = v.id;
        viewForm.elements.name_en.value = v.name.en || ""; viewForm.elements.name_zh.value = v.name.zh_CN || "";
        order = (v.columns || []).slice(); colsOut.value = order.join(",");
        $$("option", pick).forEach(function (o) { o.selected = order.indexOf(o.value) >= 0; });
        viewForm.elements.sort.value = (v.sort || []).join(",");
        viewForm.elements.shared.checked = !!v.shared;
        if (window.leadhubFilter) window.leadhubFilter.reset(v.filter);
        viewForm.scrollIntoView();
      });
    });
  }
})();
