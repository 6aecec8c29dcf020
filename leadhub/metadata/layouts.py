"""Layouts, list views and menu order: metadata about how records are shown.

A layout arranges one object's fields into sections, lists the child records
shown beneath (related lists) and the buttons offered. An object has several
layouts, each assigned to roles; every save keeps a version. A list view is
a saved query (columns, filter tree, sort), personal or shared. The menu
order names objects in the order the navigation shows them.

Everything is validated against the live registry when saved, and resolved
against it again when shown, so a field or object deleted later is skipped
rather than breaking a page. What a user sees is cut by the one permission
check (permissions.py): hidden fields are absent, fields he may not write
come back read-only, and list view queries compile through the query
compiler for him."""
from __future__ import annotations

import decimal
import re
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from leadhub.metadata.apinames import check_api_name
from leadhub.metadata.definitions import ObjectDef
from leadhub.metadata.labels import normalise_labels
from leadhub.metadata.registry import MetadataCache, Registry
from leadhub.platform import permissions, tables as t
from leadhub.platform.db import Database, UTCDateTime, utcnow
from leadhub.platform.errors import BadRequest, Conflict, Forbidden, LeadhubError, NotFound, ValidationFailed
from leadhub.platform.permissions import Actor
from leadhub.platform.query import QueryCompiler, load_spec
from leadhub.platform.tables import metadata

# ------------------------------------------------------------------ tables

layouts = sa.Table(
    "lh_layouts", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("object", sa.String(40), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("is_default", sa.Boolean, nullable=False, default=False),
    sa.Column("definition", sa.JSON, nullable=False),     # {"sections", "related_lists", "buttons"}
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_by", sa.Integer),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_by", sa.Integer),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("object", "name", name="uq_lh_layouts_object_name"),
)

