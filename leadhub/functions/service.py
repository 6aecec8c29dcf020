"""FunctionService: functions as versioned metadata.

Every save compiles the code, bumps the metadata version (so every process
reloads its view of the functions, as it does for objects and fields) and
keeps the previous definition as a version one can diff and roll back to."""
from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from leadhub.functions import definitions as d
from leadhub.functions.definitions import FunctionDef
from leadhub.functions.tables import function_versions, functions
from leadhub.metadata.kind_service import bump_version
from leadhub.platform import audit, permissions, tables as t
from leadhub.platform.db import utcnow
from leadhub.platform.errors import BadRequest, Conflict, NotFound
from leadhub.platform.permissions import Actor

if TYPE_CHECKING:
    from leadhub.platform.runtime import Runtime


def _row_to_def(r) -> FunctionDef:
    return FunctionDef(id=r.id, api_name=r.api_name, labels=r.labels, kind=r.kind, object=r.object,
                       active=r.active, version=r.version, run_as=r.run_as, owner=r.owner,
                       description=r.description, definition=r.definition)


class FunctionService:
    def __init__(self, runtime: "Runtime"):
        self.runtime = runtime
        self.db = runtime.db

    # ------------------------------------------------------------ reading
    def all(self) -> dict[str, FunctionDef]:
        """Live functions by api name, loaded once per metadata version."""
        reg = self.runtime.cache.current()
        return reg.memo("functions", self._load)

    def _load(self) -> dict[str, FunctionDef]:
        with self.db.read() as conn:
            rows = conn.execute(sa.select(functions).where(functions.c.deleted_at.is_(None))).all()
        return {r.api_name: _row_to_def(r) for r in rows}

    def bound(self, registry, kind: str, obj: str, event: str | None = None) -> list[FunctionDef]:
        """Active functions of `kind` on `obj` (for `event`), in run order;
        memoised on the registry the write runs on, so a write with no
        functions pays a dictionary lookup."""
        index = registry.memo("functions_bound", lambda: self._index(self.all()))
        return [f for f in index.get((kind, obj), ()) if event is None or event in (f.events or ())]

    @staticmethod
    def _index(fns: dict[str, FunctionDef]) -> dict:
        index: dict[tuple, list[FunctionDef]] = {}
        for f in fns.values():
            if f.active:
                index.setdefault((f.kind, f.object if f.kind != "hook" else f.hook), []).append(f)
        for lst in index.values():
            lst.sort(key=lambda f: (f.position or 0, f.api_name))
        return index

    def get(self, name: str) -> FunctionDef:
        fn = self.all().get(name)
        if fn is None:
            raise NotFound(f"No function '{name}'.")
        return fn

    def list(self, actor: Actor, kind: str | None = None, obj: str | None = None) -> list[dict]:
        permissions.require_admin(actor)
        fns = sorted(self.all().values(), key=lambda f: f.api_name)
        return [f.payload() for f in fns if (kind is None or f.kind == kind) and (obj is None or f.object == obj)]

    # ------------------------------------------------------------ writing
    def create(self, actor: Actor, payload: Any) -> dict:
        permissions.require_admin(actor)
        with self.db.write() as conn:
            reg = self.runtime.cache.current(conn)
            data = d.validate(payload, reg)
            if conn.execute(sa.select(functions.c.id).where(functions.c.api_name == data["api_name"],
                                                            functions.c.deleted_at.is_(None))).first():
                raise Conflict(f"A function '{data['api_name']}' exists.", {"api_name": "Already taken."})
            run_as = self._run_as(conn, actor, data["run_as"])
            now = utcnow()
            values = self._columns(data, run_as, now, version=1)
            values.update(owner=actor.user_id, created_at=now)
            fid = conn.execute(sa.insert(functions).values(values)).inserted_primary_key[0]
            self._keep_version(conn, fid, 1, data, actor, payload.get("note"), now)
            bump_version(conn)
            audit.record(conn, actor, "function_created", object="function", target=fid,
                         details={"api_name": data["api_name"], "kind": data["kind"]})
        return self.get(data["api_name"]).payload()

    def update(self, actor: Actor, name: str, payload: Any) -> dict:
        permissions.require_admin(actor)
        if not isinstance(payload, dict):
            raise BadRequest("A function must be a JSON object.", {"function": "Must be an object."})
        with self.db.write() as conn:
            row = self._row(conn, name)
            reg = self.runtime.cache.current(conn)
            data = d.validate(payload, reg, current=self._stored(row))
            self._save(conn, actor, row, data, payload.get("note"))
        return self.get(name).payload()

    def delete(self, actor: Actor, name: str) -> None:
        """Soft delete: the execution log and versions keep naming it."""
        permissions.require_admin(actor)
        with self.db.write() as conn:
            row = self._row(conn, name)
            conn.execute(sa.update(functions).where(functions.c.id == row.id)
                         .values(deleted_at=utcnow(), active=False, next_run_at=None))
            bump_version(conn)
            audit.record(conn, actor, "function_deleted", object="function", target=row.id,
                         details={"api_name": name})

    def versions(self, actor: Actor, name: str) -> list[dict]:
        permissions.require_admin(actor)
        with self.db.read() as conn:
            row = self._row(conn, name)
            rows = conn.execute(sa.select(function_versions).where(function_versions.c.function_id == row.id)
                                .order_by(function_versions.c.version.desc())).all()
        return [{"version": r.version, "saved_by": r.saved_by, "saved_at": r.saved_at, "note": r.note,
                 "current": r.version == row.version, "function": r.snapshot} for r in rows]

    def diff(self, actor: Actor, name: str, a: int, b: int) -> dict:
        """A unified diff of the code (or condition) of versions a and b, and
        the other settings that differ."""
        versions = {v["version"]: v["function"] for v in self.versions(actor, name)}
        for key, n in (("from", a), ("to", b)):
            if n not in versions:
                raise NotFound(f"Function '{name}' has no version {n}.", {key: "No such version."})
        old, new = versions[a], versions[b]
        text = lambda s: (s.get("code") or s.get("condition") or "").splitlines(keepends=True)  # noqa: E731
        code_diff = "".join(difflib.unified_diff(text(old), text(new), f"{name} v{a}", f"{name} v{b}"))
        changed = {k: {"from": old.get(k), "to": new.get(k)} for k in sorted(set(old) | set(new))
                   if k not in ("code", "condition") and old.get(k) != new.get(k)}
        return {"from": a, "to": b, "code": code_diff, "changed": changed}

    def rollback(self, actor: Actor, name: str, version: int) -> dict:
        """Save version `version`'s definition as a new version (history is
        never rewritten)."""
        permissions.require_admin(actor)
        with self.db.write() as conn:
            row = self._row(conn, name)
            snap = conn.execute(sa.select(function_versions.c.snapshot).where(
                function_versions.c.function_id == row.id, function_versions.c.version == version)).scalar()
            if snap is None:
                raise NotFound(f"Function '{name}' has no version {version}.", {"version": "No such version."})
            reg = self.runtime.cache.current(conn)
            data = d.validate(snap, reg, current=self._stored(row))
            self._save(conn, actor, row, data, f"rolled back to version {version}")
        return self.get(name).payload()

    def set_next_run(self, conn, fn_id: int, when) -> None:
        conn.execute(sa.update(functions).where(functions.c.id == fn_id).values(next_run_at=when))

    # ------------------------------------------------------------ steps
    def _row(self, conn, name: str):
        row = conn.execute(sa.select(functions).where(functions.c.api_name == name,
                                                      functions.c.deleted_at.is_(None))).first()
        if row is None:
            raise NotFound(f"No function '{name}'.")
        return row

    @staticmethod
    def _stored(row) -> dict:
        return {"api_name": row.api_name, "label": row.labels, "description": row.description, "kind": row.kind,
                "object": row.object, "active": row.active, "run_as": row.run_as, **row.definition}

    def _save(self, conn, actor: Actor, row, data: dict, note: str | None) -> None:
        now = utcnow()
        run_as = self._run_as(conn, actor, data["run_as"])
        version = row.version + 1
        conn.execute(sa.update(functions).where(functions.c.id == row.id)
                     .values(self._columns(data, run_as, now, version)))
        self._keep_version(conn, row.id, version, data, actor, note, now)
        bump_version(conn)
        audit.record(conn, actor, "function_updated", object="function", target=row.id,
                     details={"api_name": row.api_name, "version": version})

    def _columns(self, data: dict, run_as: int | None, now, version: int) -> dict:
        next_run = None
        if data["kind"] == "scheduled" and data["active"]:
            next_run = d.next_run(data["schedule"], data["timezone"] or self.runtime.config.timezone, now)
        return {"api_name": data["api_name"], "labels": data["label"], "description": data["description"],
                "kind": data["kind"], "object": data["object"], "active": data["active"], "run_as": run_as,
                "definition": {k: data[k] for k in d.DEFINITION if data.get(k) is not None},
                "version": version, "next_run_at": next_run, "updated_at": now}

    @staticmethod
    def _keep_version(conn, fid: int, version: int, data: dict, actor: Actor, note, now) -> None:
        if note is not None and (not isinstance(note, str) or len(note) > 200):
            raise BadRequest("note must be text of at most 200 characters.", {"note": "Too long or not text."})
        conn.execute(sa.insert(function_versions).values(
            function_id=fid, version=version, snapshot=data, saved_by=actor.user_id, saved_at=now, note=note))

    @staticmethod
    def _run_as(conn, actor: Actor, run_as) -> int | None:
        """A named user the function runs as: an explicit grant by an admin,
        checked to exist and be active."""
        if run_as is None:
            return None
        col = t.users.c.id if isinstance(run_as, int) else t.users.c.login
        uid = conn.execute(sa.select(t.users.c.id).where(col == run_as, t.users.c.active.is_(True))).scalar()
        if uid is None:
            raise BadRequest(f"No active user '{run_as}' to run as.", {"run_as": "Unknown or inactive user."})
        return uid
