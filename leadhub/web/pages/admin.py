"""The admin designer under /admin/: objects and fields with each type's
settings, the picklist editor with the dependency matrix, layouts (sections,
fields, overrides, related lists), role assignment, preview, list views and
the menu order. Every change goes through runtime.metadata / runtime.layouts,
the same services the REST API calls, so the designer can do nothing the API
cannot and the API's validation messages show beside the inputs."""
from __future__ import annotations

import json

import marshmallow as mm
from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from leadhub.metadata.types import get_type, type_names
from leadhub.metadata.types.choice import OptionsField
from leadhub.metadata.types.relations import USER
from leadhub.platform.errors import BadRequest, Conflict, Forbidden, LeadhubError, NotFound, ValidationFailed
from leadhub.web.pages import fields as F, meta
from leadhub.web.pages.common import actor, local_path, render_error, render_http_error, require_admin, runtime
from leadhub.web.pages.i18n import gettext as _

bp = Blueprint("admin", __name__, url_prefix="/admin")
bp.register_error_handler(LeadhubError, render_error)
bp.register_error_handler(HTTPException, render_http_error)
FIELD_FLAGS = ("required", "unique", "indexed", "read_only", "track_history")
TYPE_LABELS = {
    "text": "Text", "long_text": "Long text", "email": "Email", "phone": "Phone", "url": "URL",
    "integer": "Integer", "decimal": "Decimal", "currency": "Currency", "percent": "Percent",
    "boolean": "Checkbox", "date": "Date", "datetime": "Date and time", "picklist": "Picklist",
    "multi_picklist": "Multi-select picklist", "dependent_picklist": "Dependent picklist",
    "lookup": "Lookup", "master_detail": "Master-detail", "user": "User", "auto_number": "Auto-number",
    "formula": "Formula", "rollup": "Roll-up summary",
}
SETTING_LABELS = {
    "max_length": "Maximum length", "precision": "Precision (digits)", "scale": "Decimal places",
    "currency": "Currency code", "options": "Options", "controlling_field": "Controlling field",
    "dependency": "Dependency", "reference_to": "Refers to", "on_delete": "When the referenced record is deleted",
    "pattern": "Number pattern", "expression": "Expression", "return_type": "Result type",
    "child_object": "Child object", "child_field": "Child's lookup field", "function": "Summary",
    "aggregate_field": "Summed field", "filter": "Filter (JSON)",
}


bp.before_request(require_admin)


@bp.context_processor
def _instance_time_zone():
    return {"tz": runtime().config.timezone}     # times on designer pages are the instance's wall clock


@bp.app_context_processor
def _admin_nav():
    """Plugins' entries in the admin navigation: the runtime's "admin_nav"
    slot, {endpoint, label, shown}, one per endpoint."""
    entries = {}
    for entry, _options in runtime().slots.entries("admin_nav"):
        entries.setdefault(entry["endpoint"], entry)
    return {"admin_nav": list(entries.values())}


def _back(default: str):
    return redirect(local_path(request.form.get("back"), default))


def _fail(exc: LeadhubError):
    detail = "; ".join(f"{k}: {_(str(v))}" for k, v in exc.fields.items())
    flash(_(exc.message) + (f" — {detail}" if detail else ""), "error")


# ------------------------------------------------------------------ objects
@bp.get("/")
def index():
    reg = runtime().cache.current()
    order = [m["object"] for m in meta.menu(actor())]
    return render_template("admin/index.html", objects=sorted(reg.objects.values(), key=lambda o: o.api_name),
                           order=order, by_name=reg.objects)


def _labels_from_form(prefix: str = "label") -> dict:
    en, zh = request.form.get(f"{prefix}_en", "").strip(), request.form.get(f"{prefix}_zh", "").strip()
    return {k: v for k, v in (("en", en), ("zh_CN", zh)) if v}


