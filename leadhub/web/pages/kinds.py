"""The designer's generic editor of metadata kinds under /admin/meta/: every
kind's items listed, created, edited and deleted through a form built from
the kind's schema, and every item's (and object's, and field's) versions
compared side by side and rolled back. Saves go through runtime.kinds, the
service the REST API calls, so its messages show beside the inputs.

Widgets follow the schema: a checkbox for a boolean, a number box, a list
for a choice, two inputs for {en, zh_CN} labels, a code box for formulas and
an indented text (YAML) box for nested lists and mappings. A kind may name
other widgets for its properties (Kind.widgets) and link its own editor
(Kind.editor), as the lead plugin's rules do."""
from __future__ import annotations

from typing import Any

import marshmallow as mm
import yaml
from flask import flash, redirect, render_template, request, url_for

from leadhub.metadata.kinds import Kind
from leadhub.platform.errors import BadRequest, LeadhubError
from leadhub.web.pages.admin import bp
from leadhub.web.pages.common import actor, runtime
from leadhub.web.pages.i18n import current as language, gettext as _

ACTION_LABELS = {"created": "Created", "updated": "Edited", "deleted": "Deleted", "restored": "Restored",
                 "purged": "Purged"}


def _kinds():
    return runtime().kinds


def property_label(kind: Kind | None, name: str) -> str:
    labels = kind.properties.get(name) if kind else None
    if labels:
        return labels.get(language()) or labels.get("en") or name
    return _(name.replace("_", " ").capitalize())


def choice_label(kind: Kind, name: str, value: str) -> str:
    """A choice as people call it: the kind's label for it, an object's label, or the value."""
    labels = kind.choices.get(name, {}).get(value)
    if labels:
        return labels.get(language()) or labels.get("en") or value
    obj = runtime().cache.current().objects.get(value) if name == "object" else None
    return obj.label(language()) if obj else value


def form_fields(kind: Kind) -> list[dict]:
    """One input per property of the kind's schema."""
    out = []
    for name, f in kind.schema().fields.items():
        if kind.singleton and name == kind.key_property:
            continue
        choices = next((list(v.choices) for v in f.validators if isinstance(v, mm.validate.OneOf)), None)
        widget = kind.widgets.get(name) or _widget(f, choices)
        if widget == "object":
            widget, choices = "select", list(runtime().cache.current().objects)
        if choices:
            choices = [(c, choice_label(kind, name, c)) for c in choices]
        out.append({"name": name, "label": property_label(kind, name), "widget": widget, "choices": choices,
                    "required": f.required, "key": name == kind.key_property})
    return out


def _widget(f: mm.fields.Field, choices) -> str:
    if f.name == "object" and isinstance(f, mm.fields.String) and not choices:
        return "object"            # a list of the objects by their labels
    if isinstance(f, mm.fields.Boolean):
        return "checkbox"
    if choices:
        return "select"
    if isinstance(f, (mm.fields.Integer, mm.fields.Number)):
        return "number"
    if isinstance(f, mm.fields.String):
        return "text"
    return "yaml"


def shown(value: Any) -> str:
    """A value as people read it in forms and diffs (nested ones as YAML)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    if isinstance(value, (dict, list)):
        return yaml.safe_dump(value, allow_unicode=True, sort_keys=False, default_flow_style=False).strip()
    return str(value)


def _form_value(fields: list[dict], data: dict, name: str) -> str:
    value = data.get(name)
    widget = next(f["widget"] for f in fields if f["name"] == name)
    if widget == "yaml":
        return shown(value) if value is not None else ""
    return "" if value is None else str(value)


def _payload(fields: list[dict]) -> tuple[dict, dict]:
    """The form as the service's payload, and the inputs that could not be read."""
    form, payload, errors = request.form, {}, {}
    for f in fields:
        name, widget = f["name"], f["widget"]
        if widget == "checkbox":
            payload[name] = form.get(name) == "on"
        elif widget == "labels":
            labels = {lang: form.get(f"{name}.{lang}", "").strip() for lang in ("zh_CN", "en")}
            payload[name] = {k: v for k, v in labels.items() if v} or None
        elif widget == "yaml":
            text = form.get(name, "").strip()
            try:
                payload[name] = yaml.safe_load(text) if text else None
            except yaml.YAMLError as exc:
                errors[name] = _("Not readable: check the indentation.") + f" ({exc.problem})"
        elif widget == "number":
            text = form.get(name, "").strip()
            try:
                payload[name] = None if not text else (int(text) if text.lstrip("-").isdigit() else float(text))
            except ValueError:
                payload[name] = text       # the service names what is wrong with it
        else:
            text = form.get(name, "").replace("\r\n", "\n")
            payload[name] = text.strip() if widget != "code" else text
            if payload[name] == "":
                payload[name] = None
    note = form.get("version_note", "").strip()
    if note:
        payload["version_note"] = note
    if form.get("version", "").isdigit():
        payload["version"] = int(form["version"])      # the version the form showed: a later save is a 409
    return {k: v for k, v in payload.items() if v is not None or k in request.form or k == "version"}, errors


# ------------------------------------------------------------------ pages
@bp.get("/meta")
def kinds_index():
    kinds = sorted(_kinds().kinds(), key=lambda k: k.label(language()))
    counts = {k.name: len(_kinds().items(k.name)) for k in kinds}
    return render_template("admin/kinds.html", kinds=kinds, counts=counts)


@bp.get("/meta/<kind>")
def kind_items(kind):
    kd = _kinds().kind(kind)
    if kd.singleton:
        return redirect(url_for("admin.kind_item", kind=kd.url, key="default"))
    items = _kinds().list(actor(), kd.name)
    return render_template("admin/kind_items.html", kind=kd, items=items, title=_title(kd))


