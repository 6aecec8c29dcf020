"""Changing metadata at runtime. Each change validates its payload, checks
that existing data survives it, runs the DDL (ddl.py) and writes lh_objects /
lh_fields in one transaction, bumps the metadata version, and backfills
computed fields. A change that would lose or corrupt data is a 409."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import marshmallow as mm
import sqlalchemy as sa

from leadhub.metadata.definitions import FieldDef, ObjectDef
from leadhub.metadata.kind_service import bump_version, record_history
from leadhub.metadata.kinds import Context
from leadhub.metadata.registry import MetadataCache, Registry, field_from_row, load_registry
from leadhub.metadata.types import get_type, type_names
from leadhub.metadata.types.computed import format_number
from leadhub.platform import audit, ddl, permissions, tables as t
from leadhub.platform.apinames import check_api_name
from leadhub.platform.db import Database, utcnow
from leadhub.platform.errors import BadRequest, Conflict, NotFound, ValidationFailed, messages_text
from leadhub.platform.labels import normalise_labels
from leadhub.platform.permissions import Actor

FIELD_PROPS = ("api_name", "label", "type", "help_text", "required", "unique", "indexed",
               "read_only", "track_history", "default", "position")
OBJECT_PROPS = ("api_name", "label", "description", "name_field", "track_history", "fields")
MAX_FIELDS = 500


class _Flags(mm.Schema):
    class Meta:
        unknown = mm.EXCLUDE
    required = mm.fields.Boolean()
    unique = mm.fields.Boolean()
    indexed = mm.fields.Boolean()
    read_only = mm.fields.Boolean()
    track_history = mm.fields.Boolean()
    position = mm.fields.Integer(strict=True, validate=mm.validate.Range(0, 100000))
    description = mm.fields.String(allow_none=True, validate=mm.validate.Length(max=2000))
    name_field = mm.fields.String(allow_none=True)


def _require_dict(payload: Any) -> dict:
    if not isinstance(payload, dict):
        raise BadRequest("The body must be a JSON object.", {"body": "Must be an object."})
    return payload


class MetadataService:
    def __init__(self, db: Database, cache: MetadataCache, kinds, backfill: Callable | None = None):
        self.db, self.cache = db, cache
        self.kinds = kinds      # KindService: items of other kinds that reference objects and fields
        # backfill(conn, registry, object, field, now) gives existing records a computed field's values:
        # the data layer's formulas and roll-ups, handed in by the Runtime (metadata does not import them)
        self.backfill_computed = backfill

    # ----------------------------------------------------------------- objects
    def create_object(self, actor: Actor, payload: Any, *, plugin: str | None = None) -> ObjectDef:
        permissions.require_admin(actor)
        payload = _require_dict(payload)
        errors = _unknown(payload, OBJECT_PROPS)
        name = payload.get("api_name")
        if (msg := check_api_name(name, kind="object")):
            errors["api_name"] = msg
        labels = _labels(payload.get("label"), errors)
        flags = _flags(payload, errors)
        fields_payload = payload.get("fields", [])
        if not isinstance(fields_payload, list) or len(fields_payload) > MAX_FIELDS:
            errors["fields"] = f"fields must be a list of at most {MAX_FIELDS} field definitions."
        if errors:
            raise ValidationFailed(errors)
        with self.db.write() as conn:
            reg = load_registry(conn)
            if name in reg.objects or name in reg.deleted_objects:
                raise Conflict(f"An object '{name}' already exists"
                               + (" in the recycle bin; restore or purge it." if name in reg.deleted_objects else "."),
                               {"api_name": "Already taken."})
            now = utcnow()
            table_name = ddl.table_name(name)
            conn.execute(t.objects.insert().values(
                api_name=name, table_name=table_name, labels=labels, description=flags.get("description"),
                name_field=None, track_history=flags.get("track_history", False), plugin=plugin,
                created_at=now, updated_at=now))
            reg = load_registry(conn)
            ddl.create_object_table(conn, reg.get(name))
            for i, fp in enumerate(fields_payload):
                try:
                    reg = self._add_field(conn, reg, name, fp, plugin)
                except ValidationFailed as exc:
                    raise ValidationFailed({f"fields.{i}.{k}" if k != "field" else f"fields.{i}": v
                                            for k, v in exc.fields.items()}) from None
                except Conflict as exc:
                    raise Conflict(exc.message, {f"fields.{i}.{k}": v for k, v in exc.fields.items()}) from None
            if flags.get("name_field"):
                self._set_name_field(conn, reg.get(name), flags["name_field"])
            self._history(conn, actor, "created", name, fields=[fp["api_name"] for fp in fields_payload])
            _bump(conn)
        return self.cache.current().get(name)

    def update_object(self, actor: Actor, name: str, payload: Any) -> ObjectDef:
        permissions.require_admin(actor)
        payload = _require_dict(payload)
        errors = _unknown(payload, ("label", "description", "name_field", "track_history"))
        values: dict[str, Any] = {}
        if "label" in payload:
            values["labels"] = _labels(payload["label"], errors)
        flags = _flags(payload, errors)
        for key in ("description", "track_history"):
            if key in flags:
                values[key] = flags[key]
        if errors:
            raise ValidationFailed(errors)
        with self.db.write() as conn:
            obj = load_registry(conn).get(name)
            if "name_field" in payload:
                self._set_name_field(conn, obj, payload["name_field"])
            if values:
                conn.execute(sa.update(t.objects).where(t.objects.c.id == obj.id)
                             .values(updated_at=utcnow(), **values))
            self._history(conn, actor, "updated", name)
            _bump(conn)
        return self.cache.current().get(name)

    def delete_object(self, actor: Actor, name: str) -> None:
        """Soft delete: the table and its rows stay until purge_object."""
        permissions.require_admin(actor)
        with self.db.write() as conn:
            reg = load_registry(conn)
            obj = reg.get(name)
            users = [f"{o.api_name}.{f.api_name}" for o, f in reg.references_to(name) if o.api_name != name]
            users += [f"{o.api_name}.{f.api_name}" for o, f in reg.rollups_fed_by(name) if o.api_name != name]
            if users:
                raise Conflict(f"Other objects depend on {name}: {', '.join(users)}. Delete those fields first.",
                               {"api_name": "In use."})
            users = self.kinds.referrers(reg, "object", name)
            if users:
                raise Conflict(f"{name} is used by {', '.join(users)}; change those first.", {"api_name": "In use."})
            conn.execute(sa.update(t.objects).where(t.objects.c.id == obj.id).values(deleted_at=utcnow()))
            self._history(conn, actor, "deleted", name)
            _bump(conn)

    def restore_object(self, actor: Actor, name: str) -> ObjectDef:
        permissions.require_admin(actor)
        with self.db.write() as conn:
            reg = load_registry(conn)
            if name not in reg.deleted_objects:
                raise NotFound(f"No deleted object '{name}'.")
            conn.execute(sa.update(t.objects).where(t.objects.c.api_name == name)
                         .values(deleted_at=None, updated_at=utcnow()))
            self._history(conn, actor, "restored", name)
            _bump(conn)
        return self.cache.current().get(name)

    def purge_object(self, actor: Actor, name: str) -> None:
        """Drop a soft-deleted object's table and every trace of it."""
        permissions.require_admin(actor)
        with self.db.write() as conn:
            reg = load_registry(conn)
            obj = reg.deleted_objects.get(name)
            if obj is None:
                raise Conflict(f"Only a deleted object can be purged; delete '{name}' first.",
                               {"api_name": "Not deleted."})
            ctx = Context(self.kinds.runtime, conn, reg, actor)
            for item in self.kinds.belonging_to(reg, name):      # its layouts and shared views go with it
                self.kinds.remove(ctx, item.kind, item.key)
            ddl.drop_object_table(conn, obj)
            conn.execute(sa.delete(t.fields).where(t.fields.c.object_id == obj.id))
            conn.execute(sa.delete(t.objects).where(t.objects.c.id == obj.id))
            conn.execute(sa.delete(t.autonumbers).where(t.autonumbers.c.object == name))
            conn.execute(sa.delete(t.field_history).where(t.field_history.c.object == name))
            record_history(conn, "object", name, "purged", None, actor)
            audit.record(conn, actor, "meta_purged", object="object", target=name)
            _bump(conn)

    def _set_name_field(self, conn, obj: ObjectDef, field_name: Any) -> None:
        if field_name is not None:
            fd = obj.fields.get(field_name) if isinstance(field_name, str) else None
            if fd is None or fd.system:
                raise ValidationFailed({"name_field": f"No field '{field_name}' on {obj.api_name}."})
        conn.execute(sa.update(t.objects).where(t.objects.c.id == obj.id).values(name_field=field_name))

    # ------------------------------------------------------------------ fields
    def add_field(self, actor: Actor, obj_name: str, payload: Any, *, plugin: str | None = None) -> FieldDef:
        permissions.require_admin(actor)
        with self.db.write() as conn:
            before = self.cache.current(conn)        # the cached snapshot, checked against the version
            reg = self._add_field(conn, before, obj_name, payload, plugin)
            self._history(conn, actor, "created", obj_name, payload["api_name"])
            self._bump_and_adopt(conn, before, reg.get(obj_name))
            name = payload["api_name"]
        return self.cache.current().get(obj_name).fields[name]

    def _bump_and_adopt(self, conn, before: Registry, obj: ObjectDef) -> None:
        """Bump the version; when this change is the only one since `before`
        (its object now `obj`), the cache keeps the snapshot built here once
        the write commits instead of reloading all metadata."""
        _bump(conn)
        version = conn.execute(sa.select(t.meta_version.c.version)).scalar_one()
        if version == before.version + 1:
            after = before.with_object(obj, version)
            self.db.on_commit(lambda: self.cache.adopt(after))

    def _add_field(self, conn, reg: Registry, obj_name: str, payload: Any, plugin: str | None) -> Registry:
        obj = reg.get(obj_name)
        if not isinstance(payload, dict):
            raise ValidationFailed({"field": "A field definition must be a JSON object."})
        name = payload.get("api_name")
        if (msg := check_api_name(name)):
            raise ValidationFailed({"api_name": msg})
        if name in obj.fields or name in obj.deleted_fields:
            where = " (deleted; restore or purge it)" if name in obj.deleted_fields else ""
            raise Conflict(f"{obj_name} already has a field '{name}'{where}.", {"api_name": "Already taken."})
        if len(obj.custom_fields()) >= MAX_FIELDS:
            raise Conflict(f"{obj_name} already has {MAX_FIELDS} fields.", {"api_name": "Too many fields."})
        fd = self._build_field(reg, obj, payload, old=None)
        fill = None  # the value existing records get, for a required field
        if fd.required and not fd.type.computed:
            # a bare table clause: building the object's full Table for each
            # field would make creating a wide object quadratic
            populated = conn.execute(sa.select(sa.literal(1)).select_from(sa.table(obj.table_name))
                                     .limit(1)).first() is not None
            if populated and fd.default is None:
                raise Conflict(f"{obj_name} already holds records that would have no {name}; "
                               "give the field a default, or add it as optional first.", {"required": "No default."})
            if populated:
                fill = fd.type.to_db(fd.type.value_field(fd).deserialize(fd.default))
        now = utcnow()
        position = fd.position or (max([f.position for f in obj.custom_fields()] or [0]) + 1)
        row = dict(object_id=obj.id, api_name=name, type=fd.type_name, labels=fd.labels, help_text=fd.help_text,
                   required=fd.required, is_unique=fd.unique, indexed=fd.indexed, read_only=fd.read_only,
                   track_history=fd.track_history, default_value=fd.default, settings=fd.settings,
                   position=position, plugin=plugin, created_at=now, updated_at=now)
        field_id = conn.execute(t.fields.insert().values(row)).inserted_primary_key[0]
        ddl.add_field_column(conn, obj, fd, fill=fill)
        # the registry with this field, without reading all metadata again:
        # an object of 500 fields would otherwise cost 500 full reloads
        fd = field_from_row(obj_name, {**row, "id": field_id, "deleted_at": None})
        reg = reg.with_object(dataclasses.replace(obj, fields={**obj.fields, name: fd}))
        self._backfill(conn, reg, reg.get(obj_name), fd, now)
        return reg

    def update_field(self, actor: Actor, obj_name: str, field_name: str, payload: Any) -> FieldDef:
        permissions.require_admin(actor)
        payload = _require_dict(payload)
        with self.db.write() as conn:
            reg = load_registry(conn)
            obj = reg.get(obj_name)
            old = obj.fields.get(field_name)
            if old is None:
                raise NotFound(f"No field '{field_name}' on {obj_name}.")
            if old.system:
                raise Conflict(f"'{field_name}' is a system field and cannot be changed.", {field_name: "System field."})
            if "api_name" in payload and payload["api_name"] != field_name:
                raise Conflict("A field's api_name cannot change: integrations and formulas use it.",
                               {"api_name": "Cannot change."})
            new = self._build_field(reg, obj, {"api_name": field_name, **payload}, old=old)
            if new.type_name != old.type_name and new.type_name not in old.type.becomes:
                raise Conflict(f"Changing type {old.type_name} to {new.type_name} could lose data; only "
                               "text to long_text is allowed. Add a new field and copy the values instead.",
                               {"type": "Unsafe type change."})
            if (msg := new.type.change_error(old, new)):
                raise Conflict(msg, {field_name: msg})
            table = reg.table(obj_name)
            col = table.c[old.column]
            live = table.c.deleted_at.is_(None)
            if new.type_name == old.type_name and (check := new.type.conflicting_rows(old, new, col)) is not None:
                # deleted records count too: a restore would bring their values back
                predicate, message = check
                n = conn.execute(sa.select(sa.func.count()).select_from(table).where(predicate)).scalar_one()
                if n:
                    raise Conflict(f"{message} ({n} records affected.)", {field_name: message})
            if new.required and not old.required and not new.type.computed:
                n = conn.execute(sa.select(sa.func.count()).select_from(table).where(live, col.is_(None))).scalar_one()
                if n:
                    raise Conflict(f"{n} {obj_name} records have no {field_name}; fill them before making it required.",
                                   {"required": f"{n} records are empty."})
            if new.unique and not old.unique:
                dupes = conn.execute(sa.select(col, sa.func.count()).where(live, col.is_not(None))
                                     .group_by(col).having(sa.func.count() > 1).limit(5)).all()
                if dupes:
                    sample = ", ".join(f"{v!r} ({n}x)" for v, n in dupes)
                    raise Conflict(f"{field_name} has duplicate values: {sample}. Resolve them before making it unique.",
                                   {"unique": "Duplicates exist."})
            conn.execute(sa.update(t.fields).where(t.fields.c.id == old.id).values(
                type=new.type_name, labels=new.labels, help_text=new.help_text, required=new.required,
                is_unique=new.unique, indexed=new.indexed, read_only=new.read_only,
                track_history=new.track_history, default_value=new.default, settings=new.settings,
                position=new.position, updated_at=utcnow()))
            ddl.alter_column_type(conn, obj, old, new)
            ddl.sync_indexes(conn, obj, old, new)
            if new.settings != old.settings and new.type.computed:
                reg = load_registry(conn)
                self._backfill(conn, reg, reg.get(obj_name), reg.get(obj_name).fields[field_name], utcnow())
            self._history(conn, actor, "updated", obj_name, field_name)
            _bump(conn)
        return self.cache.current().get(obj_name).fields[field_name]

    def delete_field(self, actor: Actor, obj_name: str, field_name: str) -> None:
        """Soft delete: the column and its data stay until purge_field."""
        permissions.require_admin(actor)
        with self.db.write() as conn:
            reg = load_registry(conn)
            obj = reg.get(obj_name)
            fd = obj.fields.get(field_name)
            if fd is None:
                raise NotFound(f"No field '{field_name}' on {obj_name}.")
            if fd.system:
                raise Conflict(f"'{field_name}' is a system field.", {field_name: "System field."})
            users = _dependents(reg, obj, fd) + self.kinds.referrers(reg, "field", f"{obj_name}.{field_name}")
            if users:
                raise Conflict(f"{field_name} is used by {', '.join(users)}; change those first.",
                               {field_name: "In use."})
            conn.execute(sa.update(t.fields).where(t.fields.c.id == fd.id).values(deleted_at=utcnow()))
            self._history(conn, actor, "deleted", obj_name, field_name)
            _bump(conn)

    def restore_field(self, actor: Actor, obj_name: str, field_name: str) -> FieldDef:
        permissions.require_admin(actor)
        with self.db.write() as conn:
            reg = load_registry(conn)
            obj = reg.get(obj_name)
            fd = obj.deleted_fields.get(field_name)
            if fd is None:
                raise NotFound(f"No deleted field '{field_name}' on {obj_name}.")
            conn.execute(sa.update(t.fields).where(t.fields.c.id == fd.id)
                         .values(deleted_at=None, updated_at=utcnow()))
            reg = load_registry(conn)
            try:
                self._validate_in_object(reg, reg.get(obj_name), reg.get(obj_name).fields[field_name])
            except ValidationFailed as exc:
                raise Conflict(f"{field_name} cannot be restored: {exc.message}", exc.fields) from None
            self._backfill(conn, reg, reg.get(obj_name), reg.get(obj_name).fields[field_name], utcnow())
            self._history(conn, actor, "restored", obj_name, field_name)
            _bump(conn)
        return self.cache.current().get(obj_name).fields[field_name]

    def purge_field(self, actor: Actor, obj_name: str, field_name: str) -> None:
        """Drop a soft-deleted field's column and data for good."""
        permissions.require_admin(actor)
        with self.db.write() as conn:
            reg = load_registry(conn)
            obj = reg.get(obj_name, include_deleted=True)
            fd = obj.deleted_fields.get(field_name)
            if fd is None and field_name not in obj.fields:
                raise NotFound(f"No field '{field_name}' on {obj_name}.")
            if fd is None:
                raise Conflict(f"Only a deleted field can be purged; delete '{field_name}' first.",
                               {field_name: "Not deleted."})
            ddl.drop_field_column(conn, obj, fd)
            conn.execute(sa.delete(t.fields).where(t.fields.c.id == fd.id))
            conn.execute(sa.delete(t.autonumbers).where(t.autonumbers.c.object == obj_name,
                                                        t.autonumbers.c.field == field_name))
            record_history(conn, "field", f"{obj_name}.{field_name}", "purged", None, actor)
            audit.record(conn, actor, "meta_purged", object="field", target=f"{obj_name}.{field_name}")
            _bump(conn)

    # ----------------------------------------------------------------- definitions
    # ----------------------------------------------------------------- rollback
    def rollback_object(self, actor: Actor, name: str, version: Any) -> ObjectDef:
        """Give an object its own properties (labels, description, name field,
        history tracking) as they were in `version`: a new version, through
        update_object. Its fields are rolled back one by one."""
        data = self._version(actor, "object", name, version)
        obj = self.cache.current().objects.get(name)
        if obj is None:
            raise Conflict(f"{name} is deleted or purged; restore it first.", {"api_name": "Not live."})
        current = obj.spec()
        changed = {k: data.get(k) for k in ("label", "description", "name_field", "track_history")
                   if data.get(k) != current.get(k) and not (k == "name_field" and data.get(k) is None)}
        return self.update_object(actor, name, changed) if changed else obj

    def rollback_field(self, actor: Actor, key: str, version: Any) -> FieldDef:
        """Give a field its definition as it was in `version` (a deleted field
        is restored first): a new version, through update_field, so a change
        that would lose data is refused as an edit would be."""
        data = self._version(actor, "field", key, version)
        obj_name, _, name = key.partition(".")
        obj = self.cache.current().get(obj_name)
        if name in obj.deleted_fields:
            self.restore_field(actor, obj_name, name)
            obj = self.cache.current().get(obj_name)
        fd = obj.fields.get(name)
        if fd is None:
            raise Conflict(f"{key} was purged; create it anew.", {"key": "Purged."})
        current = fd.spec()
        changed = {k: data.get(k) for k in set(data) | set(current)
                   if k != "api_name" and data.get(k) != current.get(k)}
        return self.update_field(actor, obj_name, name, changed) if changed else fd

    def _version(self, actor: Actor, kind: str, key: str, version: Any) -> dict:
        if isinstance(version, bool) or not isinstance(version, int):
            raise BadRequest("version must be a version number.", {"version": "Must be an integer."})
        data = {v["version"]: v["data"] for v in self.kinds.versions(actor, kind, key)}.get(version)
        if data is None:
            raise NotFound(f"{kind} '{key}' has no version {version} to roll back to.", {"version": "No such version."})
        return data

    def field_definition(self, obj_name: str, payload: dict) -> dict:
        """What a field payload means here, as FieldDef.spec() writes it (the
        type's settings normalised), without saving anything: plugins compare
        what they ship with what is stored. Position is where it lands, not
        what it is, and derived settings are leadhub's: both left out."""
        obj = self.cache.current().get(obj_name)
        return plain_definition(self._build_field(self.cache.current(), obj, payload, None))

    # ----------------------------------------------------------------- helpers
    def _history(self, conn, actor: Actor, action: str, obj_name: str, field_name: str | None = None,
                 fields: list[str] = ()) -> None:
        """A version of the object (or field) in the shared metadata history,
        and its audit entry; a new object's fields get theirs too."""
        obj = load_registry(conn).get(obj_name, include_deleted=True)
        entries = [("object", obj_name, obj.spec())] if field_name is None else []
        for name in ([field_name] if field_name else list(fields)):
            fd = obj.fields.get(name) or obj.deleted_fields[name]
            entries.append(("field", f"{obj_name}.{name}", fd.spec()))
        for kind, key, data in entries:
            version = record_history(conn, kind, key, action, data, actor)
            audit.record(conn, actor, f"meta_{action}", object=kind, target=key, details={"version": version})

    def _build_field(self, reg: Registry, obj: ObjectDef, payload: dict, old: FieldDef | None) -> FieldDef:
        """Validate a field payload (common properties plus the type's own
        settings at the top level) into a FieldDef, or raise ValidationFailed."""
        errors: dict[str, str] = {}
        name = payload.get("api_name")
        if old is None and (msg := check_api_name(name)):
            errors["api_name"] = msg
        type_name = payload.get("type", old.type_name if old else None)
        if type_name not in type_names():
            errors["type"] = f"Unknown type '{type_name}'. Use one of: {', '.join(type_names())}."
            raise ValidationFailed(errors)
        ftype = get_type(type_name)
        setting_names = set(ftype.Settings().fields)
        errors.update(_unknown(payload, FIELD_PROPS + tuple(setting_names)))
        for derived in ftype.derived_settings:
            if derived in payload:
                errors[derived] = "Worked out by leadhub; do not send it."
        raw_settings = {k: v for k, v in (old.settings if old and old.type_name == type_name else {}).items()
                        if k not in ftype.derived_settings}
        raw_settings.update({k: v for k, v in payload.items() if k in setting_names})
        try:
            settings = ftype.load_settings(raw_settings)
        except mm.ValidationError as exc:
            errors.update({k: messages_text(v) for k, v in exc.normalized_messages().items()})
            settings = {}
        if "label" in payload or old is None:
            labels = _labels(payload.get("label"), errors)
        else:
            labels = old.labels
        help_text = old.help_text if old else None
        if "help_text" in payload:
            help_text = _help(payload["help_text"], errors)
        flags = _flags(payload, errors)
        base = dataclasses.asdict(old) if old else {}
        fd = FieldDef(
            object=obj.api_name, api_name=name, type_name=type_name, labels=labels, settings=settings,
            help_text=help_text,
            required=flags.get("required", base.get("required", False)),
            unique=flags.get("unique", base.get("unique", False)),
            indexed=flags.get("indexed", base.get("indexed", False)),
            read_only=flags.get("read_only", base.get("read_only", False)),
            track_history=flags.get("track_history", base.get("track_history", False)),
            default=payload.get("default", base.get("default")),
            position=flags.get("position", base.get("position", 0)),
            plugin=base.get("plugin"), id=base.get("id"))
        if errors:
            raise ValidationFailed(errors)
        fd.required = fd.required or ftype.always_required
        fd.unique = fd.unique or ftype.always_unique
        if ftype.computed:
            for prop in ("required", "default"):
                if getattr(fd, prop):
                    errors[prop] = f"A {type_name} field is computed; it cannot be {prop}."
        if fd.unique and not ftype.may_be_unique:
            errors["unique"] = f"A {type_name} field cannot be unique."
        if fd.default is not None and not ftype.computed:
            try:
                ftype.value_field(fd).deserialize(fd.default)
            except mm.ValidationError as exc:
                errors["default"] = messages_text(exc.messages)
        if errors:
            raise ValidationFailed(errors)
        candidate = dataclasses.replace(obj, fields={**obj.fields, name: fd})
        self._validate_in_object(reg, candidate, fd)
        fd.settings.update(ftype.derive_settings(fd, candidate, reg))
        return fd

    @staticmethod
    def _validate_in_object(reg: Registry, obj: ObjectDef, fd: FieldDef) -> None:
        errors = fd.type.check_settings(fd, obj, reg)
        if errors:
            raise ValidationFailed(errors)

    def _backfill(self, conn, reg: Registry, obj: ObjectDef, fd: FieldDef, now) -> None:
        """Give existing records a value for a new or changed computed field."""
        if fd.type.fills_existing == "computed":
            if self.backfill_computed is not None:
                self.backfill_computed(conn, reg, obj.api_name, fd, now)
        elif fd.type.fills_existing == "numbered":
            self._number_existing(conn, reg, obj, fd, now)

    @staticmethod
    def _number_existing(conn, reg: Registry, obj: ObjectDef, fd: FieldDef, now) -> None:
        """Existing records get numbers in creation order when an auto-number is added."""
        table = reg.table(obj.api_name)
        rows = conn.execute(sa.select(table.c.id, table.c.created_at).where(table.c[fd.column].is_(None))
                            .order_by(table.c.id)).all()
        if not rows:
            return
        period = fd.type.period(fd, now)
        conn.execute(t.autonumbers.insert().values(object=obj.api_name, field=fd.api_name,
                                                   period=period, value=len(rows)))
        conn.execute(sa.update(table).where(table.c.id == sa.bindparam("rid"))
                     .values({fd.column: sa.bindparam("num")}),
                     [{"rid": rid, "num": format_number(fd.settings["pattern"], now, i + 1)}
                      for i, (rid, _c) in enumerate(rows)])


