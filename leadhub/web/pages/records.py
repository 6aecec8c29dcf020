"""Generated record pages: home, list, detail, create/edit form, search.
Every read and write goes through runtime.records with the signed-in user's
Actor, so the pages see exactly what the API would show him."""
from __future__ import annotations

import datetime as dt
import json

from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException
from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from leadhub.data.query import QuerySpec
from leadhub.platform import permissions
from leadhub.platform.errors import BadRequest, Conflict, Forbidden, LeadhubError, NotFound, ValidationFailed
from leadhub.web.pages import fields as F, meta, panels, timeline
from leadhub.web.pages.common import actor, local_path, render_error, render_http_error, require_signed_in, runtime, user_choices
from leadhub.web.pages.i18n import gettext as _

bp = Blueprint("pages", __name__)
bp.before_request(require_signed_in)
bp.register_error_handler(LeadhubError, render_error)
bp.register_error_handler(HTTPException, render_http_error)

PAGE_SIZES = (10, 25, 50, 100)
LIST_COLUMNS = 6
RELATED_ROWS = 5
OPERATOR_LABELS = {  # shown in the filter builder
    "eq": "equals", "ne": "not equal", "in": "is one of", "not_in": "is none of", "is_null": "is empty",
    "lt": "less than", "lte": "at most", "gt": "greater than", "gte": "at least", "between": "between",
    "contains": "contains", "starts_with": "starts with", "today": "today", "yesterday": "yesterday",
    "tomorrow": "tomorrow", "this_week": "this week", "last_week": "last week", "next_week": "next week",
    "this_month": "this month", "last_month": "last month", "next_month": "next month",
    "this_quarter": "this quarter", "this_year": "this year", "last_year": "last year",
    "last_n_days": "in the last N days", "next_n_days": "in the next N days",
}


def _obj(name: str, action: str = "read"):
    """(registry, object) after the action check; one registry per request."""
    reg = runtime().cache.current()
    obj = reg.get(name)
    permissions.require(actor(), name, action)
    return reg, obj


def _tz() -> str:
    return runtime().config.timezone


@bp.app_context_processor
def _nav():
    a = g.get("actor")
    return {"menu": meta.menu(a) if a is not None else [], "me": a}


# ------------------------------------------------------------------ home
@bp.get("/")
def home():
    a = actor()
    reg = runtime().cache.current()
    cards = []
    for item in meta.menu(a):
        obj = reg.objects.get(item["object"])
        if obj is None:
            continue
        cards.append({"object": obj, "label": item["label"],
                      "can_create": "create" in a.rights(obj.api_name).actions})
    return render_template("home.html", cards=cards)


# ------------------------------------------------------------------ list
def _parse_filter(raw: str | None):
    if raw is None or not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        raise BadRequest(_("The filter in the address is not valid JSON."), {"filter": "Malformed JSON."}) from None


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(request.args.get(name, default))
    except ValueError:
        raise BadRequest(f"{name} must be a whole number.", {name: "Not a number."}) from None
    return min(max(value, low), high)


def _default_columns(a, obj) -> list[str]:
    layout = meta.effective_layout(a, obj.api_name)
    names = [i["field"] for s in layout["sections"] for i in s["fields"]]
    if obj.name_field in names:
        names.remove(obj.name_field)
        names.insert(0, obj.name_field)
    return names[:LIST_COLUMNS] or [obj.name_field or "id"]


def list_state(a, obj) -> dict:
    """The list's view, columns, filter, sort and page from the query string."""
    views = meta.list_views(a, obj.api_name)
    view = None
    if request.args.get("view"):
        view = next((v for v in views if str(v["id"]) == request.args["view"]), None)
        if view is None:
            raise NotFound(f"No list view {request.args['view']}.")
    if request.args.get("columns"):
        columns = [c for c in request.args["columns"].split(",") if c]
    elif view and view.get("columns"):
        columns = list(view["columns"])
    else:
        columns = _default_columns(a, obj)
    columns = [c for c in columns if c in obj.fields and permissions.visible(a, obj.api_name, c)]
    view_error = None
    if "filter" in request.args:
        tree = _parse_filter(request.args["filter"])
    elif view and view.get("filter_error"):
        # the view's filter names a field this reader may not use: say so,
        # and list without it (still only what his rights show him)
        tree, view_error = None, view["filter_error"]
    else:
        tree = view.get("filter") if view else None
    if "sort" in request.args:
        sort = [s for s in request.args["sort"].split(",") if s]
    else:
        sort = list(view.get("sort") or []) if view else []
    return {"views": views, "view": view, "view_error": view_error, "columns": columns or ["id"], "filter": tree,
            "sort": sort or ["-id"], "page": _int_arg("page", 1, 1, 100_000),
            "page_size": _int_arg("page_size", 50, 1, 100)}


