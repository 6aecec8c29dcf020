"""Record endpoints: CRUD, restore, history, query and bulk, all through the
record service."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zoneinfo

import openpyxl
from flask import Response, g, request
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from leadhub.data.query import load_spec
from leadhub.platform.errors import BadRequest
from leadhub.web.api.base import api, runtime
from leadhub.web.jsonio import body


def _fields_arg() -> list[str] | None:
    raw = request.args.get("fields")
    return [f.strip() for f in raw.split(",") if f.strip()] if raw else None


@api.get("/objects/<name>/records")
def list_records(name):
    """The query endpoint's spec, from the query string: filter is JSON."""
    spec = _spec_from_args()
    args = request.args
    for key in ("page", "page_size"):
        if key in args:
            try:
                spec[key] = int(args[key])
            except ValueError:
                raise BadRequest(f"{key} must be a whole number.", {key: "Not a number."}) from None
    for key in ("count", "deleted"):
        if key in args:
            spec[key] = args[key].lower() in ("1", "true", "yes")
    return runtime().records.query(g.actor, name, load_spec(spec))


def _spec_from_args() -> dict:
    """filter (JSON), sort and fields from the query string."""
    spec: dict = {}
    args = request.args
    if "filter" in args:
        try:
            spec["filter"] = json.loads(args["filter"])
        except json.JSONDecodeError as exc:
            raise BadRequest(f"filter is not valid JSON: {exc.msg}.", {"filter": "Malformed JSON."}) from None
        except RecursionError:
            raise BadRequest("filter is nested too deeply.", {"filter": "Nested too deeply."}) from None
    if "sort" in args:
        spec["sort"] = [s for s in args["sort"].split(",") if s]
    if _fields_arg():
        spec["fields"] = _fields_arg()
    return spec


