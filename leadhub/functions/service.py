"""FunctionService: functions as the metadata kind `function`.

A function is an item of the kind (metadata/kinds.py): every save compiles
its code (definitions.validate), keeps a version, writes an audit entry and
bumps the metadata version through runtime.kinds, like every other kind, so
it travels in bundles too. What only this instance knows stays out of the
definition: when a scheduled function runs next (lh_function_schedules) and
which user a run-as login is here (resolved per metadata version).

The service keeps the function API's own shapes (/meta/functions, its
versions with `function` snapshots, a unified diff of the code)."""
from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

import marshmallow as mm
import sqlalchemy as sa

from leadhub.functions import definitions as d
from leadhub.functions.definitions import FunctionDef
from leadhub.functions.tables import schedules
from leadhub.metadata.kinds import Context, Kind, Ref
from leadhub.platform import permissions, tables as t
from leadhub.platform.db import utcnow
from leadhub.platform.errors import BadRequest, NotFound
from leadhub.platform.permissions import Actor

if TYPE_CHECKING:
    from leadhub.runtime import Runtime

KIND_NAME = "function"


# The properties a function may have (anything else is refused);
# definitions.validate checks their values.
_FunctionSchema = mm.Schema.from_dict(
    {name: mm.fields.Raw(allow_none=True, required=name == "api_name") for name in d.COLUMNS + d.DEFINITION},
    name="FunctionSchema")


def _references(data: dict) -> list[Ref]:
    refs = [Ref("object", data["object"], "object")] if isinstance(data.get("object"), str) else []
    if isinstance(data.get("run_as"), str):
        refs.append(Ref("user", data["run_as"], "run_as"))
    for role in data.get("roles") or () if isinstance(data.get("roles"), list) else ():
        if isinstance(role, str):
            refs.append(Ref("role", role, "roles"))
    if isinstance(data.get("object"), str) and isinstance(data.get("error_field"), str):
        refs.append(Ref("field", f"{data['object']}.{data['error_field']}", "error_field"))
    return refs


def _check(ctx: Context, data: dict, old) -> dict:
    if old is not None and data.get("kind") != old.data.get("kind"):
        raise BadRequest("The function is not valid.", {"kind": "Cannot be changed; create a new function instead."})
    out = d.validate({k: v for k, v in data.items() if v is not None}, ctx.registry)
    out["run_as"] = _run_as_login(ctx.conn, out["run_as"])
    return {k: v for k, v in out.items() if v is not None}


def _run_as_login(conn, run_as) -> str | None:
    """A named user the function runs as (an explicit grant by an admin), kept
    by login so the definition means the same in another instance."""
    if run_as is None:
        return None
    col = t.users.c.id if isinstance(run_as, int) else t.users.c.login
    login = conn.execute(sa.select(t.users.c.login).where(col == run_as, t.users.c.active.is_(True))).scalar()
    if login is None:
        raise BadRequest(f"No active user '{run_as}' to run as.", {"run_as": "Unknown or inactive user."})
    return login


def _on_change(ctx: Context, old, new) -> None:
    """A scheduled function's next run, worked out again at every save."""
    name = (new or old).key
    ctx.conn.execute(sa.delete(schedules).where(schedules.c.function == name))
    if new is not None and new.data["kind"] == "scheduled" and new.data["active"]:
        tz = new.data.get("timezone") or ctx.runtime.config.timezone
        ctx.conn.execute(schedules.insert().values(function=name, next_run_at=d.next_run(
            new.data["schedule"], tz, utcnow())))


KIND = Kind(name=KIND_NAME, url="functions", schema=_FunctionSchema, key="api_name",
            labels={"en": "Functions", "zh_CN": "函数"}, references=_references, check=_check,
            on_change=_on_change, read_admin=True, editor="admin.functions", widgets={"code": "code"},
            own_api=True)


class FunctionService:
    def __init__(self, runtime: "Runtime"):
        self.runtime = runtime
        self.db = runtime.db
        runtime.kinds.declare(KIND)

    # ------------------------------------------------------------ reading
    def all(self) -> dict[str, FunctionDef]:
        """Functions by api name, built once per metadata version."""
        reg = self.runtime.cache.current()
        return reg.memo("functions", lambda: self._load(reg))

    def _load(self, reg) -> dict[str, FunctionDef]:
        items = reg.items.get(KIND_NAME, {})
        logins = {i.data["run_as"] for i in items.values() if i.data.get("run_as")}
        ids = {}
        if logins:
            with self.db.read() as conn:
                ids = dict(conn.execute(sa.select(t.users.c.login, t.users.c.id)
                                        .where(t.users.c.login.in_(logins))).all())
        return {key: _definition(item, ids) for key, item in items.items()}

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
        self.runtime.kinds.create(actor, KIND_NAME, _with_note(payload))
        return self.get(payload["api_name"]).payload()

    def update(self, actor: Actor, name: str, payload: Any) -> dict:
        if not isinstance(payload, dict):
            raise BadRequest("A function must be a JSON object.", {"function": "Must be an object."})
        permissions.require_admin(actor)
        if "api_name" in payload and payload["api_name"] != name:
            raise BadRequest("The function is not valid.",
                             {"api_name": "Cannot be changed; create a new function instead."})
        self.runtime.kinds.update(actor, KIND_NAME, name, _with_note(payload))
        return self.get(name).payload()

    def delete(self, actor: Actor, name: str) -> None:
        """The execution log and the versions keep naming it."""
        self.runtime.kinds.delete(actor, KIND_NAME, name)

    def versions(self, actor: Actor, name: str) -> list[dict]:
        return [{"version": v["version"], "saved_by": v["actor_id"], "saved_at": v["at"], "note": v["note"],
                 "current": v["current"], "function": v["data"]}
                for v in self.runtime.kinds.versions(actor, KIND_NAME, name) if v["data"] is not None]

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
        self.runtime.kinds.rollback(actor, KIND_NAME, name, version)
        return self.get(name).payload()

    def next_runs(self, conn, now) -> list[tuple[str, Any]]:
        """Scheduled functions due at `now`: (name, the due time claimed against)."""
        s = schedules
        return [(r.function, r.next_run_at) for r in conn.execute(
            sa.select(s.c.function, s.c.next_run_at).where(s.c.next_run_at <= now))]

    def claim(self, conn, name: str, due, nxt) -> bool:
        """Move a due function to its next run, unless another process did."""
        s = schedules
        return conn.execute(sa.update(s).where(s.c.function == name, s.c.next_run_at == due)
                            .values(next_run_at=nxt)).rowcount == 1


def _with_note(payload: Any) -> Any:
    """The function API calls its version note `note`."""
    if isinstance(payload, dict) and "note" in payload:
        payload = {k: v for k, v in payload.items() if k != "note"} | {"version_note": payload["note"]}
    return payload


def _definition(item, user_ids: dict[str, int]) -> FunctionDef:
    data = item.data
    return FunctionDef(id=item.id, api_name=item.key, labels=data["label"], kind=data["kind"],
                       object=data.get("object"), active=data["active"], version=item.version,
                       run_as=user_ids.get(data["run_as"]) if data.get("run_as") else None, owner=item.created_by,
                       description=data.get("description"),
                       definition={k: data[k] for k in d.DEFINITION if data.get(k) is not None})