def plain_definition(fd: FieldDef) -> dict:
    """A field's definition without where it sits and what leadhub derives."""
    return {k: v for k, v in fd.spec().items() if k != "position" and k not in fd.type.derived_settings}


def _dependents(reg: Registry, obj: ObjectDef, fd: FieldDef) -> list[str]:
    """Everything that reads `fd`, so that deleting it would break it."""
    users = []
    if obj.name_field == fd.api_name:
        users.append(f"{obj.api_name} (its name field)")
    for other in obj.fields.values():
        if other.type_name == "formula" and other is not fd:
            if fd.api_name in other.type.compile(other, obj).names:
                users.append(f"formula {other.api_name}")
        if other.settings.get("controlling_field") == fd.api_name:
            users.append(f"dependent picklist {other.api_name}")
    for parent, rollup in reg.rollups_fed_by(obj.api_name):
        if fd.api_name in (rollup.settings["child_field"], rollup.settings.get("aggregate_field")):
            users.append(f"roll-up {parent.api_name}.{rollup.api_name}")
    return users


_bump = bump_version


def _unknown(payload: dict, allowed) -> dict[str, str]:
    return {k: "Unknown property." for k in payload if k not in allowed}


def _labels(value: Any, errors: dict) -> dict:
    try:
        return normalise_labels(value)
    except ValueError as exc:
        errors["label"] = "Label is required." if value is None else str(exc)
        return {}


def _help(value: Any, errors: dict) -> dict | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = {"en": value, "zh_CN": value}
    if not isinstance(value, dict) or set(value) - {"en", "zh_CN"} or \
            any(not isinstance(v, str) or len(v) > 1000 for v in value.values()):
        errors["help_text"] = "Help text is text of at most 1000 characters, or {en, zh_CN}."
        return None
    return value


def _flags(payload: dict, errors: dict) -> dict:
    try:
        return _Flags().load({k: v for k, v in payload.items() if k in _Flags().fields})
    except mm.ValidationError as exc:
        errors.update({k: messages_text(v) for k, v in exc.normalized_messages().items()})
        return {}
