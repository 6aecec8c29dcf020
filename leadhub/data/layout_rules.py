"""What makes a layout or a list view valid: the rules the layout and
list view kinds check a definition against (view_kinds.py), and the layout
an object has before anyone designs one.

A layout arranges one object's fields into sections, lists the child records
shown beneath (related lists) and the buttons offered. Everything is checked
against the live registry when saved and resolved against it again when
shown, so a field deleted later is skipped rather than breaking a page."""
from __future__ import annotations

import decimal
import re
from typing import Any

from leadhub.data.query import QueryCompiler, load_spec
from leadhub.metadata.definitions import ObjectDef
from leadhub.metadata.registry import Registry
from leadhub.platform.apinames import check_api_name
from leadhub.platform.errors import BadRequest, LeadhubError, ValidationFailed
from leadhub.platform.labels import normalise_labels
from leadhub.platform.permissions import Actor

MAX_SECTIONS = 50
MAX_LAYOUT_FIELDS = 500
MAX_RELATED = 20
MAX_COLUMNS = 30
MAX_SORT = 5
MAX_BUTTONS = 30
MAX_LAYOUTS = 50             # per object
MAX_PERSONAL_VIEWS = 100     # per user and object
MAX_NAME = 128
SECTION_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
LOOKUPS = ("lookup", "master_detail")
# system fields never placed in sections; owner may be, when a layout names it
HIDDEN_SYSTEM = frozenset({"id", "created_by", "created_at", "updated_by", "updated_at"})
DETAILS = {"en": "Details", "zh_CN": "详细信息"}
DEFAULT_SORT = ["-created_at"]
RELATED_DEFAULT_COLUMNS = 5

# standard buttons: label and what the actor needs for the button to be offered
STANDARD_BUTTONS: dict[str, tuple[dict, str]] = {
    "edit": ({"en": "Edit", "zh_CN": "编辑"}, "edit"),
    "delete": ({"en": "Delete", "zh_CN": "删除"}, "delete"),
    "clone": ({"en": "Clone", "zh_CN": "复制"}, "create"),
    "transfer_owner": ({"en": "Transfer owner", "zh_CN": "转移负责人"}, "owner"),
    "share": ({"en": "Share", "zh_CN": "共享"}, "edit"),
}
DEFAULT_BUTTONS = ("edit", "delete", "transfer_owner")


def check_text(value: Any, path: str = "") -> None:
    """Refuse NUL characters and unpaired surrogates anywhere in a payload:
    neither can be stored (PostgreSQL text, UTF-8) nor echoed back."""
    errors: dict[str, str] = {}

    def walk(v: Any, p: str) -> None:
        if isinstance(v, str):
            if "\x00" in v or any("\ud800" <= ch <= "\udfff" for ch in v):
                errors[p or "body"] = "Text must not contain NUL characters or unpaired surrogates."
        elif isinstance(v, list):
            for i, item in enumerate(v):
                walk(item, f"{p}.{i}" if p else str(i))
        elif isinstance(v, dict):
            for k, item in v.items():
                walk(k, p)
                walk(item, f"{p}.{k}" if p else str(k))
    walk(value, path)
    if errors:
        raise ValidationFailed({k.encode("utf-8", "replace").decode("utf-8").replace("\x00", ""): m
                                for k, m in errors.items()})


def _unknown(value: dict, allowed: tuple[str, ...], path: str, errors: dict) -> None:
    for key in value:
        if key not in allowed:
            errors[f"{path}.{key}" if path else key] = "Unknown property."


def _bool(value: Any, path: str, errors: dict, default: bool = False) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        errors[path] = "Must be true or false."
        return default
    return value


def _label(value: Any, path: str, errors: dict, default: dict | None = None) -> dict | None:
    if value is None and default is not None:
        return dict(default)
    try:
        return normalise_labels(value)
    except ValueError as exc:
        errors[path] = "A label is required." if value is None else str(exc)
        return None


def _list(value: Any, path: str, errors: dict, limit: int) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        errors[path] = "Must be a list."
        return []
    if len(value) > limit:
        errors[path] = f"At most {limit} entries."
        return []
    return value


def _sort_keys(value: Any, obj: ObjectDef, path: str, errors: dict) -> list[str]:
    """["field", "-field"] naming live fields of `obj`."""
    out = []
    for i, item in enumerate(_list(value, path, errors, MAX_SORT)):
        name = item[1:] if isinstance(item, str) and item.startswith("-") else item
        if not isinstance(name, str) or name not in obj.fields:
            errors[f"{path}.{i}"] = f"Unknown field on {obj.api_name}." if isinstance(name, str) else \
                "A sort key is a field name, '-' first for descending."
            continue
        out.append(item)
    return out


