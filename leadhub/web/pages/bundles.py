"""The designer's template pages under /admin/bundles: the installed
templates, installing or upgrading one from its file (the plan first, with
each conflict shown from both sides and settled per entry), exporting chosen
objects, fields and rules with what they need, and uninstalling. Every step
calls metadata/bundles.py, as `leadhub bundle ...` does."""
from __future__ import annotations

import io
import secrets
from pathlib import Path

from flask import flash, redirect, render_template, request, send_file, url_for

from leadhub.metadata import bundles
from leadhub.platform.errors import BadRequest, LeadhubError
from leadhub.web.pages.admin import bp
from leadhub.web.pages.common import actor, runtime
from leadhub.web.pages.i18n import gettext as _
from leadhub.web.pages.kinds import property_label, shown

ACTION_LABELS = {"create": "Add", "update": "Change", "delete": "Remove", "unchanged": "Unchanged",
                 "keep_local": "Keep as it is here", "conflict": "Changed on both sides"}
UPLOAD = "bundle-uploads"       # under the instance folder: a plan's file until it is installed


def _upload_dir() -> Path:
    folder = runtime().config.instance_path / UPLOAD
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@bp.get("/bundles")
def bundles_page():
    return render_template("admin/bundles.html", installed=bundles.installed_bundles(runtime()))


@bp.post("/bundles/plan")
def bundle_plan():
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        flash(_("Choose a template file (.zip) first."), "error")
        return redirect(url_for("admin.bundles_page"))
    raw = upload.read(bundles.MAX_FILE_BYTES + 1)
    try:
        made = bundles.read(raw)
    except LeadhubError as exc:
        flash(_("This file cannot be installed.") + " " + _(exc.message), "error")
        return redirect(url_for("admin.bundles_page"))
    token = secrets.token_urlsafe(16)
    (_upload_dir() / f"{token}.zip").write_bytes(raw)
    return _plan_page(made, token, {})


def _plan_page(made: bundles.Bundle, token: str, errors: dict, status: int = 200):
    result = bundles.plan(runtime(), made)
    report = bundles.report(result)
    steps = []
    for step in report["steps"]:
        kind, _sep, key = step["entry"].partition("/")
        kd = runtime().kinds.kind(kind) if runtime().kinds.known(kind) else None
        steps.append({**step, "what": _entry_label(kind, kd), "key": key, "kd": kd,
                      "title": _entry_title(made, step["entry"], kind, key)})
    sample_labels = {obj: _object_title(made, obj) for obj in made.samples}
    return render_template("admin/bundle_plan.html", bundle=made, report=report, steps=steps, token=token,
                           errors=errors, action_labels=ACTION_LABELS, shown=shown, prop=property_label,
                           sample_labels=sample_labels), status


def _object_title(made: bundles.Bundle, obj: str) -> str:
    return _entry_title(made, f"object/{obj}", "object", obj)


def _entry_title(made: bundles.Bundle, entry: str, kind: str, key: str) -> str:
    """What people call an entry: its label (a field with its object's), else its key."""
    from leadhub.web.pages.i18n import label
    reg = runtime().cache.current()

    def labelled(e: str, fallback: str) -> str:
        data = made.entries.get(e) or {}
        if isinstance(data.get("label"), (dict, str)) and data.get("label"):
            return label(data["label"])
        k, _sep, name = e.partition("/")
        if k == "object" and name in reg.objects:
            return reg.objects[name].label(_lang())
        if k == "field":
            obj, _dot, f = name.partition(".")
            if obj in reg.objects and f in reg.objects[obj].fields:
                return reg.objects[obj].fields[f].label(_lang())
        return fallback
    if kind == "field":
        obj, _dot, name = key.partition(".")
        return f"{labelled(f'object/{obj}', obj)} › {labelled(entry, name)}"
    return labelled(entry, key)


def _entry_label(kind: str, kd) -> str:
    if kind == "object":
        return _("Object")
    if kind == "field":
        return _("Field")
    return kd.label(_lang()) if kd else kind


