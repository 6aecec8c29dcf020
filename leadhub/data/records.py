"""The record service: the one path for every record write and read.

create/update run: permission check, unknown and read-only fields refused,
defaults, coercion and validation by the object's marshmallow schema
(cached per metadata version), required and cross-field rules, lookups and
uniqueness checked against the database, before-events, auto-numbers,
formulas, system fields, the write, field history, roll-ups, after-events,
all in one transaction. Any failure rolls everything back.

Handlers of prepare_insert/prepare_update (admins' before-save and
validation functions) run first, outside the transaction: a slow function
keeps no lock. The write then checks that the metadata and the records are
the versions they saw, and starts again (up to PREPARE_ATTEMPTS) if not."""
from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import marshmallow as mm
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from leadhub.data import computed
from leadhub.data.query import QueryCompiler, QuerySpec, load_spec
from leadhub.metadata.definitions import FieldDef, ObjectDef
from leadhub.metadata.registry import MetadataCache, Registry
from leadhub.metadata.types.base import FieldType
from leadhub.metadata.types.computed import format_number
from leadhub.platform import audit, permissions, tables as t
from leadhub.platform.db import Database, in_values, utcnow
from leadhub.platform.ddl import index_name
from leadhub.platform.errors import BadRequest, Conflict, NotFound, ValidationFailed, messages_text
from leadhub.platform.events import EventBus, RecordEvent
from leadhub.platform.permissions import Actor

REQUIRED = "This field is required."
# values for read-only fields, or a function of the stored record giving them (RecordService.bulk_update)
SystemValues = dict | Callable[[dict], dict]
INT64 = 2**63 - 1
INT32 = 2**31 - 1


def json_value(value: Any) -> Any:
    """A stored value as it appears in JSON (field history, defaults)."""
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if hasattr(value, "as_tuple"):  # Decimal
        return str(value)
    return value


@dataclass(frozen=True)
class _WritePlan:
    """What every write of one object needs, worked out once per metadata version."""
    defaults: dict[str, Any]
    required: tuple[str, ...]
    record_checked: tuple[FieldDef, ...]                        # types with cross-field rules
    columns: dict[str, tuple[str, Callable | None]]             # field -> (column, to_db or None)
    rollups: tuple[FieldDef, ...]


def _plan(reg: Registry, obj: ObjectDef) -> _WritePlan:
    def build():
        custom = obj.custom_fields()
        return _WritePlan(
            defaults={f.api_name: f.default for f in custom if f.default is not None and f.writable},
            required=tuple(f.api_name for f in custom
                           if (f.required or f.type_name == "master_detail") and f.writable),
            record_checked=tuple(f for f in custom if type(f.type).check_record is not FieldType.check_record),
            columns={f.api_name: (f.column, None if type(f.type).to_db is FieldType.to_db else f.type.to_db)
                     for f in obj.fields.values() if f.api_name != "id"},
            rollups=tuple(obj.fields_of_type("rollup")))
    return reg.memo(("write_plan", obj.api_name), build)


