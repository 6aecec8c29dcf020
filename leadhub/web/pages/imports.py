"""Import pages: upload a CSV or XLSX file, check the guessed column mapping
and the first rows' outcomes, start, and watch the progress bar until the
per-row report can be downloaded. Everything goes through the platform's
Importer (leadhub/data/imports.py), as POST /api/v1/imports does."""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge

from leadhub.data.imports import OUTCOMES, Importer
from leadhub.platform import permissions
from leadhub.platform.errors import BadRequest, LeadhubError
from leadhub.web.pages.common import actor, runtime
from leadhub.web.pages.i18n import gettext as _
from leadhub.web.pages.records import bp


def _importer() -> Importer:
    return Importer(runtime())


@bp.get("/o/<name>/import")
def import_form(name):
    obj = runtime().cache.current().get(name)
    permissions.require(actor(), name, "import")
    return render_template("import.html", obj=obj, imp=None, preview=None, errors={})


@bp.post("/o/<name>/import")
def import_upload(name):
    obj = runtime().cache.current().get(name)
    imp = _importer()
    request.max_content_length = imp.max_bytes + 64 * 1024
    try:
        upload = request.files.get("file")
    except RequestEntityTooLarge:
        upload = None
    if upload is None or not upload.filename:
        return render_template("import.html", obj=obj, imp=None, preview=None,
                               errors={"file": _("Choose a CSV or XLSX file.")}), 400
    try:
        record = imp.upload(actor(), name, upload.filename, upload.save)
    except LeadhubError as exc:
        return render_template("import.html", obj=obj, imp=None, preview=None,
                               errors={**exc.fields, "_": exc.message}), exc.status
    return redirect(url_for("pages.import_review", name=name, import_id=record["id"]))


@bp.get("/o/<name>/import/<id:import_id>")
def import_review(name, import_id):
    """Before the start: the mapping and the first rows; after: progress."""
    obj = runtime().cache.current().get(name)
    imp = _importer().get(actor(), import_id)
    preview = _importer().preview(actor(), import_id) if imp["status"] == "preview" else None
    return render_template("import.html", obj=obj, imp=imp, preview=preview, errors={}, outcomes=OUTCOMES,
                           fields=[f for f in obj.custom_fields() if f.writable])


@bp.post("/o/<name>/import/<id:import_id>")
def import_start(name, import_id):
    """Save the mapping chosen in the form; start, or show the new preview."""
    imp = _importer()
    current = imp.get(actor(), import_id)
    mapping = {col: (request.form.get(f"map::{i}") or None) for i, col in enumerate(current["header"])}
    try:
        imp.remap(actor(), import_id, mapping=mapping)
        if request.form.get("action") == "start":
            imp.start(actor(), import_id)
            flash(_("Import started."), "ok")
    except (BadRequest, LeadhubError) as exc:
        flash(_(exc.message), "error")
    return redirect(url_for("pages.import_review", name=name, import_id=import_id))