@bp.post("/objects")
def create_object():
    payload = {"api_name": request.form.get("api_name", "").strip(), "label": _labels_from_form()}
    name_field = request.form.get("name_field_api", "").strip()
    if name_field:  # an object usually starts with its name field
        payload["fields"] = [{"api_name": name_field, "type": "text", "required": True,
                              "label": {"en": "Name", "zh_CN": "名称"}}]
        payload["name_field"] = name_field
    try:
        obj = runtime().metadata.create_object(actor(), payload)
    except (ValidationFailed, Conflict, BadRequest) as exc:
        _fail(exc)
        return redirect(url_for("admin.index"))
    flash(_("Object created."), "ok")
    return redirect(url_for("admin.object_page", name=obj.api_name))


@bp.post("/menu")
def save_menu():
    names = [n for n in request.form.get("order", "").split(",") if n]
    try:
        _layouts().set_menu(actor(), names)
    except ValidationFailed as exc:
        _fail(exc)
        return redirect(url_for("admin.index"))
    flash(_("Menu order saved."), "ok")
    return redirect(url_for("admin.index"))


@bp.get("/objects/<name>")
def object_page(name):
    obj = runtime().cache.current().get(name)
    return render_template("admin/object.html", obj=obj, types=type_names(), type_labels=TYPE_LABELS,
                           settings_for=settings_inputs, reg=runtime().cache.current(), field_errors={},
                           form=request.form)


@bp.post("/objects/<name>")
def update_object(name):
    payload = {"label": _labels_from_form(), "track_history": request.form.get("track_history") == "on",
               "name_field": request.form.get("name_field") or None,
               "description": request.form.get("description", "").strip() or None}
    try:
        runtime().metadata.update_object(actor(), name, payload)
        flash(_("Saved."), "ok")
    except (ValidationFailed, Conflict, BadRequest) as exc:
        _fail(exc)
    return redirect(url_for("admin.object_page", name=name))


# ------------------------------------------------------------------ field settings
def settings_inputs(type_name: str, obj, reg) -> list[dict]:
    """The inputs a type's settings schema asks for, as template data."""
    out = []
    for key, field in get_type(type_name).Settings().fields.items():
        kind, choices = "text", None
        for v in field.validators:
            if isinstance(v, (mm.validate.OneOf,)):
                kind, choices = "select", [(c, c) for c in v.choices]
        if isinstance(field, OptionsField):
            kind = "options"
        elif key == "dependency":
            kind = "dependency"
        elif key == "filter":
            kind = "json"
        elif key == "reference_to":
            kind = "select"
            fixed = [v.comparable for v in field.validators if isinstance(v, mm.validate.Equal)]
            choices = [(USER, _("User"))] if fixed == [USER] else \
                [(o.api_name, o.label(g.lang)) for o in reg.objects.values()]
        elif key == "controlling_field":
            kind = "select"
            choices = [(f.api_name, f.label(g.lang)) for f in obj.fields.values()
                       if f.type.controls_choices]
        elif key == "child_object":
            kind = "select"
            choices = [(o.api_name, o.label(g.lang)) for o in reg.objects.values()]
        elif isinstance(field, mm.fields.Integer):
            kind = "number"
        elif isinstance(field, mm.fields.Boolean):
            kind = "checkbox"
        default = field.load_default if field.load_default is not mm.missing else ""
        out.append({"key": key, "kind": kind, "choices": choices, "label": SETTING_LABELS.get(key, key),
                    "default": "" if callable(default) or default is None else default,
                    "required": field.required})
    return out


def parse_options(text: str) -> list[dict]:
    """One option a line: `value | English | 中文`, a trailing `| inactive` retires it."""
    out = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if not parts[0]:
            continue
        item: dict = {"value": parts[0]}
        labels = {k: v for k, v in zip(("en", "zh_CN"), parts[1:3]) if v}
        if labels:
            item["label"] = labels
        if len(parts) > 3 and parts[3].lower() == "inactive":
            item["active"] = False
        out.append(item)
    return out