def _title(kd: Kind):
    def title(item: dict) -> str:
        value = item.get(kd.title) if kd.title else None
        if isinstance(value, dict):
            value = value.get(language()) or value.get("en")
        return str(value) if value else item["key"]
    return title


@bp.get("/meta/<kind>/new")
def new_kind_item(kind):
    kd = _kinds().kind(kind)
    return _editor(kd, None, {}, {})


@bp.post("/meta/<kind>/new")
def create_kind_item(kind):
    kd = _kinds().kind(kind)
    fields = form_fields(kd)
    payload, errors = _payload(fields)
    status = 400
    if not errors:
        try:
            item = _kinds().create(actor(), kd.name, payload)
        except LeadhubError as exc:
            errors, status = {**exc.fields, "_": exc.message}, exc.status
        else:
            flash(_("Saved."), "ok")
            return redirect(url_for("admin.kind_item", kind=kd.url, key=item["key"]))
    return _editor(kd, None, payload, errors), status


@bp.get("/meta/<kind>/<key>")
def kind_item(kind, key):
    kd = _kinds().kind(kind)
    item = _kinds().get(actor(), kd.name, key)
    return _editor(kd, item, item, {})


@bp.post("/meta/<kind>/<key>")
def update_kind_item(kind, key):
    kd = _kinds().kind(kind)
    item = _kinds().get(actor(), kd.name, key)
    fields = [f for f in form_fields(kd) if not f["key"]]
    payload, errors = _payload(fields)
    status = 400
    if not errors:
        try:
            _kinds().update(actor(), kd.name, item["key"], payload)
        except LeadhubError as exc:
            errors, status = {**exc.fields, "_": exc.message}, exc.status
        else:
            flash(_("Saved."), "ok")
            return redirect(url_for("admin.kind_item", kind=kd.url, key=item["key"]))
    return _editor(kd, item, {**item, **payload}, errors), status


@bp.post("/meta/<kind>/<key>/delete")
def delete_kind_item(kind, key):
    kd = _kinds().kind(kind)
    try:
        _kinds().delete(actor(), kd.name, key)
    except LeadhubError as exc:
        if exc.status != 409:
            raise
        flash(_("Not deleted.") + " " + _(exc.message), "error")
        return redirect(url_for("admin.kind_item", kind=kd.url, key=key))
    flash(_("Deleted. Its versions stay: open the history to bring it back."), "ok")
    return redirect(url_for("admin.kind_items", kind=kd.url))


@bp.post("/meta/<kind>/<key>/rollback")
def rollback_kind_item(kind, key):
    kd = _kinds().kind(kind)
    version = request.form.get("version", "")
    if not version.isdigit():
        raise BadRequest(_("Choose a version."), {"version": "Must be a number."})
    try:
        _kinds().rollback(actor(), kd.name, key, int(version))
    except LeadhubError as exc:
        if exc.status != 400:
            raise
        flash(_("Not rolled back.") + " " + _(exc.message), "error")
    else:
        flash(_("Version %(n)s is the current definition again.") % {"n": version}, "ok")
    return redirect(url_for("admin.kind_item", kind=kd.url, key=key) + "#history")


def _editor(kd: Kind, item: dict | None, values: dict, errors: dict):
    fields = form_fields(kd)
    versions = _kinds().versions(actor(), kd.name, item["key"]) if item else []
    shown_values = {f["name"]: _form_value(fields, values, f["name"]) for f in fields}
    return render_template("admin/kind_item.html", kind=kd, item=item, fields=fields, values=values,
                           shown_values=shown_values, errors=errors, versions=versions,
                           action_labels=ACTION_LABELS, editor=_editor_url(kd, item))


def _editor_url(kd: Kind, item: dict | None) -> str | None:
    """The kind's own editor: an endpoint, or (for one item) a function of it
    giving (endpoint, arguments), as a layout's designer page needs its object."""
    if kd.editor is None:
        return None
    if callable(kd.editor):
        if item is None:
            return None
        endpoint, args = kd.editor(item)
        return url_for(endpoint, **args)
    return url_for(kd.editor)


# ------------------------------------------------------------------ history and diffs
@bp.get("/meta/<kind>/<key>/diff")
def kind_diff(kind, key):
    kd = _kinds().kind(kind)
    return _diff_page(kd.name, key, kd, url_for("admin.kind_item", kind=kd.url, key=key))


@bp.get("/history/<any(object, field):what>/<key>")
def metadata_history(what, key):
    """The versions of an object or a field, with a compare form."""
    versions = _kinds().versions(actor(), what, key)
    return render_template("admin/history.html", what=what, key=key, versions=versions,
                           action_labels=ACTION_LABELS)


@bp.get("/history/<any(object, field):what>/<key>/diff")
def metadata_diff(what, key):
    return _diff_page(what, key, None, url_for("admin.metadata_history", what=what, key=key))


def _diff_page(kind_name: str, key: str, kd: Kind | None, back: str):
    versions = _kinds().versions(actor(), kind_name, key)
    numbers = [v["version"] for v in versions]
    a = request.args.get("from", type=int, default=numbers[-1] if numbers else 0)
    b = request.args.get("to", type=int, default=numbers[0] if numbers else 0)
    diff = _kinds().diff(actor(), kind_name, key, a, b)
    rows = [{"path": path, "label": property_label(kd, path.split(".")[0]) + (
                 " › " + ".".join(path.split(".")[1:]) if "." in path else ""),
             "before": shown(sides["from"]), "after": shown(sides["to"]), "text": diff["text"].get(path)}
            for path, sides in diff["changed"].items()]
    return render_template("admin/diff.html", key=key, kind=kd, what=kind_name, a=a, b=b, rows=rows,
                           numbers=numbers, back=back)
