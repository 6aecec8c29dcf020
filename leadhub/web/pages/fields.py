"""Field values on pages: which widget a type gets, how a stored value is
shown, how a form's strings become the record service's payload, and which
lookup paths bring referenced records' names along in the same query."""
from __future__ import annotations

import datetime as dt
import zoneinfo

from markupsafe import Markup, escape
from werkzeug.datastructures import MultiDict

from leadhub.metadata.definitions import FieldDef, ObjectDef
from leadhub.metadata.registry import Registry
from leadhub.metadata.types.base import Formatting
from leadhub.platform import permissions
from leadhub.platform.permissions import Actor
from leadhub.web.pages.i18n import current, gettext as _, label

def widget(fd: FieldDef) -> str:
    """The input a form draws for the field (its type says which)."""
    return "readonly" if fd.type.computed else fd.type.widget


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
    if not fd.type.is_reference:
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


def _formatting(tz: str) -> Formatting:
    return Formatting(tz=tz, gettext=_, option_label=lambda fd, v: option_labels(fd).get(v, v))


def display(fd: FieldDef, record: dict, tz: str) -> str:
    """A value as text for a page (escaped by the template like any text):
    as its type formats it, a reference as the name the query brought along."""
    value = record.get(fd.api_name)
    if value is None or value == [] or value == "":
        return ""
    if fd.type.is_reference:
        prefix = fd.api_name + "."
        for key, v in record.items():
            if key.startswith(prefix) and v:
                return str(v)
    return fd.type.format(fd, value, _formatting(tz))


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
        target = f"/o/{fd.settings['reference_to']}/" if fd.type.is_reference and fd.settings.get("reference_to") != "user" else None
        specs.append((fd, target, fd.type.link_prefix))
    rows = []
    for r in records:
        cells = [open_cell.format(base + str(r["id"]), display(cols[0], r, tz) or f"#{r['id']}")] if cols else []
        for fd, target, prefix in specs[1:]:
            text = display(fd, r, tz)
            if text and target:
                cells.append(link_cell.format(target + str(r[fd.api_name]), text))
            elif text and prefix == "" and text.startswith(("http://", "https://")):
                cells.append(url_cell.format(text, text))
            elif text and prefix:           # a tap calls or writes, as on the record's page
                cells.append(link_cell.format(prefix + str(r[fd.api_name]), text))
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
    return fd.type.input_value(fd, value, tz)


def from_form(fd: FieldDef, form: MultiDict, tz: str):
    """One field's form input as a payload value (None clears it). Unparseable
    text goes through unchanged, so the record service names the error."""
    return fd.type.from_form(fd, form, tz)


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
            else:
                out[fd.api_name] = fd.type.form_text(fd, form)
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