def options_text(fd) -> str:
    lines = []
    for o in fd.settings.get("options", []):
        line = f"{o['value']} | {o['label'].get('en', '')} | {o['label'].get('zh_CN', '')}"
        lines.append(line + (" | inactive" if not o.get("active", True) else ""))
    return "\n".join(lines)


def parse_dependency_text(text: str) -> dict:
    """`controlling value: a, b` a line (the add form; the edit page has the matrix)."""
    out = {}
    for line in text.splitlines():
        key, _sep, rest = line.partition(":")
        if key.strip():
            out[key.strip()] = [v.strip() for v in rest.split(",") if v.strip()]
    return out


def _settings_from_form(type_name: str, obj, reg) -> dict:
    out = {}
    for spec in settings_inputs(type_name, obj, reg):
        key, form_key = spec["key"], f"s.{type_name}.{spec['key']}"
        if spec["kind"] == "dependency":
            matrix = [k for k in request.form if k.startswith("dep::")]
            if matrix or request.form.get("dep_matrix") == "1":
                dep: dict = {}
                for k in matrix:
                    _p, ctl, value = k.split("::", 2)
                    dep.setdefault(ctl, []).append(value)
                out[key] = dep
            elif request.form.get(form_key, "").strip():
                out[key] = parse_dependency_text(request.form[form_key])
            continue
        raw = request.form.get(form_key)
        if raw is None or raw.strip() == "":
            if spec["kind"] == "checkbox" and form_key + "__present" in request.form:
                out[key] = False
            continue
        if spec["kind"] == "options":
            out[key] = parse_options(raw)
        elif spec["kind"] == "number":
            out[key] = int(raw) if raw.strip().lstrip("-").isdigit() else raw
        elif spec["kind"] == "json":
            try:
                out[key] = json.loads(raw)
            except json.JSONDecodeError:
                raise ValidationFailed({key: "Not valid JSON."}) from None
        elif spec["kind"] == "checkbox":
            out[key] = raw == "on"
        else:
            out[key] = raw.strip()
    return out


def _field_payload(obj, reg, type_name: str, creating: bool) -> dict:
    payload = {"label": _labels_from_form()}
    if creating:
        payload.update(api_name=request.form.get("api_name", "").strip(), type=type_name)
    help_text = _labels_from_form("help")
    payload["help_text"] = help_text or None
    for flag in FIELD_FLAGS:
        if flag in request.form or f"{flag}__present" in request.form:
            payload[flag] = request.form.get(flag) == "on"
    if request.form.get("default", "").strip():
        payload["default"] = request.form["default"].strip()
    elif not creating and "default" in request.form:
        payload["default"] = None
    if request.form.get("position", "").strip().isdigit():
        payload["position"] = int(request.form["position"])
    payload.update(_settings_from_form(type_name, obj, reg))
    return payload


@bp.post("/objects/<name>/fields")
def add_field(name):
    rt = runtime()
    reg = rt.cache.current()
    obj = reg.get(name)
    type_name = request.form.get("type", "")
    if type_name not in type_names():
        flash(_("Choose a field type."), "error")
        return redirect(url_for("admin.object_page", name=name))
    try:
        fd = rt.metadata.add_field(actor(), name, _field_payload(obj, reg, type_name, True))
    except (ValidationFailed, Conflict, BadRequest) as exc:
        return render_template("admin/object.html", obj=obj, types=type_names(), type_labels=TYPE_LABELS,
                               settings_for=settings_inputs, reg=reg, field_errors=exc.fields,
                               form=request.form, error=exc.message), exc.status
    flash(_("Field %(name)s added.") % {"name": fd.api_name}, "ok")
    return redirect(url_for("admin.field_page", name=name, field=fd.api_name))