@functools.cache
def _reserve_numbers(dialect_name: str) -> sa.Insert:
    """INSERT a counter row or add `value` to it, returning the new last number."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    a = t.autonumbers
    stmt = dialect.insert(a)
    return stmt.on_conflict_do_update(index_elements=[a.c.object, a.c.field, a.c.period],
                                      set_={"value": a.c.value + stmt.excluded.value}).returning(a.c.value)


class RecordService:
    def __init__(self, db: Database, cache: MetadataCache, events: EventBus,
                 timezone: str = "Asia/Shanghai", max_bulk: int = 1000):
        self.db, self.cache, self.events = db, cache, events
        self.timezone, self.max_bulk = timezone, max_bulk

    # ------------------------------------------------------------------ reads
    def get(self, actor: Actor, obj_name: str, record_id: int, fields: list[str] | None = None,
            *, deleted: bool = False) -> dict:
        permissions.require(actor, obj_name, "read")
        with self.db.read() as conn:
            reg = self.cache.current(conn)
            qc = QueryCompiler(reg, obj_name, actor, self.timezone)
            stmt, _count, cols = qc.compile(QuerySpec(fields=fields, deleted=deleted), paged=False)
            row = conn.execute(stmt.where(qc.table.c.id == record_id)).first()
        if row is None:
            raise NotFound(f"No {obj_name} record {record_id}.")
        return self._row_to_api(row, cols)

    def query(self, actor: Actor, obj_name: str, spec: QuerySpec | dict) -> dict:
        """Records by a query spec, or its JSON form ({filter, sort, fields, page_size, ...})."""
        permissions.require(actor, obj_name, "read")
        if isinstance(spec, dict):
            spec = load_spec(spec)
        with self.db.read() as conn:
            reg = self.cache.current(conn)
            stmt, count, cols = QueryCompiler(reg, obj_name, actor, self.timezone).compile(spec)
            rows = conn.execute(stmt).all()
            total = conn.execute(count).scalar_one() if count is not None else None
        has_more = len(rows) > spec.page_size
        return {"records": [self._row_to_api(r, cols) for r in rows[:spec.page_size]],
                "page": spec.page, "page_size": spec.page_size, "has_more": has_more, "total": total}

    def export(self, actor: Actor, obj_name: str, spec: QuerySpec, limit: int = 100_000):
        """(header, rows) of every record the query matches, for a file. Needs
        the export right; hidden fields are never exported; audited."""
        permissions.require(actor, obj_name, "read")
        permissions.require(actor, obj_name, "export")
        with self.db.read() as conn:
            reg = self.cache.current(conn)
            stmt, _count, cols = QueryCompiler(reg, obj_name, actor, self.timezone).compile(spec, paged=False)
            rows = conn.execute(stmt.limit(limit + 1)).all()
        if len(rows) > limit:
            raise BadRequest(f"An export holds at most {limit} records; narrow the filter.", {"filter": "Too many records."})
        with self.db.write() as conn:
            audit.record(conn, actor, "export", object=obj_name,
                         details={"records": len(rows), "fields": [n for n, _f in cols], "filter": spec.filter})
        return [n for n, _f in cols], [self._row_to_api(r, cols) for r in rows]

    def search(self, actor: Actor, text: str, per_object: int = 10) -> list[dict]:
        """Records of every object the actor may read whose text-like visible
        fields contain `text`, through the query compiler (so scope applies)."""
        if not isinstance(text, str) or not text.strip():
            raise BadRequest("Search for at least one character.", {"q": "Empty search."})
        text = text.strip()[:100]
        reg = self.cache.current()
        hits = []
        for obj in reg.objects.values():
            rights = actor.rights(obj.api_name)
            if "read" not in rights.actions or (actor.token_objects is not None and obj.api_name not in actor.token_objects):
                continue
            fields = [f.api_name for f in obj.custom_fields()
                      if f.type.searchable and rights.field_access(f.api_name) != "hidden"]
            if not fields:
                continue
            name_field = obj.name_field if obj.name_field and rights.field_access(obj.name_field) != "hidden" else None
            spec = QuerySpec(filter={"or": [{"field": f, "op": "contains", "value": text} for f in fields]},
                             fields=["id"] + ([name_field] if name_field else []) + fields,
                             sort=["-updated_at"], page_size=per_object)
            for rec in self.query(actor, obj.api_name, spec)["records"]:
                hits.append({"object": obj.api_name, "object_label": obj.label(actor.language), "id": rec["id"],
                             "name": rec.get(name_field) if name_field else None,
                             "matched": [f for f in fields if rec.get(f) and text.lower() in str(rec[f]).lower()]})
        return hits

    def history(self, actor: Actor, obj_name: str, record_id: int) -> list[dict]:
        self.get(actor, obj_name, record_id, ["id"], deleted=False)
        h = t.field_history
        with self.db.read() as conn:
            rows = conn.execute(sa.select(h).where(h.c.object == obj_name, h.c.record_id == record_id)
                                .order_by(h.c.changed_at.desc(), h.c.id.desc())).mappings().all()
        return [{"field": r["field"], "old_value": r["old_value"], "new_value": r["new_value"],
                 "changed_by": r["changed_by"], "changed_at": r["changed_at"]} for r in rows
                if permissions.visible(actor, obj_name, r["field"])]

    @staticmethod
    def _row_to_api(row, cols) -> dict:
        return {name: fd.type.from_db(value) for (name, fd), value in zip(cols, row)}

    # ------------------------------------------------------------------ writes
    def create(self, actor: Actor, obj_name: str, data: Any) -> dict:
        return self.bulk_create(actor, obj_name, [data], _single=True)[0]

    def bulk_create(self, actor: Actor, obj_name: str, rows: list, *, _single: bool = False) -> list[dict]:
        """Create all rows or none; errors name the row index and field."""
        permissions.require(actor, obj_name, "create")
        self._check_batch(rows)
        for _attempt in range(PREPARE_ATTEMPTS):
            prepared = self._prepared_inserts(actor, obj_name, rows, _single)
            try:
                return self._create(actor, obj_name, rows, _single, prepared)
            except _Moved:
                continue
        raise self._kept_moving(obj_name)

    def _prepared_inserts(self, actor: Actor, obj_name: str, rows: list, single: bool) -> _Prepared | None:
        """The rows' values after the prepare_insert handlers, worked out
        before the write transaction (None when no handler wants them)."""
        reg = self._prepare_snapshot("prepare_insert", obj_name)
        if reg is None:
            return None
        obj = reg.get(obj_name)
        self._check_writable(actor, obj, rows)
        values_list = self._collect(rows, single, lambda v: self._prepare_insert(reg, obj, v))
        _default_owner(values_list, actor)
        self._publish_before("prepare_insert", reg, obj, actor, None, values_list, [None] * len(values_list),
                             [None] * len(values_list), self.db.on_commit, single)
        return _Prepared(reg.version, values_list)

    def _create(self, actor: Actor, obj_name: str, rows: list, single: bool, prepared: _Prepared | None):
        with self._transaction() as (conn, on_commit):
            reg = self.cache.current(conn)
            self._check_prepared(prepared, reg, "prepare_insert", obj_name)
            obj = reg.get(obj_name)
            now = utcnow()
            if prepared is not None:
                values_list = prepared.values
            else:
                self._check_writable(actor, obj, rows)
                values_list = self._collect(rows, single, lambda v: self._prepare_insert(reg, obj, v))
                _default_owner(values_list, actor)
            self._check_references(conn, reg, obj, values_list, single, actor=actor)
            self._check_unique(conn, reg, obj, values_list, single)
            self._publish_before("before_insert", reg, obj, actor, conn, values_list, [None] * len(values_list),
                                 [None] * len(values_list), on_commit, single)
            self._fill_autonumbers(conn, obj, values_list, now)
            plan = _plan(reg, obj)
            for values in values_list:
                computed.initial_rollups(plan.rollups, values)
                computed.apply_formulas(reg, obj_name, values, now)
                values.update(created_by=actor.user_id, created_at=now, updated_by=actor.user_id, updated_at=now,
                              version=1)
            table = reg.table(obj_name)
            db_rows = [self._to_db(reg, obj, v) for v in values_list]
            ids = self._insert(conn, obj, table, db_rows)
            for values, new_id in zip(values_list, ids):
                values["id"] = new_id
            self._refresh_parents(conn, reg, obj, values_list, now)
            self._publish_all("after_insert", reg, obj, actor, conn, values_list, [None] * len(values_list),
                              [v["id"] for v in values_list], on_commit)
        names = self._visible(actor, obj)
        return [{n: v.get(n) for n in names} for v in values_list]

    def update(self, actor: Actor, obj_name: str, record_id: int, data: Any,
               *, system: SystemValues | None = None) -> dict:
        if not isinstance(data, dict):
            raise BadRequest("The record must be a JSON object.", {"record": "Must be an object."})
        if "id" in data:
            raise ValidationFailed({"id": "This field is read-only."})
        return self.bulk_update(actor, obj_name, [{**data, "id": record_id}], _single=True,
                                system=None if system is None else {record_id: system})[0]

    def bulk_update(self, actor: Actor, obj_name: str, rows: list, *, _single: bool = False,
                    system: dict[int, SystemValues] | None = None) -> list[dict]:
        """Update all rows (each carrying its "id") or none.

        `system` is the one trusted path for values code sets on fields
        nobody may write (a lead's duplicate mark, its follow-up dates): per
        record id, values or a function of the stored record (called under
        its row lock) returning them. They are laid over the validated
        changes before the before_update handlers run, and are checked for
        references and uniqueness like the rest. Never reachable from a
        request's payload.

        A row may carry "_version", the version its writer read: when the
        record has moved on since, nothing is written and the answer is a 409
        naming who changed it, when, and the current version. Without it
        the write goes ahead (API compatibility)."""
        permissions.require(actor, obj_name, "edit")
        self._check_batch(rows)
        ids = []
        for i, row in enumerate(rows):
            rid = row.get("id") if isinstance(row, dict) else None
            if isinstance(rid, bool) or not isinstance(rid, int):
                raise ValidationFailed({("id" if _single else f"records.{i}.id"): "Each record needs its integer id."})
            ids.append(rid)
        if len(set(ids)) != len(ids):
            raise BadRequest("The same id appears twice in one bulk update.", {"id": "Duplicate id."})
        expected = [_expected_version(row, i, _single) for i, row in enumerate(rows)]
        for _attempt in range(PREPARE_ATTEMPTS):
            prepared = self._prepared_updates(actor, obj_name, rows, ids, expected, _single)
            try:
                return self._update(actor, obj_name, rows, ids, expected, _single, system, prepared)
            except _Moved:
                continue
        raise self._kept_moving(obj_name)

    def _prepared_updates(self, actor: Actor, obj_name: str, rows: list, ids: list[int],
                          expected: list[int | None], single: bool) -> _Prepared | None:
        """The rows' changes after the prepare_update handlers, worked out on
        the stored records read without a lock (None when no handler wants
        them). The write goes ahead only if those records are unchanged."""
        reg = self._prepare_snapshot("prepare_update", obj_name)
        if reg is None:
            return None
        obj = reg.get(obj_name)
        self._check_writable(actor, obj, rows)
        with self.db.read() as conn:
            olds = self._load_for_update(conn, reg, obj, reg.table(obj_name), actor, ids, single, lock=False)
            self._check_versions(conn, obj, ids, expected, olds, single)
        changes = self._collect(rows, single, lambda row: self._prepare_update(reg, obj, olds[row["id"]],
                                                                             _payload(row)))
        merged_list = [{**olds[rid], **values} for rid, values in zip(ids, changes)]
        self._publish_before("prepare_update", reg, obj, actor, None, merged_list, [olds[rid] for rid in ids],
                             ids, self.db.on_commit, single)
        for rid, values, merged in zip(ids, changes, merged_list):   # what the handlers set joins the changes
            old = olds[rid]
            values.update({k: v for k, v in merged.items() if k not in values and v != old.get(k)})
        return _Prepared(reg.version, changes, {rid: olds[rid]["version"] for rid in ids})

    def _update(self, actor: Actor, obj_name: str, rows: list, ids: list[int], expected: list[int | None],
                single: bool, system: dict[int, SystemValues] | None, prepared: _Prepared | None) -> list[dict]:
        with self._transaction() as (conn, on_commit):
            reg = self.cache.current(conn)
            self._check_prepared(prepared, reg, "prepare_update", obj_name)
            obj = reg.get(obj_name)
            table = reg.table(obj_name)
            now = utcnow()
            if prepared is None:
                self._check_writable(actor, obj, rows)
            olds = self._load_for_update(conn, reg, obj, table, actor, ids, single)
            self._check_versions(conn, obj, ids, expected, olds, single)
            if prepared is not None:
                if any(olds[rid]["version"] != prepared.record_versions[rid] for rid in ids):
                    raise _Moved
                changes = prepared.values
            else:
                changes = self._collect(rows, single, lambda row: self._prepare_update(reg, obj, olds[row["id"]],
                                                                                     _payload(row)))
            if system:
                for rid, values in zip(ids, changes):
                    given = system.get(rid)
                    if given is not None:
                        values.update(given(olds[rid]) if callable(given) else given)
            self._check_references(conn, reg, obj, changes, single, olds=[olds[i] for i in ids], actor=actor)
            self._check_unique(conn, reg, obj, changes, single, ids=ids, olds=[olds[i] for i in ids])
            merged_list = [{**olds[rid], **values} for rid, values in zip(ids, changes)]
            self._publish_before("before_update", reg, obj, actor, conn, merged_list, [olds[rid] for rid in ids],
                                 ids, on_commit, single)
            results = []
            for rid, merged in zip(ids, merged_list):
                old = olds[rid]
                computed.apply_formulas(reg, obj_name, merged, now)
                diff = {k: v for k, v in merged.items()
                        if k in obj.fields and not obj.fields[k].system and old.get(k) != v}
                if "owner" in merged and merged["owner"] != old.get("owner"):
                    diff["owner"] = merged["owner"]
                if diff:
                    merged.update(updated_by=actor.user_id, updated_at=now, version=old["version"] + 1)
                    db_values = {obj.fields[k].column: obj.fields[k].type.to_db(v) for k, v in diff.items()}
                    db_values.update(updated_by=actor.user_id, updated_at=now, version=table.c.version + 1)
                    conn.execute(sa.update(table).where(table.c.id == rid).values(db_values))
                    self._write_history(conn, obj, rid, old, diff, actor, now)
                    if "owner" in diff:
                        audit.record(conn, actor, "owner_transferred", object=obj.api_name, target=rid,
                                     details={"from": old.get("owner"), "to": diff["owner"]})
                    self._refresh_parents(conn, reg, obj, [merged, old], now)
                    self._publish("after_update", reg, obj, actor, conn, merged, old, rid, on_commit)
                results.append(merged)
        names = self._visible(actor, obj)
        return [{n: v.get(n) for n in names} for v in results]

    def delete(self, actor: Actor, obj_name: str, record_id: int) -> None:
        """Soft delete; lookups pointing here are restricted, cleared or cascaded
        as each lookup field's on_delete says."""
        permissions.require(actor, obj_name, "delete")
        with self._transaction() as (conn, on_commit):
            reg = self.cache.current(conn)
            obj = reg.get(obj_name)
            old = self._load_for_update(conn, reg, obj, reg.table(obj_name), actor, [record_id], True)[record_id]
            self._delete(conn, reg, obj, actor, old, utcnow(), on_commit, depth=0)

    def bulk_delete(self, actor: Actor, obj_name: str, ids: Any) -> int:
        """Soft-delete every record of `ids`, or none: one missing or out of
        the actor's scope is a 404 naming it. A record a cascade from another
        id here already deleted is not an error."""
        permissions.require(actor, obj_name, "delete")
        if not isinstance(ids, list) or not ids or len(ids) > self.max_bulk:
            raise BadRequest(f"ids must be a list of 1 to {self.max_bulk} record ids.", {"ids": "Invalid list."})
        bad = {f"ids.{i}": "Must be a record id." for i, v in enumerate(ids) if isinstance(v, bool) or not isinstance(v, int)}
        if bad:
            raise ValidationFailed(bad)
        if len(set(ids)) != len(ids):
            raise BadRequest("The same id appears twice.", {"ids": "Duplicate id."})
        with self._transaction() as (conn, on_commit):
            reg = self.cache.current(conn)
            obj = reg.get(obj_name)
            table = reg.table(obj_name)
            try:       # all are loaded (and locked) before any is deleted
                olds = self._load_for_update(conn, reg, obj, table, actor, ids, False)
            except NotFound as exc:
                raise NotFound(exc.message.rstrip(".") + "; nothing was deleted.", {"ids": exc.fields.get("id")}) \
                    from None
            now = utcnow()
            for rid in ids:
                row = conn.execute(sa.select(table.c.deleted_at).where(table.c.id == rid)).first()
                if row is not None and row.deleted_at is None:      # not cascaded away by an earlier id
                    self._delete(conn, reg, obj, actor, olds[rid], now, on_commit, depth=0)
        return len(ids)

    def _delete(self, conn, reg: Registry, obj: ObjectDef, actor: Actor, old: dict, now, on_commit, depth: int):
        if depth > 10:
            raise Conflict("Cascading delete is nested more than 10 levels deep.")
        rid = old["id"]
        self._publish("before_delete", reg, obj, actor, conn, dict(old), old, rid, on_commit)
        for child, fd in reg.references_to(obj.api_name):
            ctable = reg.table(child.api_name)
            live = sa.and_(ctable.c[fd.column] == rid, ctable.c.deleted_at.is_(None))
            on_delete = fd.settings.get("on_delete", "set_null")
            if on_delete == "restrict":
                n = conn.execute(sa.select(sa.func.count()).select_from(ctable).where(live)).scalar_one()
                if n:
                    raise Conflict(f"{n} {child.api_name} record(s) still reference this record through "
                                   f"{fd.api_name}; delete or re-link them first.", {fd.api_name: "Restricted."})
            elif on_delete == "set_null":
                conn.execute(sa.update(ctable).where(live).values({fd.column: None, "updated_at": now,
                                                                   "updated_by": actor.user_id}))
            else:  # cascade: children get the same deleted_at, so a restore brings them back together
                child_cols = [ctable.c[f.column] for f in child.fields.values()]
                for crow in conn.execute(sa.select(*child_cols).where(live)).mappings().all():
                    cold = {f.api_name: f.type.from_db(crow[f.column]) for f in child.fields.values()}
                    self._delete(conn, reg, child, actor, cold, now, on_commit, depth + 1)
        table = reg.table(obj.api_name)
        conn.execute(sa.update(table).where(table.c.id == rid)
                     .values(deleted_at=now, updated_at=now, updated_by=actor.user_id))
        self._refresh_parents(conn, reg, obj, [old], now)
        self._publish("after_delete", reg, obj, actor, conn, dict(old), old, rid, on_commit)

    def restore(self, actor: Actor, obj_name: str, record_id: int) -> dict:
        permissions.require(actor, obj_name, "delete")
        with self._transaction() as (conn, on_commit):
            reg = self.cache.current(conn)
            obj = reg.get(obj_name)
            table = reg.table(obj_name)
            row = conn.execute(sa.select(table).where(table.c.id == record_id, table.c.deleted_at.is_not(None))
                               ).mappings().first()
            if row is None:
                raise NotFound(f"No deleted {obj_name} record {record_id}.")
            self._restore(conn, reg, obj, actor, row, utcnow(), on_commit, 0)
        return self.get(actor, obj_name, record_id)

    def _restore(self, conn, reg: Registry, obj: ObjectDef, actor: Actor, row, now, on_commit, depth: int):
        table = reg.table(obj.api_name)
        values = {f.api_name: f.type.from_db(row[f.column]) for f in obj.fields.values()}
        for fd in obj.fields.values():
            if fd.unique and values.get(fd.api_name) is not None:
                clash = conn.execute(sa.select(table.c.id).where(
                    table.c[fd.column] == fd.type.to_db(values[fd.api_name]),
                    table.c.deleted_at.is_(None)).limit(1)).first()
                if clash:
                    raise Conflict(f"Cannot restore: record {clash[0]} already has "
                                   f"{fd.api_name} = {values[fd.api_name]!r}.", {fd.api_name: "Duplicate value."})
        self._check_references(conn, reg, obj, [{k: v for k, v in values.items() if k in obj.fields
                                                 and obj.fields[k].type.is_reference
                                                 and obj.fields[k].settings.get("reference_to") != "user"}], True,
                               actor=Actor.system())
        conn.execute(sa.update(table).where(table.c.id == row["id"])
                     .values(deleted_at=None, updated_at=now, updated_by=actor.user_id))
        for child, fd in reg.references_to(obj.api_name):
            if fd.settings.get("on_delete") != "cascade":
                continue
            ctable = reg.table(child.api_name)
            for crow in conn.execute(sa.select(ctable).where(
                    ctable.c[fd.column] == row["id"], ctable.c.deleted_at == row["deleted_at"])).mappings().all():
                self._restore(conn, reg, child, actor, crow, now, on_commit, depth + 1)
        self._refresh_parents(conn, reg, obj, [values], now)
        self._publish("after_restore", reg, obj, actor, conn, values, None, row["id"], on_commit)

    # ------------------------------------------------------------------ steps
    def _prepare_snapshot(self, event: str, obj_name: str) -> Registry | None:
        """The current snapshot when a prepare pass is due, else None. The
        guess is made on the snapshot this process already has (no query on
        a write path without functions); `_check_prepared` catches a guess
        that a newer snapshot proves wrong."""
        known = self.cache.peek()
        if known is not None and not self.events.has(event, obj_name, known):
            return None
        reg = self.cache.current()
        return reg if self.events.has(event, obj_name, reg) else None

    def _check_prepared(self, prepared: _Prepared | None, reg: Registry, event: str, obj_name: str) -> None:
        """Inside the transaction: the pass (or its absence) must match this
        snapshot, or the write starts again."""
        if prepared is None:
            if self.events.has(event, obj_name, reg):
                raise _Moved
        elif prepared.metadata_version != reg.version:
            raise _Moved

    @staticmethod
    def _kept_moving(obj_name: str) -> Conflict:
        return Conflict(f"The {obj_name} records kept changing while this save was being checked; "
                        "reload them and try again.", {"_version": "Changed by someone else meanwhile."})

    @contextmanager
    def _transaction(self):
        """A write transaction plus an on_commit queue run after it commits."""
        try:
            with self.db.write() as conn:
                yield conn, self.db.on_commit
        except sa.exc.IntegrityError as err:
            raise self._integrity_conflict(err) from None

    def _check_batch(self, rows: Any) -> None:
        if not isinstance(rows, list) or not rows:
            raise BadRequest("records must be a non-empty list.", {"records": "Must be a non-empty list."})
        if len(rows) > self.max_bulk:
            raise BadRequest(f"At most {self.max_bulk} records per request.", {"records": "Too many records."})

    @staticmethod
    def _check_writable(actor: Actor, obj: ObjectDef, rows: list) -> None:
        names = {k for row in rows if isinstance(row, dict) for k in row if k != "id" and k in obj.fields}
        permissions.check_writable(actor, obj.api_name, names)

    @staticmethod
    def _collect(rows: list, single: bool, prepare: Callable[[Any], dict]) -> list[dict]:
        """Prepare every row, gathering all rows' errors before refusing any."""
        out, errors = [], {}
        for i, row in enumerate(rows):
            try:
                out.append(prepare(row))
            except ValidationFailed as exc:
                errors.update(exc.fields if single else {f"records.{i}.{k}": v for k, v in exc.fields.items()})
        if errors:
            raise ValidationFailed(errors)
        return out

    def _load_payload(self, reg: Registry, obj: ObjectDef, data: Any) -> tuple[dict, dict]:
        if not isinstance(data, dict):
            raise ValidationFailed({"record": "Each record must be a JSON object."})
        # The schema's fields are used one by one rather than through
        # Schema.load: same coercion and rules at half the cost per row, and
        # a message per field without unpicking marshmallow's nesting.
        fields = reg.schema(obj.api_name).fields
        errors: dict[str, str] = {}
        values: dict[str, Any] = {}
        for key, raw in data.items():
            mm_field = fields.get(key)
            if mm_field is None:
                errors[key] = "This field is read-only." if key in obj.fields else "Unknown field."
                continue
            try:
                values[key] = mm_field.deserialize(raw, key, data)
            except mm.ValidationError as exc:
                errors[key] = messages_text(exc.messages)
        return values, errors

    def _prepare_insert(self, reg: Registry, obj: ObjectDef, data: Any) -> dict:
        if isinstance(data, dict):
            data = {**_plan(reg, obj).defaults, **data}
        values, errors = self._load_payload(reg, obj, data)
        self._check_record(reg, obj, values, errors)
        return values

    def _prepare_update(self, reg: Registry, obj: ObjectDef, old: dict, data: dict) -> dict:
        values, errors = self._load_payload(reg, obj, data)
        self._check_record(reg, obj, {**old, **values}, errors, only=set(values) | set(errors))
        return values

    @staticmethod
    def _check_record(reg: Registry, obj: ObjectDef, values: dict, errors: dict, only: set | None = None) -> None:
        plan = _plan(reg, obj)
        for name in plan.required:
            if name not in errors and values.get(name) in (None, "", []) and (only is None or name in only):
                errors[name] = REQUIRED
        for fd in plan.record_checked:
            name = fd.api_name
            if name in errors or values.get(name) in (None, "", []):
                continue
            message = fd.type.check_record(fd, values)
            if message and (only is None or name in only or fd.settings.get("controlling_field") in only):
                errors[name] = message
        if errors:
            raise ValidationFailed(errors)

    def _check_references(self, conn, reg: Registry, obj: ObjectDef, values_list: list[dict], single: bool,
                          *, actor: Actor, olds: list[dict] | None = None) -> None:
        """Every lookup and user value must name a live record (an active user)."""
        errors = {}
        for fd in obj.fields.values():
            if not fd.type.is_reference or not fd.writable:
                continue
            wanted = {}
            for i, values in enumerate(values_list):
                v = values.get(fd.api_name)
                if v is not None and (olds is None or olds[i].get(fd.api_name) != v):
                    wanted.setdefault(v, []).append(i)
            if not wanted:
                continue
            target = fd.settings["reference_to"]
            if target == "user":  # lh_users.id is a 32-bit integer: a larger id cannot exist
                found = set(conn.execute(sa.select(t.users.c.id).where(
                    t.users.c.id.in_([v for v in wanted if v <= INT32]), t.users.c.active.is_(True))).scalars())
            else:
                ttable = reg.table(target)
                # a record the actor may not read is reported exactly like a missing one
                scope = permissions.scope_predicate(actor, target, ttable)
                found = set(conn.execute(sa.select(ttable.c.id).where(
                    in_values(ttable.c.id, list(wanted)), ttable.c.deleted_at.is_(None),
                    *([scope] if scope is not None else []))).scalars())
            for v, rows in wanted.items():
                if v not in found:
                    for i in rows:
                        key = fd.api_name if single else f"records.{i}.{fd.api_name}"
                        errors[key] = f"No {target} with id {v}."
        if errors:
            raise ValidationFailed(errors)

    def _check_unique(self, conn, reg: Registry, obj: ObjectDef, values_list: list[dict], single: bool,
                      ids: list[int] | None = None, olds: list[dict] | None = None) -> None:
        table = reg.table(obj.api_name)
        errors = {}
        for fd in obj.fields.values():
            if not fd.unique or fd.type.computed:
                continue
            seen: dict[Any, int] = {}
            for i, values in enumerate(values_list):
                v = values.get(fd.api_name)
                if v is None or (olds is not None and olds[i].get(fd.api_name) == v):
                    continue
                key = fd.api_name if single else f"records.{i}.{fd.api_name}"
                if v in seen:
                    errors[key] = f"Duplicate of record {seen[v] + 1} in this request."
                seen.setdefault(v, i)
            if not seen:
                continue
            col = table.c[fd.column]
            stmt = sa.select(col, table.c.id).where(in_values(col, [fd.type.to_db(v) for v in seen]),
                                                    table.c.deleted_at.is_(None))
            for value, other_id in conn.execute(stmt):
                i = seen.get(fd.type.from_db(value))
                if i is not None and (ids is None or ids[i] != other_id):
                    key = fd.api_name if single else f"records.{i}.{fd.api_name}"
                    errors[key] = f"Must be unique: record {other_id} already has this value."
        if errors:
            raise Conflict("A unique field's value is already taken.", errors)

    def _fill_autonumbers(self, conn, obj: ObjectDef, values_list: list[dict], now: dt.datetime) -> None:
        """Reserve len(values_list) numbers with one upsert per field. The
        counter row is locked until commit, so concurrent writers never repeat
        a number; a rolled-back transaction takes its reservation back with it."""
        local = now.astimezone(zoneinfo.ZoneInfo(self.timezone))
        for fd in obj.fields_of_type("auto_number"):
            n = len(values_list)
            last = conn.execute(_reserve_numbers(conn.dialect.name), {
                "object": obj.api_name, "field": fd.api_name, "period": fd.type.period(fd, local),
                "value": n}).scalar_one()
            for offset, values in enumerate(values_list):
                values[fd.api_name] = format_number(fd.settings["pattern"], local, last - n + 1 + offset)

    @staticmethod
    def _to_db(reg: Registry, obj: ObjectDef, values: dict) -> dict:
        """The row's set values by column; unset fields are left out (NULL),
        so a record filling 10 of 500 fields costs 10 conversions, not 500."""
        columns = _plan(reg, obj).columns
        row = {"deleted_at": None}
        for name, value in values.items():
            spec = columns.get(name)
            if spec is not None and value is not None:
                column, convert = spec
                row[column] = value if convert is None else convert(value)
        return row

    @staticmethod
    def _insert(conn, obj: ObjectDef, table: sa.Table, db_rows: list[dict]) -> list[int]:
        """Insert and return the new ids in row order. Ids are taken first
        (PostgreSQL: the table's sequence; SQLite: after the current maximum,
        safe because the write transaction holds the database's write lock),
        so the insert itself is a plain executemany without RETURNING, which
        costs three times as much per row on PostgreSQL."""
        n = len(db_rows)
        if n == 1:
            return [conn.execute(table.insert().returning(table.c.id), db_rows[0]).scalar_one()]
        columns = set().union(*db_rows)          # one statement: every row names the same columns
        db_rows = [row if len(row) == len(columns) else {**dict.fromkeys(columns), **row} for row in db_rows]
        if conn.dialect.name == "postgresql":
            seq = sa.func.pg_get_serial_sequence(table.name, "id")
            ids = list(conn.execute(sa.select(sa.func.nextval(seq)).select_from(
                sa.func.generate_series(1, n))).scalars())
        else:
            top = conn.execute(sa.select(sa.func.max(table.c.id))).scalar() or 0
            ids = list(range(top + 1, top + n + 1))
        conn.execute(table.insert(), [{**row, "id": i} for row, i in zip(db_rows, ids)])
        return ids

    def _load_for_update(self, conn, reg: Registry, obj: ObjectDef, table: sa.Table, actor: Actor,
                         ids: list[int], single: bool, *, lock: bool = True) -> dict[int, dict]:
        possible = [i for i in ids if 1 <= i <= INT64]  # others cannot exist (and would overflow)
        stmt = sa.select(*[table.c[f.column] for f in obj.fields.values()]).where(
            in_values(table.c.id, possible), table.c.deleted_at.is_(None))
        scope = permissions.scope_predicate(actor, obj.api_name, table, "edit")
        if scope is not None:  # out of scope looks exactly like missing: a 404, nothing leaks
            stmt = stmt.where(scope)
        if lock and conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        found = {}
        for row in conn.execute(stmt).mappings():
            found[row["id"]] = {f.api_name: f.type.from_db(row[f.column]) for f in obj.fields.values()}
        missing = [i for i in ids if i not in found]
        if missing:
            if single:
                raise NotFound(f"No {obj.api_name} record {missing[0]}.")
            raise NotFound(f"No {obj.api_name} records with ids {', '.join(map(str, missing))}.",
                           {"id": f"Not found: {', '.join(map(str, missing))}."})
        return found

    @staticmethod
    def _check_versions(conn, obj: ObjectDef, ids: list[int], expected: list[int | None], olds: dict,
                        single: bool) -> None:
        """Refuse (409) rows whose writer read an older version; the rows are
        locked, so nobody moves them between this check and the write."""
        for i, (rid, want) in enumerate(zip(ids, expected)):
            old = olds[rid]
            if want is None or want == old["version"]:
                continue
            who = conn.execute(sa.select(t.users.c.name).where(t.users.c.id == old["updated_by"])).scalar() \
                if old.get("updated_by") else None
            when = old["updated_at"].strftime("%Y-%m-%d %H:%M:%S UTC") if old.get("updated_at") else "?"
            key = "_version" if single else f"records.{i}._version"
            raise Conflict(f"{obj.api_name} record {rid} was changed by {who or 'someone else'} at {when} "
                           f"(now version {old['version']}; you had {want}). Reload it and make your change again.",
                           {key: f"Current version is {old['version']}.", "current_version": old["version"],
                            "changed_by": who,
                            "changed_at": old["updated_at"].isoformat() if old.get("updated_at") else None})

    def _write_history(self, conn, obj: ObjectDef, rid: int, old: dict, diff: dict, actor: Actor, now) -> None:
        rows = [{"object": obj.api_name, "record_id": rid, "field": k,
                 "old_value": json_value(old.get(k)), "new_value": json_value(v),
                 "changed_by": actor.user_id, "changed_at": now}
                for k, v in diff.items()
                if (obj.track_history or obj.fields[k].track_history) and not obj.fields[k].type.computed]
        if rows:
            conn.execute(t.field_history.insert(), rows)

    def _refresh_parents(self, conn, reg: Registry, obj: ObjectDef, values_list: Iterable[dict], now) -> None:
        feeds = reg.rollups_fed_by(obj.api_name)
        if not feeds:
            return
        values_list = list(values_list)
        links = {fd.settings["child_field"] for _p, fd in feeds}
        computed.refresh_rollups(conn, reg, obj.api_name,
                                 {link: {v.get(link) for v in values_list} for link in links}, now)

    def _publish_before(self, name, reg, obj, actor, conn, values_list, olds, ids, on_commit, single) -> None:
        """before_* handlers for every row, gathering all rows' refusals (named
        records.<i>.<field> in a batch) before refusing the write."""
        errors: dict = {}

        def refused(i, exc):
            if single:
                raise exc
            errors.update({f"records.{i}.{k}": v for k, v in exc.fields.items()})
        self._publish_all(name, reg, obj, actor, conn, values_list, olds, ids, on_commit, refused)
        if errors:
            raise ValidationFailed(errors)

    def coerce(self, obj_name: str, changes: Any) -> dict:
        """Values set by code (a before-save function, a plugin hook) coerced
        and checked exactly as API input is; ValidationFailed names the field."""
        reg = self.cache.current()
        obj = reg.get(obj_name)
        values, errors = self._load_payload(reg, obj, changes)
        if errors:
            raise ValidationFailed(errors)
        return values

    def _publish(self, name, reg, obj, actor, conn, values, old, rid, on_commit) -> None:
        self._publish_all(name, reg, obj, actor, conn, [values], [old], [rid], on_commit)

    def _publish_all(self, name, reg, obj, actor, conn, values_list, olds, ids, on_commit, refused=None) -> None:
        """One event per row, handed to the handlers together (see EventBus.publish_all)."""
        if self.events.has(name, obj.api_name, reg):
            self.events.publish_all([RecordEvent(name=name, object=obj.api_name, actor=actor, conn=conn,
                                                 values=values, old=old, record_id=rid, on_commit=on_commit,
                                                 registry=reg)
                                     for values, old, rid in zip(values_list, olds, ids)], refused)

    def _integrity_conflict(self, err: sa.exc.IntegrityError) -> Conflict:
        """A unique index caught what the pre-check could not (a concurrent write)."""
        text = str(err.orig)
        reg = self.cache.current()
        for obj in reg.objects.values():
            for fd in obj.fields.values():
                if fd.unique and (f"{obj.table_name}.{fd.column}" in text
                                  or index_name(obj.table_name, fd.column, True) in text):
                    return Conflict("A unique field's value is already taken.",
                                    {fd.api_name: "Must be unique: another record has this value."})
        return Conflict("The write conflicts with existing data.", {})

    @staticmethod
    def _visible(actor: Actor, obj: ObjectDef) -> list[str]:
        return [name for name in obj.fields if permissions.visible(actor, obj.api_name, name)]


@dataclass
class _Prepared:
    """What a prepare pass worked out: valid while the metadata and the
    records it read are still these versions."""
    metadata_version: int
    values: list[dict]
    record_versions: dict[int, int] | None = None


class _Moved(Exception):
    """The metadata or a record changed between the prepare pass and the lock."""


PREPARE_ATTEMPTS = 3


def _default_owner(values_list: list[dict], actor: Actor) -> None:
    """Before any handler: one may still hand the record to nobody."""
    for values in values_list:
        if values.get("owner") is None:
            values["owner"] = actor.user_id


def _payload(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in ("id", "_version")}


def _expected_version(row: Any, i: int, single: bool) -> int | None:
    """The `_version` a row was written against (None: not given)."""
    want = row.get("_version") if isinstance(row, dict) else None
    if want is None:
        return None
    if isinstance(want, bool) or not isinstance(want, int) or not 1 <= want <= 2 ** 31 - 1:
        raise BadRequest("_version must be the record's version, a whole number from 1.",
                         {"_version" if single else f"records.{i}._version": "Not a version."})
    return want
