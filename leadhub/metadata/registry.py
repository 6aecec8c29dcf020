"""The registry: a snapshot of all object and field definitions at one
metadata version, with what is derived from them (SQLAlchemy tables,
marshmallow schemas, compiled formulas). Everything derived is built lazily
and lives exactly as long as the snapshot; the cache swaps in a new snapshot
when lh_meta_version moves, in this process or any other."""
from __future__ import annotations

import threading
from functools import cached_property

import marshmallow as mm
import sqlalchemy as sa

from leadhub.expressions import Expression
from leadhub.metadata.definitions import FieldDef, ObjectDef
from leadhub.metadata.kinds import Item
from leadhub.metadata.types.computed import formula_order
from leadhub.platform import tables as t
from leadhub.platform.ddl import field_column, system_columns
from leadhub.platform.db import Database
from leadhub.platform.errors import NotFound
from leadhub.platform.identity import PrincipalCache



def system_fields(obj_name: str) -> list[FieldDef]:
    def f(api, type_name, en, zh, **kw):
        return FieldDef(object=obj_name, api_name=api, type_name=type_name,
                        labels={"en": en, "zh_CN": zh}, system=True, **kw)
    return [
        f("id", "integer", "ID", "编号", read_only=True),
        f("owner", "user", "Owner", "负责人", settings={"reference_to": "user"}, indexed=True),
        f("created_by", "user", "Created by", "创建人", settings={"reference_to": "user"}, read_only=True),
        f("created_at", "datetime", "Created at", "创建时间", read_only=True),
        f("updated_by", "user", "Updated by", "修改人", settings={"reference_to": "user"}, read_only=True),
        f("updated_at", "datetime", "Updated at", "修改时间", read_only=True),
        f("version", "integer", "Version", "版本", read_only=True),
    ]


class Registry:
    def __init__(self, version: int, objects: dict[str, ObjectDef], deleted: dict[str, ObjectDef],
                 items: dict[str, dict[str, Item]] | None = None,
                 owner_sorted: dict[str, frozenset[str]] | None = None):
        self.version = version
        self.objects = objects            # live objects by api name
        self.deleted_objects = deleted    # soft-deleted objects by api name
        self.items = items or {}          # items of every metadata kind: {kind: {key: Item}}, in creation order
        # by table: the columns C with a built index (owner, C, ...) on PostgreSQL (see query._owner_branches)
        self.owner_sorted = owner_sorted or {}
        self._sa_metadata = sa.MetaData()
        self._tables: dict[str, sa.Table] = {}
        self._schemas: dict[str, mm.Schema] = {}
        self._memo: dict = {}
        self._lock = threading.Lock()

    def with_object(self, obj: ObjectDef, version: int | None = None) -> "Registry":
        """This snapshot with `obj` (live) in place of its namesake: for a
        change still inside its transaction (the version is not bumped yet),
        or, given the version the change committed as, for MetadataCache.adopt."""
        return Registry(self.version if version is None else version, {**self.objects, obj.api_name: obj},
                        self.deleted_objects, self.items, self.owner_sorted)

    def memo(self, key, build):
        """Something derived from this snapshot, built once (services keep
        their per-object plans here, so they live exactly one version)."""
        value = self._memo.get(key)
        if value is None:
            value = self._memo[key] = build()
        return value

    def get(self, name: str, *, include_deleted: bool = False) -> ObjectDef:
        obj = self.objects.get(name) or (self.deleted_objects.get(name) if include_deleted else None)
        if obj is None:
            raise NotFound(f"No object '{name}'.", {"object": "Unknown object."})
        return obj

    def table(self, name: str) -> sa.Table:
        table = self._tables.get(name)
        if table is None:
            with self._lock:
                table = self._tables.get(name)
                if table is None:
                    obj = self.get(name, include_deleted=True)
                    table = sa.Table(obj.table_name, self._sa_metadata, *system_columns(),
                                     *[field_column(f) for f in obj.custom_fields()])
                    self._tables[name] = table
        return table

    def schema(self, name: str) -> mm.Schema:
        """The marshmallow schema for writes: one field per writable field."""
        schema = self._schemas.get(name)
        if schema is None:
            obj = self.get(name)
            spec = {f.api_name: f.type.value_field(f) for f in obj.fields.values() if f.writable}
            schema = mm.Schema.from_dict(spec, name=f"{name}_record")(unknown=mm.RAISE)
            self._schemas[name] = schema
        return schema

    @cached_property
    def _formulas(self) -> dict[str, list[tuple[FieldDef, Expression]]]:
        out = {}
        for obj in self.objects.values():
            compiled = {f.api_name: (f, f.type.compile(f, obj)) for f in obj.fields_of_type("formula")}
            out[obj.api_name] = [compiled[n] for n in formula_order(compiled)]
        return out

    def formulas(self, name: str) -> list[tuple[FieldDef, Expression]]:
        """The object's formulas, each after the formulas it reads."""
        return self._formulas.get(name, [])

    @cached_property
    def _rollups_by_child(self) -> dict[str, list[tuple[ObjectDef, FieldDef]]]:
        out: dict[str, list] = {}
        for obj in self.objects.values():
            for f in obj.fields_of_type("rollup"):
                if f.settings["child_object"] in self.objects:
                    out.setdefault(f.settings["child_object"], []).append((obj, f))
        return out

    def rollups_fed_by(self, child: str) -> list[tuple[ObjectDef, FieldDef]]:
        """Roll-up fields (with their objects) that summarise records of `child`."""
        return self._rollups_by_child.get(child, [])

    def references_to(self, target: str) -> list[tuple[ObjectDef, FieldDef]]:
        """Live lookup and master-detail fields that point at `target`."""
        return [(obj, f) for obj in self.objects.values()
                for f in obj.fields_of_type("lookup", "master_detail")
                if f.settings.get("reference_to") == target]