def _layout_fields(reg: Registry, obj: ObjectDef, sections_payload: Any, errors: dict) -> list[dict]:
    sections, seen_fields, seen_keys, count = [], {}, set(), 0
    for i, sp in enumerate(_list(sections_payload, "sections", errors, MAX_SECTIONS)):
        path = f"sections.{i}"
        if not isinstance(sp, dict):
            errors[path] = "A section is an object."
            continue
        _unknown(sp, ("key", "title", "columns", "collapsible", "collapsed", "fields"), path, errors)
        key = sp.get("key", f"section_{i + 1}")
        if not isinstance(key, str) or not SECTION_KEY.fullmatch(key):
            errors[f"{path}.key"] = "A key is 1-40 lowercase letters, digits or underscores, starting with a letter."
        elif key in seen_keys:
            errors[f"{path}.key"] = "Another section has this key."
        seen_keys.add(key)
        columns = sp.get("columns", 2)
        if type(columns) is not int or columns not in (1, 2):   # not True, not 1.0
            errors[f"{path}.columns"] = "Must be 1 or 2."
        collapsible = _bool(sp.get("collapsible"), f"{path}.collapsible", errors)
        collapsed = _bool(sp.get("collapsed"), f"{path}.collapsed", errors)
        if collapsed and not collapsible:
            errors[f"{path}.collapsed"] = "Only a collapsible section can start collapsed."
        fields = []
        for j, fp in enumerate(_list(sp.get("fields"), f"{path}.fields", errors, MAX_LAYOUT_FIELDS)):
            fpath = f"{path}.fields.{j}"
            entry = _layout_field(obj, fp, fpath, errors)
            if entry is None:
                continue
            name = entry["field"]
            if name in seen_fields:
                errors[fpath] = f"{name} is already placed at {seen_fields[name]}."
                continue
            seen_fields[name] = fpath
            fields.append(entry)
        count += len(fields)
        sections.append({"key": key, "title": _label(sp.get("title"), f"{path}.title", errors, DETAILS),
                         "columns": columns, "collapsible": collapsible, "collapsed": collapsed, "fields": fields})
    if count > MAX_LAYOUT_FIELDS:
        errors["sections"] = f"A layout places at most {MAX_LAYOUT_FIELDS} fields."
    return sections


def _layout_field(obj: ObjectDef, fp: Any, path: str, errors: dict) -> dict | None:
    """One placed field: "name" or {"field", "required", "read_only"}."""
    if isinstance(fp, str):
        fp = {"field": fp}
    if not isinstance(fp, dict):
        errors[path] = "A field entry is a field name or {\"field\", \"required\", \"read_only\"}."
        return None
    _unknown(fp, ("field", "required", "read_only"), path, errors)
    name = fp.get("field")
    fd = obj.fields.get(name) if isinstance(name, str) else None
    if fd is None:
        errors[path] = f"Unknown field on {obj.api_name}."
        return None
    if name in HIDDEN_SYSTEM:
        errors[path] = f"{name} is a system field; layouts do not place it."
        return None
    required = _bool(fp.get("required"), f"{path}.required", errors)
    read_only = _bool(fp.get("read_only"), f"{path}.read_only", errors)
    if fp.get("required") is False and fd.required:
        errors[f"{path}.required"] = f"{name} is required on the object; a layout cannot make it optional."
    if required and not fd.writable and not fd.required:
        errors[f"{path}.required"] = f"{name} is computed or read-only; nobody can fill it in."
    if read_only and (required or fd.required):
        errors[f"{path}.read_only"] = f"{name} is required; a required field cannot be read-only in a layout."
    # a field the object requires is stored required: the definition reads as the form does
    return {"field": name, "required": required or fd.required, "read_only": read_only}