@bp.route("/objects/<name>/fields/<field>", methods=["GET", "POST"])
def field_page(name, field):
    rt = runtime()
    reg = rt.cache.current()
    obj = reg.get(name)
    fd = obj.fields.get(field)
    if fd is None or fd.system:
        raise NotFound(f"No field '{field}' on {name}.")
    errors, status = {}, 200
    if request.method == "POST":
        try:
            rt.metadata.update_field(actor(), name, field, _field_payload(obj, reg, fd.type_name, False))
            flash(_("Saved."), "ok")
            return redirect(url_for("admin.field_page", name=name, field=field))
        except (ValidationFailed, Conflict, BadRequest) as exc:
            errors, status = exc.fields, exc.status
            flash(_(exc.message), "error")
    controller = obj.fields.get(fd.settings.get("controlling_field", ""))
    return render_template("admin/field.html", obj=obj, fd=fd, reg=reg, errors=errors,
                           settings=settings_inputs(fd.type_name, obj, reg), type_labels=TYPE_LABELS,
                           options_text=options_text(fd), controller=controller,
                           controller_options=_controller_options(controller)), status


def _controller_options(controller) -> list[tuple[str, str]]:
    """What a dependent picklist's controlling field can hold: its options, or
    yes and no for a checkbox (which has none)."""
    if controller is None:
        return []
    return F.options(controller, False) if "options" in controller.settings else [("true", _("Yes")), ("false", _("No"))]


@bp.post("/objects/<name>/fields/<field>/delete")
def delete_field(name, field):
    try:
        runtime().metadata.delete_field(actor(), name, field)
        flash(_("Field deleted; its data is kept and it can be restored through the API."), "ok")
    except (Conflict, NotFound, ValidationFailed) as exc:
        _fail(exc)
    return redirect(url_for("admin.object_page", name=name))


# ------------------------------------------------------------------ layouts
def _layouts():
    return runtime().layouts


def _roles() -> list[dict]:
    return runtime().org.list_roles()


@bp.get("/objects/<name>/layouts")
def layouts(name):
    svc = _layouts()
    obj = runtime().cache.current().get(name)
    return render_template("admin/layouts.html", obj=obj, layouts=svc.list_layouts(name),
                           assignments=svc.assignments(name), roles=_roles())


@bp.post("/objects/<name>/layouts")
def create_layout(name):
    svc = _layouts()
    reg = runtime().cache.current()
    obj = reg.get(name)
    from leadhub.data.layout_rules import default_definition
    start = default_definition(reg, obj)
    try:
        lay = svc.create_layout(actor(), name, {"name": request.form.get("layout_name", "").strip(), **start})
    except (ValidationFailed, Conflict, BadRequest) as exc:
        _fail(exc)
        return redirect(url_for("admin.layouts", name=name))
    return redirect(url_for("admin.layout_editor", name=name, layout_id=lay["id"]))


@bp.post("/objects/<name>/layout-assignments")
def assign_layouts(name):
    mapping = {}
    for role in _roles():
        raw = request.form.get(f"role::{role['api_name']}")
        if raw is not None:
            mapping[role["api_name"]] = int(raw) if raw.isdigit() else None
    try:
        _layouts().assign(actor(), name, mapping)
        flash(_("Layout assignments saved."), "ok")
    except (ValidationFailed, BadRequest) as exc:
        _fail(exc)
    return redirect(url_for("admin.layouts", name=name))


@bp.route("/objects/<name>/layouts/<id:layout_id>", methods=["GET", "POST"])
def layout_editor(name, layout_id):
    svc = _layouts()
    reg = runtime().cache.current()
    obj = reg.get(name)
    errors, status = {}, 200
    if request.method == "POST":
        try:
            payload = json.loads(request.form.get("layout", ""))
        except json.JSONDecodeError:
            payload = None
            errors = {"layout": "Not valid JSON."}
            status = 400
        if payload is not None:
            try:
                svc.update_layout(actor(), name, layout_id, payload)
                flash(_("Layout saved."), "ok")
                return redirect(url_for("admin.layout_editor", name=name, layout_id=layout_id))
            except (ValidationFailed, Conflict, BadRequest) as exc:
                errors, status = exc.fields, exc.status
                flash(_(exc.message), "error")
    layout = svc.get_layout(name, layout_id)
    children = [{"object": c.api_name, "field": f.api_name, "label": c.label(g.lang),
                 "columns": [[x.api_name, x.label(g.lang)] for x in c.fields.values()]}
                for c, f in reg.references_to(name) if c.api_name != name]
    return render_template("admin/layout.html", obj=obj, layout=layout, errors=errors, children=children,
                           field_list=[[f.api_name, f.label(g.lang), f.type_name, f.required, f.writable]
                                       for f in obj.fields.values() if not f.system or f.api_name == "owner"]), status