def _list_url(obj_name: str, state: dict, **changes) -> str:
    args = {"view": state["view"]["id"] if state["view"] else None,
            "filter": json.dumps(state["filter"], ensure_ascii=False) if state["filter"] else None,
            "sort": ",".join(state["sort"]), "page": state["page"], "page_size": state["page_size"]}
    if request.args.get("columns"):
        args["columns"] = request.args["columns"]
    args.update(changes)
    return url_for("pages.list_records", name=obj_name, **{k: v for k, v in args.items() if v not in (None, "")})


def field_catalog(a, obj) -> list[dict]:
    """What the filter builder and list view editor may offer: visible fields."""
    out = []
    for fd in obj.fields.values():
        if not permissions.visible(a, obj.api_name, fd.api_name):
            continue
        ops = sorted(fd.type.operators, key=lambda o: list(OPERATOR_LABELS).index(o) if o in OPERATOR_LABELS else 99)
        out.append({"name": fd.api_name, "label": fd.label(g.lang), "type": fd.type_name,
                    "operators": [[o, _(OPERATOR_LABELS.get(o, o))] for o in ops],
                    "options": F.options(fd, False)})
    return out


@bp.get("/o/<name>")
def list_records(name):
    a = actor()
    rt = runtime()
    reg, obj = _obj(name)
    try:
        state = list_state(a, obj)
    except NotFound:
        moved = rt.layouts.moved_view(name, request.args.get("view", ""))   # an old link to a shared view
        if moved is None:
            raise
        return redirect(url_for("pages.list_records", name=name, **{**request.args.to_dict(), "view": moved}))
    spec = QuerySpec(filter=state["filter"], sort=state["sort"], page=state["page"], page_size=state["page_size"],
                     fields=F.query_fields(reg, a, obj, state["columns"]))
    result = rt.records.query(a, name, spec)
    rights = a.rights(name)
    layout = meta.effective_layout(a, name)
    return render_template(
        "list.html", obj=obj, state=state, result=result, tz=_tz(),
        count_url=_count_url(name, state),
        cols=[obj.fields[c] for c in state["columns"]], list_url=lambda **kw: _list_url(name, state, **kw),
        catalog=field_catalog(a, obj), bulk_fields=F.editable(obj, layout),
        can=dict(create="create" in rights.actions, edit="edit" in rights.actions,
                 delete="delete" in rights.actions, export="export" in rights.actions,
                 **{"import": "import" in rights.actions and "create" in rights.actions},
                 owner=rights.field_access("owner") == "edit" and "edit" in rights.actions),
        users=user_choices() if "edit" in rights.actions else [],
        export_query=_export_query(state), page_sizes=PAGE_SIZES)


def _count_url(obj_name: str, state: dict) -> str:
    """The total comes from the API after the page is shown: a count over a
    large table costs more than the page itself, and the rows should not
    wait for it."""
    args = {"count": "true", "page_size": 1, "fields": "id"}
    if state["filter"]:
        args["filter"] = json.dumps(state["filter"], ensure_ascii=False)
    return url_for("api.list_records", name=obj_name, **args)


def _export_query(state) -> dict:
    q = {"sort": ",".join(state["sort"]), "fields": ",".join(["id"] + state["columns"])}
    if state["filter"]:
        q["filter"] = json.dumps(state["filter"], ensure_ascii=False)
    return q