def _related_lists(reg: Registry, obj: ObjectDef, payload: Any, errors: dict) -> list[dict]:
    out, seen = [], set()
    for i, rp in enumerate(_list(payload, "related_lists", errors, MAX_RELATED)):
        path = f"related_lists.{i}"
        if not isinstance(rp, dict):
            errors[path] = "A related list is an object."
            continue
        _unknown(rp, ("object", "field", "title", "columns", "sort"), path, errors)
        child = reg.objects.get(rp.get("object")) if isinstance(rp.get("object"), str) else None
        if child is None:
            errors[f"{path}.object"] = "Unknown object."
            continue
        links = [f for f in child.fields_of_type(*LOOKUPS) if f.settings.get("reference_to") == obj.api_name]
        name = rp.get("field")
        if name is None and len(links) == 1:
            name = links[0].api_name
        if not any(f.api_name == name for f in links):
            errors[f"{path}.field"] = (f"Name the lookup on {child.api_name} that points to {obj.api_name}: "
                                       + (", ".join(f.api_name for f in links) or "there is none") + ".")
            continue
        if (child.api_name, name) in seen:
            errors[path] = "This related list appears twice."
            continue
        seen.add((child.api_name, name))
        columns = []
        for j, col in enumerate(_list(rp.get("columns"), f"{path}.columns", errors, MAX_COLUMNS)):
            if not isinstance(col, str) or col not in child.fields:
                errors[f"{path}.columns.{j}"] = f"Unknown field on {child.api_name}."
            elif col in columns:
                errors[f"{path}.columns.{j}"] = "Listed twice."
            else:
                columns.append(col)
        out.append({"object": child.api_name, "field": name,
                    "title": _label(rp.get("title"), f"{path}.title", errors, child.labels),
                    "columns": columns or _default_columns(child, name),
                    "sort": _sort_keys(rp.get("sort"), child, f"{path}.sort", errors) or list(DEFAULT_SORT)})
    return out


def _buttons(payload: Any, errors: dict) -> list[dict]:
    out, seen = [], set()
    for i, bp in enumerate(_list(payload, "buttons", errors, MAX_BUTTONS)):
        path = f"buttons.{i}"
        if isinstance(bp, str):
            bp = {"kind": "standard", "name": bp}
        if not isinstance(bp, dict):
            errors[path] = "A button is an object."
            continue
        _unknown(bp, ("kind", "name", "function", "label"), path, errors)
        kind, name = bp.get("kind", "standard"), bp.get("name")
        if kind == "standard":
            if name not in STANDARD_BUTTONS:
                errors[f"{path}.name"] = f"A standard button is one of: {', '.join(STANDARD_BUTTONS)}."
                continue
            if bp.get("function") is not None:
                errors[f"{path}.function"] = "Standard buttons call no function."
            function, default_label = None, STANDARD_BUTTONS[name][0]
        elif kind == "action":
            if (msg := check_api_name(name, kind="button")):
                errors[f"{path}.name"] = msg
                continue
            function = bp.get("function")
            # functions are another area's metadata: only the name's shape is checked here
            if (msg := check_api_name(function, kind="function")):
                errors[f"{path}.function"] = msg
            default_label = None
        else:
            errors[f"{path}.kind"] = "Must be 'standard' or 'action'."
            continue
        if name in seen:
            errors[f"{path}.name"] = "Another button has this name."
            continue
        seen.add(name)
        out.append({"kind": kind, "name": name, "function": function,
                    "label": _label(bp.get("label"), f"{path}.label", errors, default_label)})
    return out


def _default_columns(child: ObjectDef, link: str) -> list[str]:
    names = [child.name_field] if child.name_field in child.fields else []
    names += [f.api_name for f in child.custom_fields()
              if f.api_name not in names and f.api_name != link and f.type_name != "long_text"]
    return names[:RELATED_DEFAULT_COLUMNS] or ["id"]


def validate_layout(reg: Registry, obj: ObjectDef, payload: Any, current: dict | None = None) -> dict:
    """A layout payload (whole, or changes to `current`) checked against the
    registry; ValidationFailed names every bad path, e.g. sections.0.fields.2."""
    if not isinstance(payload, dict):
        raise BadRequest("The body must be a JSON object.", {"body": "Must be an object."})
    check_text(payload)
    errors: dict[str, str] = {}
    _unknown(payload, ("name", "default", "sections", "related_lists", "buttons", "version"), "", errors)
    base = current or {"name": None, "default": False, "sections": None, "related_lists": [],
                       "buttons": [{"kind": "standard", "name": n} for n in DEFAULT_BUTTONS]}
    name = payload.get("name", base["name"])
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > MAX_NAME:
        errors["name"] = f"A name of 1-{MAX_NAME} characters is required."
    out = {
        "name": name.strip() if isinstance(name, str) else name,
        "default": _bool(payload.get("default", base["default"]), "default", errors),
        "sections": _layout_fields(reg, obj, payload.get("sections", base["sections"]), errors),
        "related_lists": _related_lists(reg, obj, payload.get("related_lists", base["related_lists"]), errors),
        "buttons": _buttons(payload.get("buttons", base["buttons"]), errors),
    }
    if "sections" not in payload and current is None:
        errors["sections"] = "A layout needs at least one section."
    if errors:
        raise ValidationFailed(errors)
    return out


