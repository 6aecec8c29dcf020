"""Field values on pages: which widget a type gets, how a stored value is
shown, how a form's strings become the record service's payload, and which
lookup paths bring referenced records' names along in the same query."""
from __future__ import annotations

import datetime as dt
import decimal
import zoneinfo

from markupsafe import Markup, escape
from werkzeug.datastructures import MultiDict

from leadhub.metadata.definitions import FieldDef, ObjectDef
from leadhub.metadata.registry import Registry
from leadhub.platform import permissions
from leadhub.platform.permissions import Actor
from leadhub.web.pages.i18n import current, gettext as _, label

REFERENCES = ("lookup", "master_detail", "user")
COMPUTED = ("formula", "rollup", "auto_number")
WIDGETS = {
    "text": "text", "email": "email", "phone": "tel", "url": "url", "long_text": "textarea",
    "integer": "integer", "decimal": "decimal", "currency": "decimal", "percent": "decimal",
    "boolean": "checkbox", "date": "date", "datetime": "datetime", "picklist": "select",
    "dependent_picklist": "dependent", "multi_picklist": "multi", "lookup": "lookup",
    "master_detail": "lookup", "user": "user",
}


def widget(fd: FieldDef) -> str:
    return "readonly" if fd.type.computed else WIDGETS.get(fd.type_name, "text")


def options(fd: FieldDef, active_only: bool = True) -> list[tuple[str, str]]:
    return [(o["value"], label(o["label"])) for o in fd.settings.get("options", [])
            if o.get("active", True) or not active_only]


def option_labels(fd: FieldDef) -> dict[str, str]:
    """value -> label in the page's language, kept on the FieldDef (a new
    registry snapshot brings new FieldDefs, so it never goes stale)."""
    key = f"_option_labels_{current()}"
    found = fd.__dict__.get(key)
    if found is None:
        found = fd.__dict__[key] = dict(options(fd, False))
    return found


def name_path(reg: Registry, actor: Actor, fd: FieldDef) -> str | None:
    """The path whose value names the record a reference field points at,
    when the actor may read it; the query compiler joins it within scope."""
    if fd.type_name not in REFERENCES:
        return None
    target = fd.settings.get("reference_to")
    if target == "user":
        return f"{fd.api_name}.name"
    tobj = reg.objects.get(target)
    if tobj is None or not tobj.name_field or "read" not in actor.rights(target).actions \
            or not permissions.visible(actor, target, tobj.name_field):
        return None
    return f"{fd.api_name}.{tobj.name_field}"


def query_fields(reg: Registry, actor: Actor, obj: ObjectDef, names: list[str]) -> list[str]:
    """names plus the name paths of the reference fields among them (and id)."""
    out = ["id"]
    for n in names:
        fd = obj.fields.get(n)
        if fd is None or not permissions.visible(actor, obj.api_name, n):
            continue
        out.append(n)
        path = name_path(reg, actor, fd)
        if path:
            out.append(path)
    if obj.name_field and obj.name_field not in out and permissions.visible(actor, obj.api_name, obj.name_field):
        out.append(obj.name_field)
    return list(dict.fromkeys(out))


def _number(value, scale: int | None) -> str:
    if scale is None:
        return str(value)
    try:
        return f"{decimal.Decimal(value):,.{scale}f}"
    except (decimal.InvalidOperation, ValueError, TypeError):
        return str(value)