@bp.post("/o/<name>/views")
def save_view(name):
    a = actor()
    _reg, obj = _obj(name)
    svc = meta.service()
    title = request.form.get("name", "").strip()
    if not title:
        flash(_("Give the view a name."), "error")
        return redirect(local_path(request.form.get("back"), url_for("pages.list_records", name=name)))
    payload = {"name": {"en": title, "zh_CN": title},
               "columns": [c for c in request.form.get("columns", "").split(",") if c],
               "filter": _parse_filter(request.form.get("filter")),
               "sort": [s for s in request.form.get("sort", "").split(",") if s],
               "shared": request.form.get("shared") == "on" and a.is_admin}
    try:
        view = svc.create_list_view(a, obj.api_name, payload)
    except (ValidationFailed, BadRequest, Conflict, Forbidden) as exc:
        detail = "; ".join(f"{k}: {_(str(v))}" for k, v in exc.fields.items())
        flash(_(exc.message) + (f" ({detail})" if detail else ""), "error")
        return redirect(url_for("pages.list_records", name=name))
    flash(_("View saved."), "ok")
    return redirect(url_for("pages.list_records", name=name, view=view["id"]))


@bp.post("/o/<name>/views/<view_id>/delete")
def delete_view(name, view_id):
    """His own personal view (or, for an admin, a shared one)."""
    _obj(name)
    meta.service().delete_list_view(actor(), name, view_id)
    flash(_("View deleted."), "ok")
    return redirect(url_for("pages.list_records", name=name))


@bp.post("/o/<name>/bulk")
def bulk(name):
    """Bulk edit, delete and owner transfer of the ticked rows: all or none."""
    a = actor()
    rt = runtime()
    _reg, obj = _obj(name)
    try:
        ids = sorted({int(i) for i in request.form.getlist("ids")})
    except ValueError:
        raise BadRequest("ids must be record ids.", {"ids": "Not a number."}) from None
    back = local_path(request.form.get("back"), url_for("pages.list_records", name=name))
    if not ids:
        flash(_("Tick at least one record."), "error")
        return redirect(back)
    action = request.form.get("action")
    try:
        if action == "delete":
            rt.records.bulk_delete(a, name, ids)
        elif action == "owner":
            owner = request.form.get("owner", "")
            rt.records.bulk_update(a, name, [{"id": rid, "owner": owner} for rid in ids])
        elif action == "edit":
            fd = obj.fields.get(request.form.get("field", ""))
            if fd is None or fd not in F.editable(obj, meta.effective_layout(a, name)):
                raise BadRequest(_("Choose a field you may edit."), {"field": "Not editable."})
            given = MultiDict([(fd.api_name, v) for v in request.form.getlist("value")])
            value = F.from_form(fd, given, _tz())
            rt.records.bulk_update(a, name, [{"id": rid, fd.api_name: value} for rid in ids])
        else:
            raise BadRequest(_("Choose an action."), {"action": "Unknown action."})
    except (ValidationFailed, Conflict, Forbidden, NotFound, BadRequest) as exc:
        detail = "; ".join(f"{k}: {_(str(v))}" for k, v in exc.fields.items())
        flash(_(exc.message) + (f" ({detail})" if detail else ""), "error")
        return redirect(back)
    flash(_("%(n)s records updated.") % {"n": len(ids)} if action != "delete"
          else _("%(n)s records deleted.") % {"n": len(ids)}, "ok")
    return redirect(back)


# ------------------------------------------------------------------ detail
def _related(a, reg, obj_name, rid, layout) -> list[dict]:
    rt = runtime()
    out = []
    for rel in layout.get("related_lists", []):
        child = reg.objects.get(rel["object"])
        if child is None or "read" not in a.rights(child.api_name).actions \
                or not permissions.visible(a, child.api_name, rel["field"]):
            continue
        cols = [c for c in rel.get("columns") or [] if c in child.fields and permissions.visible(a, child.api_name, c)]
        if not cols:
            cols = [child.name_field or "id"]
        result = rt.records.query(a, child.api_name, QuerySpec(
            filter={"field": rel["field"], "op": "eq", "value": rid}, sort=rel.get("sort") or ["-id"],
            fields=F.query_fields(reg, a, child, cols), page_size=RELATED_ROWS, count=True))
        out.append({"rel": rel, "obj": child, "cols": [child.fields[c] for c in cols], "result": result,
                    "can_create": "create" in a.rights(child.api_name).actions})
    return out