@api.get("/objects/<name>/export")
def export_records(name):
    """CSV (UTF-8 with a BOM, so spreadsheet programs read Chinese right), or
    XLSX with ?format=xlsx."""
    fmt = request.args.get("format", "csv")
    if fmt not in ("csv", "xlsx"):
        raise BadRequest("format must be csv or xlsx.", {"format": "Use csv or xlsx."})
    header, rows = runtime().records.export(g.actor, name, load_spec(_spec_from_args()))
    if fmt == "xlsx":
        return Response(_xlsx(name, header, rows, zoneinfo.ZoneInfo(runtime().config.timezone)), mimetype=XLSX,
                        headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(row[h]) for h in header])
    return Response("\ufeff" + out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _xlsx(name: str, header: list[str], rows: list[dict], tz: zoneinfo.ZoneInfo) -> bytes:
    """One sheet, streamed (write-only), with real dates and numbers."""
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet(title=name[:31])
    sheet.append(header)
    for row in rows:
        sheet.append([_xlsx_cell(sheet, row[h], tz) for h in header])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _xlsx_cell(sheet, value, tz: zoneinfo.ZoneInfo):
    if isinstance(value, dt.datetime):   # Excel has no time zones: the instance's local time
        cell = WriteOnlyCell(sheet, value.astimezone(tz).replace(tzinfo=None))
        cell.number_format = "yyyy-mm-dd hh:mm:ss"
        return cell
    if isinstance(value, dt.date):
        cell = WriteOnlyCell(sheet, value)
        cell.number_format = "yyyy-mm-dd"
        return cell
    if isinstance(value, list):
        value = ";".join(value)
    if isinstance(value, str):
        # control characters are not allowed in XLSX; text typed as "s" is
        # never a formula, whatever it starts with
        cell = WriteOnlyCell(sheet, ILLEGAL_CHARACTERS_RE.sub("", value))
        cell.data_type = "s"
        return cell
    return value   # numbers (Decimal stays exact until the file), booleans, None


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    text = str(value)
    # a cell starting with = + - @ would run as a formula in a spreadsheet
    return "'" + text if text[:1] in ("=", "+", "-", "@") and not _is_number(text) else text


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


@api.get("/search")
def search():
    return {"results": runtime().records.search(g.actor, request.args.get("q", ""))}


@api.post("/objects/<name>/query")
def query_records(name):
    return runtime().records.query(g.actor, name, load_spec(body()))


@api.post("/objects/<name>/records")
def create_record(name):
    return runtime().records.create(g.actor, name, body()), 201


@api.post("/objects/<name>/records/bulk")
def bulk_records(name):
    """{"operation": "create" | "update", "records": [...]}: all or nothing."""
    payload = body()
    if not isinstance(payload, dict):
        raise BadRequest("The body must be an object with 'records'.", {"body": "Must be an object."})
    unknown = set(payload) - {"operation", "records"}
    if unknown:
        raise BadRequest(f"Unknown property: {', '.join(sorted(unknown))}.", {k: "Unknown property." for k in unknown})
    operation = payload.get("operation", "create")
    svc = runtime().records
    if operation == "create":
        records = svc.bulk_create(g.actor, name, payload.get("records"))
        return {"records": records}, 201
    if operation == "update":
        return {"records": svc.bulk_update(g.actor, name, payload.get("records"))}
    raise BadRequest("operation must be 'create' or 'update'.", {"operation": "Unknown operation."})


@api.post("/objects/<name>/records/bulk-delete")
def bulk_delete_records(name):
    """{"ids": [...]}: soft-delete them all through the record service, in one
    transaction, or none (an id that is missing or out of scope is a 404)."""
    payload = body()
    unknown = set(payload) - {"ids"}
    if unknown:
        raise BadRequest(f"Unknown property: {', '.join(sorted(unknown))}.", {k: "Unknown property." for k in unknown})
    ids = payload.get("ids")
    if not isinstance(ids, list) or not ids:
        raise BadRequest("ids must be a non-empty list of record ids.", {"ids": "Must be a non-empty list."})
    return {"deleted": runtime().records.bulk_delete(g.actor, name, ids)}


@api.get("/objects/<name>/records/<id:record_id>")
def get_record(name, record_id):
    return _tagged(runtime().records.get(g.actor, name, record_id, _fields_arg()))


@api.patch("/objects/<name>/records/<id:record_id>")
def update_record(name, record_id):
    """A write against the version read (If-Match: "3", or "_version": 3 in
    the body) is refused with a 409 when the record has moved on since."""
    payload = body()
    wanted = _if_match()
    if wanted is not None and isinstance(payload, dict):
        if payload.get("_version", wanted) != wanted:
            raise BadRequest("If-Match and _version name different versions.", {"_version": "Differs from If-Match."})
        payload = {**payload, "_version": wanted}
    return _tagged(runtime().records.update(g.actor, name, record_id, payload))


def _tagged(record: dict):
    """The record with its version as the ETag (when the reader asked for it)."""
    if record.get("version") is None:
        return record
    return record, 200, {"ETag": f'"{record["version"]}"'}


def _if_match() -> int | None:
    raw = request.headers.get("If-Match")
    if raw is None or raw.strip() == "*":
        return None
    tag = raw.strip().removeprefix("W/").strip('"')
    if not tag.isdigit() or not 1 <= int(tag) <= 2 ** 31 - 1:
        raise BadRequest('If-Match must be the ETag the record was read with, e.g. "3".', {"If-Match": "Not a version."})
    return int(tag)


@api.delete("/objects/<name>/records/<id:record_id>")
def delete_record(name, record_id):
    runtime().records.delete(g.actor, name, record_id)
    return "", 204


@api.post("/objects/<name>/records/<id:record_id>/restore")
def restore_record(name, record_id):
    return runtime().records.restore(g.actor, name, record_id)


@api.get("/objects/<name>/records/<id:record_id>/history")
def record_history(name, record_id):
    return {"history": runtime().records.history(g.actor, name, record_id)}