def _lang() -> str:
    from leadhub.web.pages.i18n import current
    return current()


@bp.post("/bundles/install")
def bundle_install():
    token = request.form.get("token", "")
    path = _upload_dir() / f"{token}.zip"
    if not token.replace("-", "").replace("_", "").isalnum() or not path.exists():
        raise BadRequest(_("The uploaded file is gone: upload it again."), {"token": "Unknown."})
    made = bundles.read(path.read_bytes())
    resolve = {k[len("resolve:"):]: v for k, v in request.form.items() if k.startswith("resolve:") and v}
    try:
        done = bundles.install(runtime(), actor(), made, resolve=resolve,
                               with_samples=request.form.get("with_samples") == "on")
    except LeadhubError as exc:
        return _plan_page(made, token, {**exc.fields, "_": exc.message}, exc.status)
    path.unlink(missing_ok=True)
    flash(_("%(name)s %(version)s installed: %(n)s changes.") % {
        "name": made.name, "version": made.version, "n": done["applied"]}
        + (" " + _("%(n)s sample records added.") % {"n": done["samples"]} if done["samples"] else ""), "ok")
    return redirect(url_for("admin.bundles_page"))


@bp.post("/bundles/<name>/uninstall")
def bundle_uninstall(name):
    try:
        bundles.uninstall(runtime(), actor(), name)
    except LeadhubError as exc:
        if exc.status != 409:
            raise
        flash(_("Not uninstalled.") + " " + _(exc.message), "error")
    else:
        flash(_("%(name)s uninstalled; its objects are in the recycle bin.") % {"name": name}, "ok")
    return redirect(url_for("admin.bundles_page"))


# ------------------------------------------------------------------ export
def _choices() -> dict:
    reg = runtime().cache.current()
    objects = [o for o in reg.objects.values() if not o.plugin]
    fields = [(o, f) for o in reg.objects.values() if o.plugin for f in o.custom_fields() if not f.plugin]
    kinds = [(kd, runtime().kinds.list(actor(), kd.name)) for kd in runtime().kinds.kinds()]
    return {"objects": objects, "fields": fields, "kinds": [(kd, items) for kd, items in kinds if items]}


@bp.get("/bundles/export")
def bundle_export_page():
    return render_template("admin/bundle_export.html", choices=_choices(), values={}, errors={}, preview=None)


@bp.post("/bundles/export")
def bundle_export():
    form = request.form
    values = {k: form.get(k, "").strip() for k in ("name", "version", "label_zh", "label_en", "publisher",
                                                    "description")}
    selection = bundles.Selection(objects=form.getlist("objects"), fields=form.getlist("fields"),
                                  items=form.getlist("items"), samples=form.getlist("samples"))
    label = {k: v for k, v in (("zh_CN", values["label_zh"]), ("en", values["label_en"])) if v} or None
    chosen = set(selection.objects) | {f"field:{f}" for f in selection.fields} | set(selection.items) \
        | {f"sample:{o}" for o in selection.samples}
    try:
        if not (selection.objects or selection.fields or selection.items):
            raise BadRequest(_("Choose at least one object, field or rule."), {"selection": "Empty."})
        made, pulled = bundles.export(runtime(), actor(), selection, name=values["name"],
                                      version=values["version"], label=label, publisher=values["publisher"] or None,
                                      description=values["description"] or None)
    except LeadhubError as exc:
        return render_template("admin/bundle_export.html", choices=_choices(), values=values, chosen=chosen,
                               errors={**exc.fields, "_": exc.message}, preview=None), exc.status
    if form.get("step") == "download":
        return send_file(io.BytesIO(bundles.write(made)), mimetype="application/zip", as_attachment=True,
                         download_name=f"{made.name}-{made.version}.zip")
    return render_template("admin/bundle_export.html", choices=_choices(), values=values, chosen=chosen,
                           errors={}, preview={"bundle": made, "pulled": set(pulled),
                                               "labels": {o: _object_title(made, o) for o in made.samples}})