@bp.get("/o/<name>/<id:rid>")
def detail(name, rid):
    a = actor()
    rt = runtime()
    reg, obj = _obj(name)
    layout = meta.effective_layout(a, name)
    names = [i["field"] for s in layout["sections"] for i in s["fields"]] + ["owner", "created_at", "updated_at"]
    record = rt.records.get(a, name, rid, F.query_fields(reg, a, obj, names))
    buttons = {b["name"] for b in layout["buttons"] if b["kind"] == "standard"}  # already cut to his rights
    history = rt.records.history(a, name, rid) if obj.track_history or any(
        f.track_history for f in obj.fields.values()) else []
    return render_template(
        "detail.html", obj=obj, record=record, layout=layout, tz=_tz(),
        related=_related(a, reg, name, rid, layout), history=history,
        timeline=timeline.items(rt, a, name, rid), users=_user_names(history),
        panels=panels.panels(rt, a, name, record),
        can=dict(edit="edit" in buttons, delete="delete" in buttons, create="create" in a.rights(name).actions,
                 owner="transfer_owner" in buttons),
        clone_args=_clone_args(obj, layout, record) if "clone" in buttons else None,
        owners=user_choices() if "transfer_owner" in buttons else [])


def _clone_args(obj, layout, record) -> dict:
    """A new record's form prefilled with this one's writable values (unique
    ones left out: they could not be saved twice)."""
    out = {}
    for fd in F.editable(obj, layout):
        value = record.get(fd.api_name)
        if value is False:          # an unticked box is the form's default anyway
            continue
        if value not in (None, "", []) and not fd.unique:
            out[fd.api_name] = F.input_value(fd, value, _tz())
    return out


def _user_names(history) -> dict:
    if not history:
        return {}
    return {u["id"]: u["name"] for u in user_choices()}


@bp.post("/o/<name>/<id:rid>/delete")
def delete(name, rid):
    runtime().records.delete(actor(), name, rid)
    flash(_("Record deleted."), "ok")
    return redirect(url_for("pages.list_records", name=name))


# ------------------------------------------------------------------ forms
def _lookup_labels(a, reg, obj, values: dict) -> dict:
    """Names of the records the form's lookups point at, read as the actor."""
    out = {}
    for fd in obj.fields.values():
        v = values.get(fd.api_name)
        if fd.type.widget != "lookup" or v in (None, ""):
            continue
        label_text = request.form.get(f"{fd.api_name}__label")
        if label_text:
            out[fd.api_name] = label_text
            continue
        target = reg.objects.get(fd.settings["reference_to"])
        path = F.name_path(reg, a, fd)
        try:
            rec = runtime().records.get(a, target.api_name, int(v),
                                        [path.split(".", 1)[1]] if path else ["id"])
            out[fd.api_name] = rec.get(target.name_field) if path else f"#{v}"
        except (LeadhubError, ValueError):
            out[fd.api_name] = f"#{v}"
    return out


def form_context(obj, layout, values, errors, record=None) -> dict:
    a = actor()
    reg = runtime().cache.current()
    return dict(
        obj=obj, layout=layout, values=values, errors=errors, record=record, tz=_tz(),
        lookup_labels=_lookup_labels(a, reg, obj, values),
        lookup_targets={fd.api_name: reg.objects[fd.settings["reference_to"]] for fd in obj.fields.values()
                        if fd.type.widget == "lookup" and fd.settings.get("reference_to") in reg.objects},
        users=user_choices() if obj.fields_of_type("user") else [])


def _render_form(obj, layout, values, errors, record=None, status=200):
    return render_template("form.html", **form_context(obj, layout, values, errors, record)), status


def _payload(obj, layout, creating: bool) -> tuple[dict, dict]:
    """The form as a record payload, plus the layout's own required rule."""
    payload, errors = {}, {}
    required = F.layout_required(layout)
    for fd in F.editable(obj, layout):
        value = F.from_form(fd, request.form, _tz())
        if value is None and fd.api_name in required:
            errors[fd.api_name] = "This field is required."
        if creating and value is None:
            continue
        payload[fd.api_name] = value
    return payload, errors