def display(fd: FieldDef, record: dict, tz: str) -> str:
    """A value as text for a page (escaped by the template like any text)."""
    value = record.get(fd.api_name)
    if value is None or value == [] or value == "":
        return ""
    t = fd.type_name
    if t == "formula":
        t = fd.settings.get("return_type", "text")
        fd = fd.type.result_field(fd) if t != "text" else fd
    if t in ("picklist", "dependent_picklist"):
        return option_labels(fd).get(value, value)
    if t == "multi_picklist":
        labels = option_labels(fd)
        return ", ".join(labels.get(v, v) for v in value)
    if t == "boolean":
        return _("Yes") if value else _("No")
    if t == "currency":
        return f"{fd.settings.get('currency', '')} {_number(value, fd.settings.get('scale', 2))}".strip()
    if t == "percent":
        return _number(value, fd.settings.get("scale", 2)) + " %"
    if t == "decimal":
        return _number(value, fd.settings.get("scale"))
    if t == "datetime" and isinstance(value, dt.datetime):
        return value.astimezone(zoneinfo.ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")
    if t in ("date", "datetime") and isinstance(value, (dt.date, str)):
        return str(value)
    if t in REFERENCES:
        for key, v in record.items():
            if key.startswith(fd.api_name + ".") and v:
                return str(v)
        return f"#{value}"
    return str(value)


def table(obj: ObjectDef, cols: list[FieldDef], records: list[dict], tz: str) -> list[dict]:
    """Rows of ready cells for a record table: each value escaped, and
    linked where it names a record (the first column opens the row's
    record). Built here once per column rather than per cell in Jinja: the
    list page's render time was mostly this loop."""
    base = f"/o/{obj.api_name}/"
    link_cell = Markup('<a href="{}">{}</a>')
    open_cell = Markup('<a class="open" href="{}">{}</a>')
    url_cell = Markup('<a href="{}" rel="noopener noreferrer" target="_blank">{}</a>')
    specs = []
    for fd in cols:
        target = f"/o/{fd.settings['reference_to']}/" if fd.type_name in ("lookup", "master_detail") else None
        specs.append((fd, target))
    rows = []
    for r in records:
        cells = [open_cell.format(base + str(r["id"]), display(cols[0], r, tz) or f"#{r['id']}")] if cols else []
        for fd, target in specs[1:]:
            text = display(fd, r, tz)
            if text and target:
                cells.append(link_cell.format(target + str(r[fd.api_name]), text))
            elif text and fd.type_name == "url" and text.startswith(("http://", "https://")):
                cells.append(url_cell.format(text, text))
            else:
                cells.append(escape(text))
        rows.append({"id": r["id"], "cells": cells})
    return rows


def local_time(value, tz: str) -> str:
    """A stored (UTC) datetime as the instance's wall-clock time."""
    if isinstance(value, dt.datetime):
        return value.astimezone(zoneinfo.ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")
    return "" if value is None else str(value)


def input_value(fd: FieldDef, value, tz: str):
    """A stored value as a form input's value."""
    if value is None:
        return "" if fd.type_name != "multi_picklist" else []
    if fd.type_name == "datetime" and isinstance(value, dt.datetime):
        return value.astimezone(zoneinfo.ZoneInfo(tz)).strftime("%Y-%m-%dT%H:%M")
    if fd.type_name == "date" and isinstance(value, dt.date):
        return value.isoformat()
    if fd.type_name == "multi_picklist":
        return list(value)
    if fd.type_name == "boolean":
        return bool(value)
    return str(value)


def from_form(fd: FieldDef, form: MultiDict, tz: str):
    """One field's form input as a payload value (None clears it). Unparseable
    text goes through unchanged, so the record service names the error."""
    name = fd.api_name
    if fd.type_name == "boolean":
        return form.get(name) in ("on", "true", "1")
    if fd.type_name == "multi_picklist":
        values = [v for v in form.getlist(name) if v]
        return values or None
    raw = form.get(name, "")
    if not raw.strip():
        return None
    if fd.type_name == "datetime":
        try:
            local = dt.datetime.fromisoformat(raw.strip())
        except ValueError:
            return raw
        if local.tzinfo is None:
            local = local.replace(tzinfo=zoneinfo.ZoneInfo(tz))
        return local.isoformat()
    return raw


def form_values(form: MultiDict, record: dict | None, obj: ObjectDef, layout: dict, tz: str) -> dict:
    """What a re-shown form holds: the submitted text where given, else the record's."""
    out = {}
    for section in layout["sections"]:
        for item in section["fields"]:
            fd = obj.fields.get(item["field"])
            if fd is None:
                continue
            if item["read_only"] or fd.type.computed:
                out[fd.api_name] = input_value(fd, (record or {}).get(fd.api_name), tz)
            elif fd.type_name == "multi_picklist":
                out[fd.api_name] = form.getlist(fd.api_name)
            elif fd.type_name == "boolean":
                out[fd.api_name] = form.get(fd.api_name) in ("on", "true", "1")
            else:
                out[fd.api_name] = form.get(fd.api_name, "")
    return out


def editable(obj: ObjectDef, layout: dict) -> list[FieldDef]:
    """The fields a layout lets this actor write (the layout already marks
    the ones he may not write as read-only)."""
    out = []
    for section in layout["sections"]:
        for item in section["fields"]:
            fd = obj.fields.get(item["field"])
            if fd is not None and not item["read_only"] and fd.writable:
                out.append(fd)
    return out


def layout_required(layout: dict) -> set[str]:
    return {i["field"] for s in layout["sections"] for i in s["fields"] if i.get("required")}