def json_safe(value: Any) -> Any:
    """JSON bodies parse decimals exactly; stored filters keep them as text,
    which the query compiler coerces per field type."""
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    return value


def filter_fields(node: Any) -> list:
    """The field paths a stored (valid) filter tree names."""
    if isinstance(node, list):
        return [p for n in node for p in filter_fields(n)]
    if not isinstance(node, dict):
        return []
    if "field" in node:
        return [node["field"]]
    return [p for key in ("and", "or", "not") if key in node for p in filter_fields(node[key])]


def related_alive(reg: Registry, obj: ObjectDef, r: dict) -> bool:
    child = reg.objects.get(r["object"])
    fd = child.fields.get(r["field"]) if child else None
    return fd is not None and fd.type_name in LOOKUPS and fd.settings.get("reference_to") == obj.api_name


def related_live_parts(reg: Registry, r: dict) -> dict:
    """A related list without the child's columns and sort keys deleted since."""
    child = reg.objects[r["object"]]
    return {**r, "columns": [c for c in r["columns"] if c in child.fields] or _default_columns(child, r["field"]),
            "sort": [k for k in r["sort"] if k.lstrip("-") in child.fields] or list(DEFAULT_SORT)}


def default_definition(reg: Registry, obj: ObjectDef) -> dict:
    """The layout an object has before an admin saves one: its fields in
    position order in one two-column section, a related list for every
    lookup on another object pointing here, the usual buttons."""
    fields = [{"field": f.api_name, "required": f.required, "read_only": False}
              for f in obj.custom_fields()]
    related = [{"object": child.api_name, "field": fd.api_name, "title": child.labels,
                "columns": _default_columns(child, fd.api_name), "sort": list(DEFAULT_SORT)}
               for child, fd in reg.references_to(obj.api_name) if child.api_name != obj.api_name]
    return {"sections": [{"key": "main", "title": dict(DETAILS), "columns": 2, "collapsible": False,
                          "collapsed": False, "fields": fields}],
            "related_lists": related,
            "buttons": [{"kind": "standard", "name": n, "function": None, "label": STANDARD_BUTTONS[n][0]}
                        for n in DEFAULT_BUTTONS]}


def validate_view(reg: Registry, actor: Actor, object_name: str, payload: Any, current: dict | None,
                  timezone: str) -> dict:
    """A list view payload (whole, or changes to `current`): its name, and
    columns, filter and sort as the one query compiler compiles them for
    `actor` (a view may name only what he may read)."""
    if not isinstance(payload, dict):
        raise BadRequest("The body must be a JSON object.", {"body": "Must be an object."})
    check_text(payload)
    errors: dict[str, str] = {}
    _unknown(payload, ("name", "columns", "filter", "sort", "shared", "position"), "", errors)
    base = current or {"name": None, "columns": None, "filter": None, "sort": [], "position": 0}
    data = {"name": _label(payload.get("name", base["name"]), "name", errors),
            "position": payload.get("position", base["position"])}
    if isinstance(data["position"], bool) or not isinstance(data["position"], int) \
            or not 0 <= data["position"] <= 100_000:
        errors["position"] = "Must be a whole number from 0 to 100000."
    columns = payload.get("columns", base["columns"])
    filter_ = json_safe(payload.get("filter", base["filter"]))
    sort = payload.get("sort", base["sort"])
    query_errors: dict[str, str] = {}
    if not isinstance(columns, list) or not columns or len(columns) > MAX_COLUMNS \
            or not all(isinstance(c, str) for c in columns) or len(set(columns)) != len(columns):
        query_errors["columns"] = f"A list of 1-{MAX_COLUMNS} different field names."
    if not isinstance(sort, list) or not all(isinstance(s, str) for s in sort):
        query_errors["sort"] = "A list of field names, '-' first for descending."
    if not query_errors:
        spec = load_spec({"filter": filter_, "sort": sort, "fields": columns})
        qc = QueryCompiler(reg, object_name, actor, timezone)
        for key, check in (("columns", lambda: qc.columns(spec.fields)), ("filter", lambda: qc.where(spec.filter)),
                           ("sort", lambda: qc.order_by(spec.sort))):
            try:
                check()
            except LeadhubError as exc:
                detail = "; ".join(f"{k}: {m}" for k, m in exc.fields.items() if k != key)
                query_errors[key] = exc.message + (f" ({detail})" if detail else "")
    if query_errors:
        raise BadRequest("The view's " + ", ".join(sorted(query_errors)) + " do not compile.",
                         {**errors, **query_errors})
    if errors:
        raise ValidationFailed(errors)
    return {**data, "columns": columns, "filter": filter_ or None, "sort": sort}
