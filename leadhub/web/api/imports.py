"""File import endpoints (platform/imports.py does the work): upload with an
optional preview, start, progress, the per-row report as CSV or XLSX, and
saved column mappings."""
from __future__ import annotations

import csv
import io
import json
import tempfile

from flask import Response, g, request, send_file
from werkzeug.exceptions import RequestEntityTooLarge

from leadhub.data.imports import Importer, TooLarge
from leadhub.platform.errors import BadRequest
from leadhub.web.api.base import api, runtime
from leadhub.web.jsonio import body

REPORT_COLUMNS = ["row", "outcome", "record_id", "reason"]


def _importer() -> Importer:
    return Importer(runtime())


def _json_form_value(name: str):
    raw = request.form.get(name)
    if raw in (None, ""):
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"{name} is not valid JSON: {exc.msg}.", {name: "Malformed JSON."}) from None


def _flag(value) -> bool:
    return str(value).lower() in ("1", "true", "yes", "on")


@api.post("/imports")
def upload_import():
    """multipart: file, object, optional mapping (JSON), mapping_id,
    update_key, preview=true. 202 with the import (run inline without Redis,
    queued with it); 200 with the first rows' outcomes when previewing."""
    imp = _importer()
    request.max_content_length = imp.max_bytes + 64 * 1024  # room for the other form parts
    try:
        upload = request.files.get("file")
        form = request.form
    except RequestEntityTooLarge:
        raise TooLarge(f"The file is larger than {imp.max_bytes} bytes.", {"file": "Too large."}) from None
    if upload is None or not upload.filename:
        raise BadRequest("Send the file as multipart form data in the part 'file'.", {"file": "Required."})
    record = imp.upload(g.actor, form.get("object"), upload.filename, upload.save,
                        mapping=_json_form_value("mapping"), mapping_id=form.get("mapping_id"),
                        update_key=form.get("update_key") or None)
    if _flag(form.get("preview", "")):
        return {**record, "preview": imp.preview(g.actor, record["id"])}
    return imp.start(g.actor, record["id"]), 202


@api.get("/imports")
def list_imports():
    return {"imports": _importer().list(g.actor)}


@api.get("/imports/<id:import_id>")
def get_import(import_id):
    return _importer().get(g.actor, import_id)


@api.post("/imports/<id:import_id>/preview")
def preview_import(import_id):
    """Change the mapping of an import not yet started (JSON: mapping,
    mapping_id, update_key) and answer its preview again."""
    imp = _importer()
    data = body(required=False)
    unknown = set(data) - {"mapping", "mapping_id", "update_key"}
    if unknown:
        raise BadRequest(f"Unknown property: {', '.join(sorted(unknown))}.", {k: "Unknown property." for k in unknown})
    record = imp.remap(g.actor, import_id, data.get("mapping"), data.get("mapping_id"), data.get("update_key"))
    return {**record, "preview": imp.preview(g.actor, import_id)}


@api.post("/imports/<id:import_id>/start")
def start_import(import_id):
    return _importer().start(g.actor, import_id), 202


@api.get("/imports/<id:import_id>/report")
def import_report(import_id):
    """Every row's outcome with its original values; ?outcome=rejected narrows."""
    fmt = request.args.get("format", "csv")
    if fmt not in ("csv", "xlsx"):
        raise BadRequest("format must be csv or xlsx.", {"format": "csv or xlsx."})
    only = request.args.get("outcome")
    record, rows = _importer().report_rows(g.actor, import_id)
    header = REPORT_COLUMNS + record["header"]

    def lines():
        for r in rows:
            if only and r["outcome"] != only:
                continue
            yield [r["row_no"], r["outcome"], r["record_id"], r["reason"]] + list(r["cells"])

    name = f"import-{import_id}-report"
    if fmt == "csv":
        def stream():
            out = io.StringIO()
            writer = csv.writer(out)
            out.write("\ufeff")  # spreadsheet programs then read the Chinese right
            writer.writerow(header)
            for line in lines():
                writer.writerow([_safe(v) for v in line])
                if out.tell() > 64 * 1024:
                    yield out.getvalue()
                    out.seek(0)
                    out.truncate()
            yield out.getvalue()
        return Response(stream(), mimetype="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    import openpyxl
    wb = openpyxl.Workbook(write_only=True)  # rows go to a temporary file, not memory
    ws = wb.create_sheet("report")
    ws.append(header)
    for line in lines():
        ws.append([_safe(v) for v in line])
    tmp = tempfile.TemporaryFile()
    wb.save(tmp)
    tmp.seek(0)
    return send_file(tmp, download_name=f"{name}.xlsx", as_attachment=True,
                     mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


def _safe(value):
    """A cell that would run as a formula in a spreadsheet is quoted, as in export."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        try:
            float(value)
        except ValueError:
            return "'" + value
    return value


@api.get("/imports/mappings")
def list_mappings():
    return {"mappings": _importer().mappings(g.actor, request.args.get("object"))}


@api.post("/imports/mappings")
def save_mapping():
    return _importer().save_mapping(g.actor, body()), 201


@api.get("/imports/mappings/<id:mapping_id>")
def get_mapping(mapping_id):
    return _importer().mapping(g.actor, mapping_id)


@api.delete("/imports/mappings/<id:mapping_id>")
def delete_mapping(mapping_id):
    _importer().delete_mapping(g.actor, mapping_id)
    return "", 204