def _write(a, obj, record, payload) -> dict:
    if record is None:
        return runtime().records.create(a, obj.api_name, payload)
    return runtime().records.update(a, obj.api_name, record["id"], payload)


def _save(obj, layout, record=None):
    a = actor()
    rt = runtime()
    payload, errors = _payload(obj, layout, record is None)
    if record is not None and request.form.get("_version", "").isdigit():
        payload["_version"] = int(request.form["_version"])      # the version the form was filled from
    values = F.form_values(request.form, record, obj, layout, _tz())
    if errors:  # the layout's own rule failed: still let the service name every other error (dry run)
        try:
            with rt.db.write(rollback=True):
                _write(a, obj, record, payload)
        except (ValidationFailed, Conflict) as exc:
            errors = {**{k: v for k, v in exc.fields.items() if k in values}, **errors}
        return _render_form(obj, layout, values, errors, record, 422)
    try:
        saved = _write(a, obj, record, payload)
    except (ValidationFailed, Conflict) as exc:
        if "current_version" in exc.fields:
            flash(_changed_meanwhile(exc.fields), "error")
            return _render_form(obj, layout, values, {}, record, 409)
        shown = {k: v for k, v in exc.fields.items() if k in values}
        if not shown or len(shown) < len(exc.fields):
            flash(_(exc.message), "error")
        return _render_form(obj, layout, values, shown, record, exc.status)
    flash(_("Saved."), "ok")
    # a form posted from another page (the lead page's follow-up composer) goes back there
    return redirect(local_path(request.form.get("back"), url_for("pages.detail", name=obj.api_name, rid=saved["id"])))


def _changed_meanwhile(fields: dict) -> str:
    """Someone saved the record after this form was opened: who, when, what now."""
    when = dt.datetime.fromisoformat(fields["changed_at"]) if fields.get("changed_at") else None
    return _("%(who)s changed this record at %(when)s. Nothing of yours was saved: reload, then make your change.") % {
        "who": fields.get("changed_by") or _("Someone"), "when": F.local_time(when, _tz()) if when else "?"}


@bp.route("/o/<name>/new", methods=["GET", "POST"])
def create(name):
    a = actor()
    _reg, obj = _obj(name, "create")
    layout = meta.effective_layout(a, name)
    if request.method == "POST":
        return _save(obj, layout)
    values = {}
    for section in layout["sections"]:
        for item in section["fields"]:
            fd = obj.fields.get(item["field"])
            if fd is None:
                continue
            given = fd.type.form_text(fd, request.args)          # prefilled from the address
            values[fd.api_name] = given if given else F.input_value(fd, fd.default, _tz())
    return _render_form(obj, layout, values, {})


@bp.route("/o/<name>/<id:rid>/edit", methods=["GET", "POST"])
def edit(name, rid):
    a = actor()
    rt = runtime()
    reg, obj = _obj(name, "edit")
    layout = meta.effective_layout(a, name)
    names = [i["field"] for s in layout["sections"] for i in s["fields"]]
    record = rt.records.get(a, name, rid, F.query_fields(reg, a, obj, names + ["version"]))
    if request.method == "POST":
        return _save(obj, layout, record)
    values = {n: F.input_value(obj.fields[n], record.get(n), _tz()) for n in names if n in obj.fields}
    return _render_form(obj, layout, values, {}, record)


# ------------------------------------------------------------------ search
@bp.get("/search")
def search():
    a = actor()
    q = request.args.get("q", "").strip()
    hits = runtime().records.search(a, q) if q else []
    groups: dict[str, list] = {}
    reg = runtime().cache.current()
    for hit in hits:
        hit["matched"] = _matched_labels(reg.objects[hit["object"]], hit["matched"])
        groups.setdefault(hit["object"], []).append(hit)
    return render_template("search.html", q=q, groups=groups, reg=reg)


def _matched_labels(obj, names: list[str]) -> list[str]:
    """Where a hit matched, as people call those fields. Values the system
    keeps beside a typed one (a lead's normalised company key) are named
    only when nothing typed matched."""
    fields = [obj.fields[n] for n in names if n in obj.fields]
    typed = [f for f in fields if not f.read_only]
    return [f.label(g.lang) for f in (typed or fields)]
