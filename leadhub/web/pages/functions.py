"""The designer's function pages under /admin/functions: list, create and
edit (code compiled at save: the message names line and column), versions,
recent runs, and the test bench, which posts draft code to the REST API's
POST /api/v1/functions/{f}/test (a dry run) and shows result, log, calls,
usage and the error line. Every change goes through runtime.functions."""
from __future__ import annotations

import json

from flask import flash, redirect, render_template, request, url_for

from leadhub.functions.definitions import KINDS, PARAM_TYPES
from leadhub.platform.errors import LeadhubError
from leadhub.web.pages.admin import bp
from leadhub.web.pages.common import actor, runtime
from leadhub.web.pages.i18n import gettext as _

TEXT_KEYS = ("api_name", "description", "kind", "object", "code", "condition", "message", "error_field",
             "schedule", "timezone", "hook", "run_as")


@bp.get("/functions")
def functions():
    items = runtime().functions.list(actor())
    return render_template("admin/functions.html", items=items, kinds=KINDS)


@bp.get("/functions/new")
def new_function():
    kind = request.args.get("kind", "validation")
    return _editor(None, {"kind": kind if kind in KINDS else "validation", "active": False, "code": ""}, {})


@bp.post("/functions/new")
def create_function():
    payload = _payload()
    try:
        fn = runtime().functions.create(actor(), payload)
    except LeadhubError as exc:
        return _editor(None, {**payload, "label": request.form.get("label")}, _errors(exc)), exc.status
    _saved(payload)
    return redirect(url_for("admin.edit_function", name=fn["api_name"]))


@bp.get("/functions/<name>")
def edit_function(name):
    fn = runtime().functions.get(name).payload()
    return _editor(fn, fn, {})


@bp.post("/functions/<name>")
def update_function(name):
    payload = _payload()
    payload.pop("api_name", None)
    payload.pop("kind", None)
    try:
        runtime().functions.update(actor(), name, payload)
    except LeadhubError as exc:
        current = runtime().functions.get(name).payload()
        return _editor(current, {**current, **payload}, _errors(exc)), exc.status
    _saved(payload)
    return redirect(url_for("admin.edit_function", name=name))


def _saved(payload: dict) -> None:
    if payload.get("active"):
        flash(_("Function saved."), "ok")
    else:       # an inactive function never runs: say so, or it looks like it is broken
        flash(_("Function saved, but inactive: it does not run until you tick Active."), "error")


@bp.post("/functions/<name>/delete")
def delete_function(name):
    runtime().functions.delete(actor(), name)
    flash(_("Function deleted."), "ok")
    return redirect(url_for("admin.functions"))


def _editor(fn: dict | None, values: dict, errors: dict):
    rt = runtime()
    versions = rt.functions.versions(actor(), fn["api_name"]) if fn else []
    runs = rt.function_runner.runs(actor(), {"filter": {"field": "function", "op": "eq", "value": fn["api_name"]},
                                             "page_size": 20})["runs"] if fn else []
    objects = sorted(rt.cache.current().objects)
    return render_template("admin/function.html", fn=fn, values=values, errors=errors, kinds=KINDS,
                           objects=objects, param_types=PARAM_TYPES, versions=versions, runs=runs,
                           roles=runtime().org.list_roles(),
                           params_json=json.dumps(values.get("params") or [], ensure_ascii=False, indent=1),
                           limits_json=json.dumps(values.get("limits") or {}, ensure_ascii=False))


def _payload() -> dict:
    form = request.form
    out: dict = {}
    for key in TEXT_KEYS:
        value = form.get(key, "").replace("\r\n", "\n")
        if value.strip():
            out[key] = int(value) if key == "run_as" and value.isdigit() else value
    out["label"] = {"en": form.get("label_en") or out.get("api_name") or "-",
                    "zh_CN": form.get("label_zh") or form.get("label_en") or out.get("api_name") or "-"}
    out["active"] = form.get("active") == "on"
    out["run_async"] = form.get("run_async") == "on"
    events = form.getlist("events")
    if out.get("kind") in ("validation", "before_save", "after_save") and events:
        out["events"] = events
    for key, default in (("params", []), ("limits", {})):
        raw = form.get(key, "").strip()
        if raw:
            try:
                out[key] = json.loads(raw)
            except json.JSONDecodeError:
                out[key] = raw          # the service names the field: not a list/object
    if out.get("kind") not in ("after_save",):
        out.pop("run_async")
    if out.get("kind") in ("api", "action"):
        out["roles"] = form.getlist("roles")
    return out


def _errors(exc: LeadhubError) -> dict:
    """Messages beside the inputs (a compile error's names its line and column)."""
    return {**exc.fields, "_": exc.message}