# every saved state of a layout, the current one included
layout_versions = sa.Table(
    "lh_layout_versions", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("layout_id", sa.Integer, sa.ForeignKey("lh_layouts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("is_default", sa.Boolean, nullable=False),
    sa.Column("definition", sa.JSON, nullable=False),
    sa.Column("saved_by", sa.Integer),
    sa.Column("saved_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("layout_id", "version", name="uq_lh_layout_versions_layout_version"),
)

# which layout a role's users get for an object; by role api name
layout_assignments = sa.Table(
    "lh_layout_assignments", metadata,
    sa.Column("object", sa.String(40), primary_key=True),
    sa.Column("role", sa.String(40), primary_key=True),
    sa.Column("layout_id", sa.Integer, sa.ForeignKey("lh_layouts.id", ondelete="CASCADE"), nullable=False),
)

list_views = sa.Table(
    "lh_list_views", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("object", sa.String(40), nullable=False),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("columns", sa.JSON, nullable=False),
    sa.Column("filter", sa.JSON),
    sa.Column("sort", sa.JSON, nullable=False),
    sa.Column("shared", sa.Boolean, nullable=False, default=False),
    sa.Column("owner_id", sa.Integer, sa.ForeignKey("lh_users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("position", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_lh_list_views_object_owner", "object", "owner_id"),
)

menu_items = sa.Table(
    "lh_menu", metadata,
    sa.Column("object", sa.String(40), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
)

# ------------------------------------------------------------------ rules

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


def _check_text(value: Any, path: str = "") -> None:
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
    return {"field": name, "required": required, "read_only": read_only}


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
    _check_text(payload)
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


def _json_safe(value: Any) -> Any:
    """JSON bodies parse decimals exactly; stored filters keep them as text,
    which the query compiler coerces per field type."""
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return value


def _can(actor: Actor, obj_name: str, action: str) -> bool:
    try:
        permissions.require(actor, obj_name, action)
        return True
    except Forbidden:
        return False


# ------------------------------------------------------------------ service

class LayoutService:
    def __init__(self, db: Database, cache: MetadataCache, timezone: str = "Asia/Shanghai"):
        self.db, self.cache, self.timezone = db, cache, timezone

    # --- layouts ------------------------------------------------------------
    def _layout_dict(self, reg: Registry, obj: ObjectDef, row, roles: list[str]) -> dict:
        """A stored layout for the designer: fields deleted since are left out
        (so saving it back succeeds), required shows the field's own rule too."""
        d = row["definition"]
        sections = [{**s, "fields": [{**f, "required": f["required"] or obj.fields[f["field"]].required}
                                     for f in s["fields"] if f["field"] in obj.fields]}
                    for s in d["sections"]]
        return {"id": row["id"], "object": row["object"], "name": row["name"], "default": row["is_default"],
                "version": row["version"], "sections": sections,
                "related_lists": [_related_live_parts(reg, r) for r in d["related_lists"] if _related_alive(reg, obj, r)],
                "buttons": d["buttons"], "roles": roles, "created_by": row["created_by"],
                "created_at": row["created_at"], "updated_by": row["updated_by"], "updated_at": row["updated_at"]}

    def _roles_by_layout(self, conn, obj_name: str) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for role, lid in conn.execute(sa.select(layout_assignments.c.role, layout_assignments.c.layout_id)
                                      .where(layout_assignments.c.object == obj_name)
                                      .order_by(layout_assignments.c.role)):
            out.setdefault(lid, []).append(role)
        return out

    def list_layouts(self, object_name: str) -> list[dict]:
        with self.db.read() as conn:
            reg = self.cache.current(conn)
            obj = reg.get(object_name)
            roles = self._roles_by_layout(conn, object_name)
            rows = conn.execute(sa.select(layouts).where(layouts.c.object == object_name)
                                .order_by(layouts.c.id)).mappings().all()
            return [self._layout_dict(reg, obj, r, roles.get(r["id"], [])) for r in rows]

    def get_layout(self, object_name: str, layout_id: int) -> dict:
        with self.db.read() as conn:
            reg = self.cache.current(conn)
            obj = reg.get(object_name)
            row = self._row(conn, object_name, layout_id)
            return self._layout_dict(reg, obj, row, self._roles_by_layout(conn, object_name).get(layout_id, []))

    @staticmethod
    def _row(conn, object_name: str, layout_id: int, lock: bool = False):
        stmt = sa.select(layouts).where(layouts.c.id == layout_id, layouts.c.object == object_name)
        if lock and conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        row = conn.execute(stmt).mappings().first()
        if row is None:
            raise NotFound(f"No layout {layout_id} on {object_name}.")
        return row

    def create_layout(self, actor: Actor, object_name: str, payload: Any) -> dict:
        permissions.require_admin(actor)
        reg = self.cache.current()
        obj = reg.get(object_name)
        data = validate_layout(reg, obj, payload)
        if isinstance(payload, dict) and "version" in payload:
            raise ValidationFailed({"version": "A new layout has no version to match."})
        now = utcnow()
        with _name_race(object_name, data["name"]), self.db.write() as conn:
            n = conn.execute(sa.select(sa.func.count()).select_from(layouts)
                             .where(layouts.c.object == object_name)).scalar_one()
            if n >= MAX_LAYOUTS:
                raise Conflict(f"{object_name} already has {MAX_LAYOUTS} layouts.", {"name": "Too many layouts."})
            self._check_name_free(conn, object_name, data["name"], None)
            if data["default"]:
                conn.execute(sa.update(layouts).where(layouts.c.object == object_name).values(is_default=False))
            lid = conn.execute(layouts.insert().values(
                object=object_name, name=data["name"], is_default=data["default"], definition=_definition(data),
                version=1, created_by=actor.user_id, created_at=now, updated_by=actor.user_id,
                updated_at=now).returning(layouts.c.id)).scalar_one()
            self._keep_version(conn, lid, 1, data, actor, now)
        return self.get_layout(object_name, lid)

    def update_layout(self, actor: Actor, object_name: str, layout_id: int, payload: Any) -> dict:
        """Changes any of name, default, sections, related_lists, buttons. A
        payload carrying "version" is refused (409) if someone saved since."""
        permissions.require_admin(actor)
        now = utcnow()
        with _name_race(object_name, payload.get("name") if isinstance(payload, dict) else None), \
                self.db.write() as conn:
            reg = self.cache.current(conn)
            obj = reg.get(object_name)
            row = self._row(conn, object_name, layout_id, lock=True)
            if isinstance(payload, dict) and "version" in payload and payload["version"] != row["version"]:
                raise Conflict(f"The layout was saved by someone else (now version {row['version']}); reload it.",
                               {"version": f"Stale: the current version is {row['version']}."})
            current = self._layout_dict(reg, obj, row, [])
            data = validate_layout(reg, obj, payload, current)
            self._check_name_free(conn, object_name, data["name"], layout_id)
            if data["default"]:
                conn.execute(sa.update(layouts).where(layouts.c.object == object_name, layouts.c.id != layout_id)
                             .values(is_default=False))
            version = row["version"] + 1
            conn.execute(sa.update(layouts).where(layouts.c.id == layout_id).values(
                name=data["name"], is_default=data["default"], definition=_definition(data), version=version,
                updated_by=actor.user_id, updated_at=now))
            self._keep_version(conn, layout_id, version, data, actor, now)
        return self.get_layout(object_name, layout_id)

    def delete_layout(self, actor: Actor, object_name: str, layout_id: int) -> None:
        """The layout, its versions and its role assignments go; those roles
        fall back to the default layout."""
        permissions.require_admin(actor)
        with self.db.write() as conn:
            self._row(conn, object_name, layout_id)
            conn.execute(sa.delete(layout_assignments).where(layout_assignments.c.layout_id == layout_id))
            conn.execute(sa.delete(layout_versions).where(layout_versions.c.layout_id == layout_id))
            conn.execute(sa.delete(layouts).where(layouts.c.id == layout_id))

    def layout_versions(self, object_name: str, layout_id: int) -> list[dict]:
        """Every saved state, newest first."""
        v = layout_versions
        with self.db.read() as conn:
            self._row(conn, object_name, layout_id)
            rows = conn.execute(sa.select(v).where(v.c.layout_id == layout_id).order_by(v.c.version.desc())).mappings()
            return [{"version": r["version"], "name": r["name"], "default": r["is_default"], **r["definition"],
                     "saved_by": r["saved_by"], "saved_at": r["saved_at"]} for r in rows]

    @staticmethod
    def _check_name_free(conn, object_name: str, name: str, layout_id: int | None) -> None:
        stmt = sa.select(layouts.c.id).where(layouts.c.object == object_name, layouts.c.name == name)
        if layout_id is not None:
            stmt = stmt.where(layouts.c.id != layout_id)
        if conn.execute(stmt).first():
            raise Conflict(f"{object_name} already has a layout named '{name}'.", {"name": "Already taken."})

    @staticmethod
    def _keep_version(conn, layout_id: int, version: int, data: dict, actor: Actor, now) -> None:
        conn.execute(layout_versions.insert().values(
            layout_id=layout_id, version=version, name=data["name"], is_default=data["default"],
            definition=_definition(data), saved_by=actor.user_id, saved_at=now))

    # --- assignments --------------------------------------------------------
    def assignments(self, object_name: str) -> dict[str, int]:
        with self.db.read() as conn:
            self.cache.current(conn).get(object_name)
            return dict(conn.execute(sa.select(layout_assignments.c.role, layout_assignments.c.layout_id)
                                     .where(layout_assignments.c.object == object_name)
                                     .order_by(layout_assignments.c.role)).all())

    def assign(self, actor: Actor, object_name: str, mapping: Any) -> dict[str, int]:
        """{role api name: layout id, or None to fall back to the default}."""
        permissions.require_admin(actor)
        if not isinstance(mapping, dict) or not mapping:
            raise BadRequest("The body maps role api names to layout ids (or null).", {"body": "Must be an object."})
        _check_text(mapping)
        with self.db.write() as conn:
            self.cache.current(conn).get(object_name)
            roles = set(conn.execute(sa.select(t.roles.c.api_name)).scalars())
            ids = set(conn.execute(sa.select(layouts.c.id).where(layouts.c.object == object_name)).scalars())
            errors = {}
            for role, lid in mapping.items():
                if role not in roles:
                    errors[role] = "Unknown role."
                elif lid is not None and (isinstance(lid, bool) or not isinstance(lid, int) or lid not in ids):
                    errors[role] = f"No layout {lid} on {object_name}."
            if errors:
                raise ValidationFailed(errors)
            for role, lid in mapping.items():
                conn.execute(sa.delete(layout_assignments).where(layout_assignments.c.object == object_name,
                                                                 layout_assignments.c.role == role))
                if lid is not None:
                    conn.execute(layout_assignments.insert().values(object=object_name, role=role, layout_id=lid))
        return self.assignments(object_name)

    # --- the effective layout -----------------------------------------------
    def effective_layout(self, actor: Actor, object_name: str) -> dict:
        """The layout `actor` gets for an object, cut to what he may see: his
        roles' assigned layout (the first role, by role id, that has one),
        else the default one, else one generated from the fields."""
        permissions.require(actor, object_name, "read")
        with self.db.read() as conn:
            reg = self.cache.current(conn)
            obj = reg.get(object_name)
            row = self._chosen(conn, actor, object_name)
        if row is None:
            layout = {"id": None, "name": "Default", **default_definition(reg, obj)}
        else:
            layout = {"id": row["id"], "name": row["name"], **row["definition"]}
        return self._cut(reg, obj, actor, layout)

    @staticmethod
    def _chosen(conn, actor: Actor, object_name: str):
        if not actor.is_admin and actor.user_id is not None:
            la = layout_assignments
            row = conn.execute(
                sa.select(layouts).select_from(
                    la.join(t.roles, t.roles.c.api_name == la.c.role)
                      .join(t.user_roles, t.user_roles.c.role_id == t.roles.c.id)
                      .join(layouts, layouts.c.id == la.c.layout_id))
                .where(la.c.object == object_name, t.user_roles.c.user_id == actor.user_id)
                .order_by(t.roles.c.id).limit(1)).mappings().first()
            if row is not None:
                return row
        return conn.execute(sa.select(layouts).where(layouts.c.object == object_name, layouts.c.is_default.is_(True))
                            .limit(1)).mappings().first()

    @staticmethod
    def _cut(reg: Registry, obj: ObjectDef, actor: Actor, layout: dict) -> dict:
        rights = actor.rights(obj.api_name)
        sections = []
        for s in layout["sections"]:
            fields = []
            for f in s["fields"]:
                fd = obj.fields.get(f["field"])
                if fd is None or fd.api_name in HIDDEN_SYSTEM:   # deleted since the layout was saved
                    continue
                access = rights.field_access(fd.api_name)
                if access == "hidden":
                    continue
                fields.append({"field": fd.api_name, "required": bool(fd.required or f["required"]) and fd.writable,
                               "read_only": bool(f["read_only"]) or not fd.writable or access != "edit"})
            if fields:
                sections.append({**s, "fields": fields})
        related = []
        for r in layout["related_lists"]:
            if not _related_alive(reg, obj, r) or not _can(actor, r["object"], "read"):
                continue
            child = reg.objects[r["object"]]
            if not permissions.visible(actor, child.api_name, r["field"]):
                continue
            visible = lambda n: n in child.fields and permissions.visible(actor, child.api_name, n)  # noqa: E731
            related.append({**r, "columns": [c for c in r["columns"] if visible(c)],
                            "sort": [k for k in r["sort"] if visible(k.lstrip("-"))] or list(DEFAULT_SORT)})
        buttons = [b for b in layout["buttons"] if b["kind"] == "action" or _button_allowed(actor, obj, b["name"])]
        return {"id": layout["id"], "name": layout["name"], "sections": sections,
                "related_lists": related, "buttons": buttons}

    # --- list views ---------------------------------------------------------
    def _view_row(self, conn, actor: Actor, object_name: str, view_id: int):
        row = conn.execute(sa.select(list_views).where(list_views.c.id == view_id,
                                                       list_views.c.object == object_name)).mappings().first()
        if row is None or not (row["shared"] or row["owner_id"] == actor.user_id):
            raise NotFound(f"No list view {view_id} on {object_name}.")   # another's personal view does not exist for you
        return row

    def _view_dict(self, qc: QueryCompiler, row) -> dict:
        """A stored view as `actor` may use it: columns and sort keys he
        cannot read (or that were deleted) dropped; a filter naming such a
        field is reported in filter_error (its operators and values were
        checked when it was saved; only resolving fields is redone here, as
        compiling every view's whole filter made listing them 10x slower)."""

        def ok(path: str) -> bool:
            try:
                qc.resolve(path)
                return True
            except LeadhubError:
                return False
        filter_error = None
        for path in _filter_fields(row["filter"]):
            try:
                qc.resolve(path, purpose="filter")
            except LeadhubError as exc:
                filter_error = exc.message
                break
        return {"id": row["id"], "object": row["object"], "name": row["labels"],
                "columns": [c for c in row["columns"] if ok(c)],
                "filter": row["filter"], "sort": [k for k in row["sort"] if ok(k.lstrip("-"))],
                "shared": row["shared"], "owner": row["owner_id"], "position": row["position"],
                "filter_error": filter_error}

    def list_views(self, actor: Actor, object_name: str) -> list[dict]:
        """Shared views and the actor's own, by position."""
        permissions.require(actor, object_name, "read")
        v = list_views
        with self.db.read() as conn:
            reg = self.cache.current(conn)
            reg.get(object_name)
            rows = conn.execute(sa.select(v).where(v.c.object == object_name,
                                                   sa.or_(v.c.shared.is_(True), v.c.owner_id == actor.user_id))
                                .order_by(v.c.position, v.c.id)).mappings().all()
        qc = QueryCompiler(reg, object_name, actor, self.timezone)   # one for all: only resolves paths
        return [self._view_dict(qc, r) for r in rows]

    def get_list_view(self, actor: Actor, object_name: str, view_id: int) -> dict:
        permissions.require(actor, object_name, "read")
        with self.db.read() as conn:
            reg = self.cache.current(conn)
            reg.get(object_name)
            return self._view_dict(QueryCompiler(reg, object_name, actor, self.timezone),
                                   self._view_row(conn, actor, object_name, view_id))

    def _validate_view(self, reg: Registry, actor: Actor, object_name: str, payload: Any,
                       current: dict | None) -> dict:
        if not isinstance(payload, dict):
            raise BadRequest("The body must be a JSON object.", {"body": "Must be an object."})
        _check_text(payload)
        errors: dict[str, str] = {}
        _unknown(payload, ("name", "columns", "filter", "sort", "shared", "position"), "", errors)
        base = current or {"name": None, "columns": None, "filter": None, "sort": [], "shared": False, "position": 0}
        data = {"labels": _label(payload.get("name", base["name"]), "name", errors),
                "shared": _bool(payload.get("shared", base["shared"]), "shared", errors),
                "position": payload.get("position", base["position"])}
        if isinstance(data["position"], bool) or not isinstance(data["position"], int) \
                or not 0 <= data["position"] <= 100_000:
            errors["position"] = "Must be a whole number from 0 to 100000."
        columns = payload.get("columns", base["columns"])
        filter_ = _json_safe(payload.get("filter", base["filter"]))
        sort = payload.get("sort", base["sort"])
        query_errors: dict[str, str] = {}
        if not isinstance(columns, list) or not columns or len(columns) > MAX_COLUMNS \
                or not all(isinstance(c, str) for c in columns) or len(set(columns)) != len(columns):
            query_errors["columns"] = f"A list of 1-{MAX_COLUMNS} different field names."
        if not isinstance(sort, list) or not all(isinstance(s, str) for s in sort):
            query_errors["sort"] = "A list of field names, '-' first for descending."
        if not query_errors:
            # the one query compiler decides, for this actor, what a view may name
            spec = load_spec({"filter": filter_, "sort": sort, "fields": columns})
            qc = QueryCompiler(reg, object_name, actor, self.timezone)
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

    def create_list_view(self, actor: Actor, object_name: str, payload: Any) -> dict:
        permissions.require(actor, object_name, "read")
        if actor.user_id is None:
            raise Forbidden("List views belong to users; the system has none.")
        if isinstance(payload, dict) and payload.get("shared") is True:
            permissions.require_admin(actor)   # refused before anything else is looked at
        reg = self.cache.current()
        reg.get(object_name)
        data = self._validate_view(reg, actor, object_name, payload, None)
        now = utcnow()
        v = list_views
        with self.db.write() as conn:
            if not data["shared"]:
                n = conn.execute(sa.select(sa.func.count()).select_from(v).where(
                    v.c.object == object_name, v.c.owner_id == actor.user_id, v.c.shared.is_(False))).scalar_one()
                if n >= MAX_PERSONAL_VIEWS:
                    raise Conflict(f"You already have {MAX_PERSONAL_VIEWS} views of {object_name}.",
                                   {"name": "Too many views."})
            vid = conn.execute(v.insert().values(object=object_name, owner_id=actor.user_id, created_at=now,
                                                 updated_at=now, **data).returning(v.c.id)).scalar_one()
        return self.get_list_view(actor, object_name, vid)

    def update_list_view(self, actor: Actor, object_name: str, view_id: int, payload: Any) -> dict:
        permissions.require(actor, object_name, "read")
        with self.db.write() as conn:
            reg = self.cache.current(conn)
            reg.get(object_name)
            row = self._view_row(conn, actor, object_name, view_id)
            if row["shared"] or (isinstance(payload, dict) and payload.get("shared") is True):
                permissions.require_admin(actor)
            current = {"name": row["labels"], "columns": row["columns"], "filter": row["filter"],
                       "sort": row["sort"], "shared": row["shared"], "position": row["position"]}
            data = self._validate_view(reg, actor, object_name, payload, current)
            conn.execute(sa.update(list_views).where(list_views.c.id == view_id).values(updated_at=utcnow(), **data))
        return self.get_list_view(actor, object_name, view_id)

    def delete_list_view(self, actor: Actor, object_name: str, view_id: int) -> None:
        permissions.require(actor, object_name, "read")
        with self.db.write() as conn:
            row = self._view_row(conn, actor, object_name, view_id)
            if row["shared"]:
                permissions.require_admin(actor)
            conn.execute(sa.delete(list_views).where(list_views.c.id == view_id))

    # --- by name, for bundles ----------------------------------------------------
    def layout_spec(self, object_name: str, name: str) -> dict | None:
        """A layout as a portable definition (its roles by api name), or None."""
        with self.db.read() as conn:
            row = conn.execute(sa.select(layouts).where(layouts.c.object == object_name, layouts.c.name == name)
                               ).mappings().first()
            if row is None:
                return None
            reg = self.cache.current(conn)
            roles = self._roles_by_layout(conn, object_name).get(row["id"], [])
        shown = self._layout_dict(reg, reg.get(object_name), row, roles)     # as the designer saves it back
        return {k: shown[k] for k in ("name", "default", "sections", "related_lists", "buttons", "roles")}

    def layout_names(self, object_name: str) -> list[str]:
        with self.db.read() as conn:
            return list(conn.execute(sa.select(layouts.c.name).where(layouts.c.object == object_name)
                                     .order_by(layouts.c.id)).scalars())

    def put_layout(self, actor: Actor, object_name: str, spec: dict) -> dict:
        """Create or replace the layout named spec["name"], and give it spec["roles"]."""
        spec = dict(spec)
        roles = spec.pop("roles", None) or []
        with self.db.read() as conn:
            lid = conn.execute(sa.select(layouts.c.id).where(layouts.c.object == object_name,
                                                             layouts.c.name == spec["name"])).scalar()
        saved = self.update_layout(actor, object_name, lid, spec) if lid else self.create_layout(actor, object_name, spec)
        mapping = {role: saved["id"] for role in roles}
        mapping |= {role: None for role, layout in self.assignments(object_name).items()
                    if layout == saved["id"] and role not in roles}
        if mapping:
            self.assign(actor, object_name, mapping)
        return saved

    def delete_layout_named(self, actor: Actor, object_name: str, name: str) -> None:
        with self.db.read() as conn:
            lid = conn.execute(sa.select(layouts.c.id).where(layouts.c.object == object_name,
                                                             layouts.c.name == name)).scalar()
        if lid is not None:
            self.delete_layout(actor, object_name, lid)

    def shared_views(self, object_name: str) -> dict[str, dict]:
        """Shared list views as portable definitions, by their English name."""
        v = list_views
        with self.db.read() as conn:
            rows = conn.execute(sa.select(v).where(v.c.object == object_name, v.c.shared.is_(True))
                                .order_by(v.c.position, v.c.id)).mappings().all()
        return {r["labels"].get("en") or r["labels"].get("zh_CN"): {
            "name": r["labels"], "columns": r["columns"], "filter": r["filter"], "sort": r["sort"],
            "position": r["position"]} for r in rows}

    def put_shared_view(self, actor: Actor, object_name: str, spec: dict) -> dict:
        """Create or replace the shared view of this (English) name."""
        key = spec["name"].get("en") or spec["name"].get("zh_CN") if isinstance(spec.get("name"), dict) else None
        existing = self._shared_view_id(object_name, key)
        payload = {**spec, "shared": True}
        if existing is None:
            return self.create_list_view(actor, object_name, payload)
        return self.update_list_view(actor, object_name, existing, payload)

    def delete_shared_view(self, actor: Actor, object_name: str, name: str) -> None:
        existing = self._shared_view_id(object_name, name)
        if existing is not None:
            self.delete_list_view(actor, object_name, existing)

    def _shared_view_id(self, object_name: str, name: str | None) -> int | None:
        v = list_views
        with self.db.read() as conn:
            rows = conn.execute(sa.select(v.c.id, v.c.labels).where(v.c.object == object_name,
                                                                    v.c.shared.is_(True))).all()
        return next((r.id for r in rows if (r.labels.get("en") or r.labels.get("zh_CN")) == name), None)

    # --- menu ---------------------------------------------------------------
    def menu_order(self) -> list[str]:
        with self.db.read() as conn:
            return list(conn.execute(sa.select(menu_items.c.object).order_by(menu_items.c.position)).scalars())

    def menu(self, actor: Actor) -> list[dict]:
        """Objects the actor may read: the admin's order first, the rest by label."""
        reg = self.cache.current()
        order = {name: i for i, name in enumerate(self.menu_order())}
        readable = [o for o in reg.objects.values() if _can(actor, o.api_name, "read")]
        readable.sort(key=lambda o: (order.get(o.api_name, len(order)), o.label(actor.language).lower(), o.api_name))
        return [{"object": o.api_name, "label": o.labels} for o in readable]

    def set_menu(self, actor: Actor, names: Any) -> list[dict]:
        permissions.require_admin(actor)
        reg = self.cache.current()
        if not isinstance(names, list) or len(names) > 1000:
            raise ValidationFailed({"objects": "A list of at most 1000 object api names."})
        _check_text(names, "objects")
        errors, seen = {}, set()
        for i, name in enumerate(names):
            if not isinstance(name, str) or name not in reg.objects:
                errors[f"objects.{i}"] = "Unknown object."
            elif name in seen:
                errors[f"objects.{i}"] = "Listed twice."
            seen.add(name if isinstance(name, str) else None)
        if errors:
            raise ValidationFailed(errors)
        with self.db.write() as conn:
            conn.execute(sa.delete(menu_items))
            if names:
                conn.execute(menu_items.insert(), [{"object": n, "position": i} for i, n in enumerate(names)])
        return self.menu(actor)


def _filter_fields(node: Any) -> list:
    """The field paths a stored (valid) filter tree names."""
    if isinstance(node, list):
        return [p for n in node for p in _filter_fields(n)]
    if not isinstance(node, dict):
        return []
    if "field" in node:
        return [node["field"]]
    return [p for key in ("and", "or", "not") if key in node for p in _filter_fields(node[key])]


@contextmanager
def _name_race(object_name: str, name: Any):
    """Two layouts given one name at the same moment: the unique index
    catches what the pre-check could not see; a 409 like the pre-check's."""
    try:
        yield
    except sa.exc.IntegrityError:
        raise Conflict(f"{object_name} already has a layout named '{name}'.", {"name": "Already taken."}) from None


def _definition(data: dict) -> dict:
    return {"sections": data["sections"], "related_lists": data["related_lists"], "buttons": data["buttons"]}


def _related_alive(reg: Registry, obj: ObjectDef, r: dict) -> bool:
    child = reg.objects.get(r["object"])
    fd = child.fields.get(r["field"]) if child else None
    return fd is not None and fd.type_name in LOOKUPS and fd.settings.get("reference_to") == obj.api_name


def _related_live_parts(reg: Registry, r: dict) -> dict:
    """A related list without the child's columns and sort keys deleted since."""
    child = reg.objects[r["object"]]
    return {**r, "columns": [c for c in r["columns"] if c in child.fields] or _default_columns(child, r["field"]),
            "sort": [k for k in r["sort"] if k.lstrip("-") in child.fields] or list(DEFAULT_SORT)}


def _button_allowed(actor: Actor, obj: ObjectDef, name: str) -> bool:
    if name not in STANDARD_BUTTONS:
        return False
    needs = STANDARD_BUTTONS[name][1]
    if needs == "owner":
        return _can(actor, obj.api_name, "edit") and actor.rights(obj.api_name).field_access("owner") == "edit"
    return _can(actor, obj.api_name, needs)


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