@bp.post("/objects/<name>/layouts/<id:layout_id>/delete")
def delete_layout(name, layout_id):
    try:
        _layouts().delete_layout(actor(), name, layout_id)
        flash(_("Layout deleted."), "ok")
    except (Conflict, NotFound) as exc:
        _fail(exc)
    return redirect(url_for("admin.layouts", name=name))


@bp.get("/objects/<name>/layouts/<id:layout_id>/preview")
def preview_layout(name, layout_id):
    """The form as this layout draws it (nothing is saved from a preview)."""
    layout = _layouts().get_layout(name, layout_id)
    obj = runtime().cache.current().get(name)
    values = {i["field"]: F.input_value(obj.fields[i["field"]], obj.fields[i["field"]].default,
                                        runtime().config.timezone)
              for s in layout["sections"] for i in s["fields"] if i["field"] in obj.fields}
    from leadhub.web.pages.records import form_context
    return render_template("form.html", preview=True, **form_context(obj, layout, values, {}))


# ------------------------------------------------------------------ list views
@bp.route("/objects/<name>/views", methods=["GET", "POST"])
def views(name):
    svc = _layouts()
    a = actor()
    obj = runtime().cache.current().get(name)
    status = 200
    if request.method == "POST":
        view_id = request.form.get("view_id", "")
        try:
            tree = request.form.get("filter", "").strip()
            payload = {"name": _labels_from_form("name"),
                       "columns": [c for c in request.form.get("columns", "").split(",") if c.strip()],
                       "filter": json.loads(tree) if tree else None,
                       "sort": [s for s in request.form.get("sort", "").split(",") if s.strip()],
                       "shared": request.form.get("shared") == "on"}
            if view_id:
                svc.update_list_view(a, name, view_id, payload)
            else:
                svc.create_list_view(a, name, payload)
            flash(_("View saved."), "ok")
            return redirect(url_for("admin.views", name=name))
        except json.JSONDecodeError:
            flash(_("The filter in the address is not valid JSON."), "error")
            status = 400
        except (ValidationFailed, Conflict, BadRequest, Forbidden, NotFound) as exc:
            _fail(exc)
            status = exc.status
    from leadhub.web.pages.records import field_catalog
    views = svc.list_views(a, name)
    return render_template("admin/views.html", obj=obj, views=views, slow=_slow_parts(obj, views),
                           catalog=field_catalog(a, obj)), status


def _slow_parts(obj, views: list[dict]) -> dict:
    """{view id: labels of the fields it filters or sorts by that no index
    serves}: the designer says so, since such a view reads every record.
    A shared view's sort gets its index from the kernel (sort_indexes.py)."""
    from leadhub.data.layout_rules import filter_fields
    from leadhub.data.sort_indexes import unindexed
    from leadhub.web.pages.i18n import current
    reg = runtime().cache.current()
    out = {}
    for v in views:
        paths = filter_fields(v.get("filter"))
        if not v.get("shared"):
            paths += [s.lstrip("-") for s in (v.get("sort") or [])[:1]]
        out[v["id"]] = [obj.fields[p].label(current()) for p in unindexed(reg, obj, paths)]
    return out


@bp.post("/objects/<name>/views/<view_id>/delete")
def delete_view(name, view_id):
    try:
        _layouts().delete_list_view(actor(), name, view_id)
        flash(_("View deleted."), "ok")
    except (NotFound, Forbidden) as exc:
        _fail(exc)
    return redirect(url_for("admin.views", name=name))
