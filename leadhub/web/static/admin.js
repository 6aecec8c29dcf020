/* The layout editor: sections (title, columns, collapsible), their fields
   (order, required and read-only overrides), and related lists, kept in one
   model that is written to the form's JSON textarea on every change. */
(function () {
  "use strict";
  var form = document.getElementById("layout-form");
  if (!form) return;
  var box = document.getElementById("layout-json");
  var fields = JSON.parse(document.getElementById("layout-fields").textContent);
  var children = JSON.parse(document.getElementById("layout-children").textContent);
  var T = JSON.parse(document.getElementById("layout-text").textContent);
  var model = JSON.parse(box.value);
  var byName = {}; fields.forEach(function (f) { byName[f[0]] = f; });
  var sectionsEl = document.getElementById("sections"), relatedEl = document.getElementById("related");

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text != null) e.textContent = text;
    return e;
  }
  function button(text, cls, fn) { var b = el("button", { type: "button", "class": cls }, text); b.addEventListener("click", fn); return b; }
  function checkbox(label, checked, fn, cls) {
    var l = el("label", { "class": "inline-label " + (cls || "") }), c = el("input", { type: "checkbox" });
    c.checked = !!checked; c.addEventListener("change", function () { fn(c.checked); });
    l.appendChild(c); l.appendChild(document.createTextNode(" " + label)); return l;
  }
  function input(label, value, fn, cls) {
    var l = el("label", { "class": "inline-label" }, label + " "), i = el("input", { "class": cls || "" });
    i.value = value || ""; i.addEventListener("input", function () { fn(i.value); }); l.appendChild(i); return l;
  }
  function placed() {
    var s = {}; model.sections.forEach(function (sec) { sec.fields.forEach(function (f) { s[f.field] = true; }); }); return s;
  }
  function move(list, i, d) { var j = i + d; if (j < 0 || j >= list.length) return; var x = list[i]; list[i] = list[j]; list[j] = x; }
  function save() { box.value = JSON.stringify(model); }

  function render() {
    sectionsEl.innerHTML = "";
    model.sections.forEach(function (sec, si) {
      var card = el("section", { "class": "card sec", "data-section": sec.key });
      var head = el("div", { "class": "sec-head" });
      head.appendChild(el("strong", {}, T.section + " " + (si + 1)));
      head.appendChild(input(T.title_en, sec.title.en, function (v) { sec.title.en = v; save(); }, "sec-title-en"));
      head.appendChild(input(T.title_zh, sec.title.zh_CN, function (v) { sec.title.zh_CN = v; save(); }, "sec-title-zh"));
      var cols = el("select", { "class": "sec-columns", "aria-label": T.columns });
      [1, 2].forEach(function (n) { cols.appendChild(el("option", { value: n }, T.columns + ": " + n)); });
      cols.value = sec.columns; cols.addEventListener("change", function () { sec.columns = parseInt(cols.value, 10); save(); });
      head.appendChild(cols);
      head.appendChild(checkbox(T.collapsible, sec.collapsible, function (v) { sec.collapsible = v; if (!v) sec.collapsed = false; render(); }));
      if (sec.collapsible) head.appendChild(checkbox(T.collapsed, sec.collapsed, function (v) { sec.collapsed = v; save(); }));
      head.appendChild(button("↑", "sec-up", function () { move(model.sections, si, -1); render(); }));
      head.appendChild(button("↓", "sec-down", function () { move(model.sections, si, 1); render(); }));
      if (model.sections.length > 1) head.appendChild(button(T.remove_section, "danger sec-remove", function () { model.sections.splice(si, 1); render(); }));
      card.appendChild(head);
      var ol = el("ol", { "class": "sec-fields" });
      sec.fields.forEach(function (f, fi) {
        var meta = byName[f.field] || [f.field, f.field, "", false, true];
        var li = el("li", { "data-field": f.field });
        li.appendChild(el("span", { "class": "name" }, meta[1] + " (" + f.field + ")"));
        li.appendChild(button("↑", "up", function () { move(sec.fields, fi, -1); render(); }));
        li.appendChild(button("↓", "down", function () { move(sec.fields, fi, 1); render(); }));
        if (meta[4]) {
          if (!meta[3]) li.appendChild(checkbox(T.required, f.required, function (v) { f.required = v; if (v) f.read_only = false; render(); }, "ovr-required"));
          if (!f.required && !meta[3]) li.appendChild(checkbox(T.read_only, f.read_only, function (v) { f.read_only = v; save(); }, "ovr-readonly"));
        }
        li.appendChild(button(T.remove, "link remove-field", function () { sec.fields.splice(fi, 1); render(); }));
        ol.appendChild(li);
      });
      card.appendChild(ol);
      var used = placed(), add = el("select", { "class": "add-field", "aria-label": T.add_field });
      add.appendChild(el("option", { value: "" }, T.add_field + " …"));
      fields.forEach(function (f) { if (!used[f[0]]) add.appendChild(el("option", { value: f[0] }, f[1] + " (" + f[0] + ")")); });
      add.addEventListener("change", function () {
        if (add.value) { sec.fields.push({ field: add.value, required: false, read_only: false }); render(); }
      });
      card.appendChild(add);
      sectionsEl.appendChild(card);
    });
    relatedEl.innerHTML = "";
    children.forEach(function (c) {
      var current = model.related_lists.filter(function (r) { return r.object === c.object && r.field === c.field; })[0];
      var row = el("div", { "class": "rel", "data-related": c.object + "." + c.field });
      row.appendChild(checkbox(T.show + ": " + c.label + " (" + c.field + ")", !!current, function (v) {
        if (v) model.related_lists.push({ object: c.object, field: c.field, columns: [], sort: ["-created_at"] });
        else model.related_lists = model.related_lists.filter(function (r) { return r !== current; });
        render();
      }));
      if (current) row.appendChild(input(T.list_columns, (current.columns || []).join(","), function (v) {
        current.columns = v.split(",").map(function (s) { return s.trim(); }).filter(Boolean); save();
      }));
      relatedEl.appendChild(row);
    });
    save();
  }
  form.querySelector(".add-section").addEventListener("click", function () {
    var n = model.sections.length + 1, key = "section_" + n;
    while (model.sections.some(function (s) { return s.key === key; })) key = "section_" + (++n);
    model.sections.push({ key: key, title: { en: "Section " + n, zh_CN: "分区 " + n }, columns: 2,
      collapsible: false, collapsed: false, fields: [] });
    render();
  });
  form.querySelector(".lay-name").addEventListener("input", function (e) { model.name = e.target.value; save(); });
  form.querySelector(".lay-default").addEventListener("change", function (e) { model.default = e.target.checked; save(); });
  box.addEventListener("change", function () { try { model = JSON.parse(box.value); render(); } catch (e) { /* server names the error */ } });
  render();
})();