def load_registry(conn: sa.Connection) -> Registry:
    version = conn.execute(sa.select(t.meta_version.c.version)).scalar_one()
    objs = conn.execute(sa.select(t.objects)).mappings().all()
    rows = conn.execute(sa.select(t.fields).order_by(t.fields.c.position, t.fields.c.id)).mappings().all()
    live: dict[str, ObjectDef] = {}
    deleted: dict[str, ObjectDef] = {}
    by_id: dict[int, ObjectDef] = {}
    for o in objs:
        obj = ObjectDef(api_name=o["api_name"], table_name=o["table_name"], labels=o["labels"],
                        description=o["description"], name_field=o["name_field"],
                        track_history=o["track_history"], plugin=o["plugin"], id=o["id"],
                        deleted_at=o["deleted_at"], created_at=o["created_at"], updated_at=o["updated_at"])
        obj.fields = {f.api_name: f for f in system_fields(obj.api_name)}
        by_id[obj.id] = obj
        (deleted if obj.deleted_at else live)[obj.api_name] = obj
    for r in rows:
        obj = by_id[r["object_id"]]
        fd = field_from_row(obj.api_name, r)
        (obj.deleted_fields if fd.deleted_at else obj.fields)[fd.api_name] = fd
    return Registry(version, live, deleted, load_items(conn), load_owner_sorted(conn))


def load_owner_sorted(conn: sa.Connection) -> dict[str, frozenset[str]]:
    """Which object tables have a usable index (owner, C, ...), by table: the
    kernel's (owner, id) and those kept for list views' sorts (sort_indexes.py),
    read from the catalogue so an index still being built is not counted."""
    if conn.dialect.name != "postgresql":
        return {}
    rows = conn.execute(sa.text(
        "SELECT t.relname, a2.attname FROM pg_index x "
        "JOIN pg_class t ON t.oid = x.indrelid "
        "JOIN pg_attribute a1 ON a1.attrelid = t.oid AND a1.attnum = x.indkey[0] "
        "JOIN pg_attribute a2 ON a2.attrelid = t.oid AND a2.attnum = x.indkey[1] "
        "WHERE x.indisvalid AND x.indisready AND a1.attname = 'owner' AND t.relname LIKE :tables "
        "AND t.relnamespace = to_regnamespace(current_schema())"), {"tables": "o\\_%"}).all()
    out: dict[str, set[str]] = {}
    for table, column in rows:
        out.setdefault(table, set()).add(column)
    return {table: frozenset(cols) for table, cols in out.items()}


def load_items(conn: sa.Connection) -> dict[str, dict[str, Item]]:
    m = t.meta_items
    items: dict[str, dict[str, Item]] = {}
    for r in conn.execute(sa.select(m.c.kind, m.c.key, m.c.data, m.c.id, m.c.version, m.c.plugin,
                                    m.c.updated_at, m.c.created_by).order_by(m.c.id)):
        items.setdefault(r.kind, {})[r.key] = Item(kind=r.kind, key=r.key, data=r.data, id=r.id,
                                                    version=r.version, plugin=r.plugin, updated_at=r.updated_at,
                                                    created_by=r.created_by)
    return items


def field_from_row(obj_name: str, r) -> FieldDef:
    return FieldDef(object=obj_name, api_name=r["api_name"], type_name=r["type"], labels=r["labels"],
                    settings=r["settings"] or {}, help_text=r["help_text"], required=r["required"],
                    unique=r["is_unique"], indexed=r["indexed"], read_only=r["read_only"],
                    track_history=r["track_history"], default=r["default_value"],
                    position=r["position"], plugin=r["plugin"], id=r["id"],
                    deleted_at=r["deleted_at"], created_at=r["created_at"], updated_at=r["updated_at"])


class MetadataCache:
    """Holds the current Registry for one process and swaps it when the
    database's metadata version differs from the one it was built at."""

    def __init__(self, db: Database, principals: PrincipalCache | None = None):
        self.db = db
        self.principals = principals or PrincipalCache()   # users' rights, per security version
        self._registry: Registry | None = None
        self._lock = threading.Lock()
        self.security_version = 0  # rights version seen with the last registry check

    def current(self, conn: sa.Connection | None = None) -> Registry:
        if conn is not None:
            return self._fresh(conn)
        with self.db.read() as c:
            return self._fresh(c)

    def _fresh(self, conn: sa.Connection) -> Registry:
        version, self.security_version = conn.execute(
            sa.select(t.meta_version.c.version, t.meta_version.c.security_version)).one()
        reg = self._registry
        if reg is None or reg.version != version:
            with self._lock:
                reg = self._registry
                if reg is None or reg.version != version:
                    reg = load_registry(conn)
                    self._registry = reg
        return reg

    def invalidate(self) -> None:
        self._registry = None

    def peek(self) -> Registry | None:
        """The last snapshot this process loaded, without asking the database
        whether it is still current: for cheap guesses a transaction then
        checks against `current(conn)`."""
        return self._registry

    def adopt(self, reg: Registry) -> None:
        """Keep `reg`, built by this process's own change as it committed,
        instead of reloading every object and field on the next request
        (a field added to a 500-field object must not cost a full reload).
        Other processes see the new version and reload as always."""
        with self._lock:
            if self._registry is None or self._registry.version < reg.version:
                self._registry = reg
