"""KindService: one storage, history, audit and cache path for every
metadata kind (see kinds.py for what a kind declares).

A save validates the whole definition (the kind's schema, then every
reference, then the kind's own check), writes the item and a history row,
an audit entry and the metadata version bump in one transaction, then calls
the kind's on_change in that same transaction. An update is a partial
payload laid over the current definition and validated whole. Deleting an
item that others reference is a 409 naming them; rolling back to a version
whose references no longer resolve is a 400 naming the reference."""
from __future__ import annotations

import difflib
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

import marshmallow as mm
import sqlalchemy as sa

from leadhub.metadata import kinds as k
from leadhub.metadata.kinds import Context, Item, Kind, Ref
from leadhub.platform import audit, permissions, tables as t
from leadhub.platform.db import utcnow
from leadhub.platform.errors import BadRequest, Conflict, NotFound
from leadhub.platform.permissions import Actor

if TYPE_CHECKING:
    from leadhub.metadata.registry import Registry


def bump_version(conn) -> None:
    """Every metadata change (objects, fields, items of every kind) calls
    this in its transaction, so every process reloads its snapshot."""
    conn.execute(sa.update(t.meta_version).values(version=t.meta_version.c.version + 1))


def record_history(conn, kind: str, key: str, action: str, data: dict | None, actor: Actor | None,
                   note: str | None = None) -> int:
    """Append one version to an item's (or object's, or field's) history."""
    h = t.meta_history
    last = conn.execute(sa.select(sa.func.max(h.c.version)).where(h.c.kind == kind, h.c.key == key)).scalar()
    version = (last or 0) + 1
    conn.execute(h.insert().values(kind=kind, key=key, version=version, action=action, data=data,
                                   actor_id=actor.user_id if actor else None, at=utcnow(), note=note))
    return version


def _note(payload: Any) -> str | None:
    note = payload.get(k.NOTE) if isinstance(payload, dict) else None
    if note is not None and (not isinstance(note, str) or len(note) > k.MAX_NOTE):
        raise BadRequest(f"{k.NOTE} is text of at most {k.MAX_NOTE} characters.", {k.NOTE: "Too long or not text."})
    return note


class KindService:
    def __init__(self, runtime):
        self.runtime = runtime
        self.db = runtime.db
        self.cache = runtime.cache
        self._kinds: dict[str, Kind] = {}
        self._by_url: dict[str, Kind] = {}

    # ------------------------------------------------------------ declarations
    def declare(self, kind: Kind) -> Kind:
        """Make a kind known (plugins call this from register()); declaring
        the same name again replaces it (a plugin re-registered in tests)."""
        old = self._kinds.get(kind.name)
        if old is not None:
            self._by_url.pop(old.url, None)
        if kind.url in self._by_url and self._by_url[kind.url].name != kind.name:
            raise ValueError(f"URL '{kind.url}' already belongs to kind '{self._by_url[kind.url].name}'.")
        self._kinds[kind.name] = kind
        self._by_url[kind.url] = kind
        return kind

    def kinds(self) -> list[Kind]:
        return list(self._kinds.values())

    def kind(self, name: str) -> Kind:
        """A kind by name ("duplicate_rule") or URL ("duplicate-rules")."""
        kind = self._kinds.get(name) or self._by_url.get(name)
        if kind is None:
            raise NotFound(f"No metadata kind '{name}'. Known: {', '.join(sorted(self._by_url))}.",
                           {"kind": "Unknown kind."})
        return kind

    def known(self, name: str) -> bool:
        return name in self._kinds or name in self._by_url

    # ------------------------------------------------------------ reading
    def items(self, kind: str, reg: "Registry | None" = None) -> dict[str, Item]:
        """Every item of a kind, by key, from the registry snapshot (no query
        while the metadata version stands still)."""
        reg = reg or self.cache.current()
        return reg.items.get(self.kind(kind).name, {})

    def find(self, kind: str, key: str, reg: "Registry | None" = None) -> Item:
        """An item by key, or by its numeric id (URLs of older clients)."""
        kd = self.kind(kind)
        items = self.items(kd.name, reg)
        item = items.get(str(key))
        if item is None and str(key).isdigit():
            item = next((i for i in items.values() if i.id == int(key)), None)
        if item is None:
            raise NotFound(f"No {kd.label('en').lower().rstrip('s')} '{key}'.", {"key": "No such item."})
        return item

    def view(self, item: Item) -> dict:
        """The API's view of an item: its definition plus id, key, version."""
        kd = self.kind(item.kind)
        out = {**item.data, "key": item.key, "id": item.id, "version": item.version, "plugin": item.plugin,
               "created_by": item.created_by, "updated_at": item.updated_at}
        if kd.present:
            out.update(kd.present(self.runtime, item))
        return out

    def list(self, actor: Actor, kind: str, where: dict[str, str] | None = None) -> list[dict]:
        """Items of a kind, those whose top-level properties equal `where`'s
        (text as in a query string) when given."""
        kd = self.kind(kind)
        if kd.read_admin:
            permissions.require_admin(actor)
        items = list(self.items(kd.name).values())
        if kd.may_read:
            items = [i for i in items if kd.may_read(actor, i)]
        if where:
            fields = kd.schema().fields
            for prop, value in where.items():
                if prop not in fields:
                    raise BadRequest(f"{prop} is not a property of {kd.label('en').lower()}.", {prop: "Unknown property."})
                choices = next((v.choices for v in fields[prop].validators if isinstance(v, mm.validate.OneOf)), None)
                if choices is not None and value not in choices:
                    raise BadRequest(f"{prop} is one of: {', '.join(choices)}.", {prop: "Not one of the choices."})
            items = [i for i in items if all(_text(i.data.get(p)) == v for p, v in where.items())]
        if kd.order:
            items.sort(key=kd.order)
        return [self.view(i) for i in items]

    def get(self, actor: Actor, kind: str, key: str) -> dict:
        return self.view(self.readable(actor, kind, key))

    def readable(self, actor: Actor, kind: str, key: str) -> Item:
        """An item the actor may read, or a 404 (403 for kinds only admins read)."""
        kd = self.kind(kind)
        if kd.read_admin:
            permissions.require_admin(actor)
        item = self.find(kd.name, key)
        if kd.may_read and not kd.may_read(actor, item):
            raise NotFound(f"No {kd.label('en').lower().rstrip('s')} '{key}'.", {"key": "No such item."})
        return item

    # ------------------------------------------------------------ writing
    def create(self, actor: Actor, kind: str, payload: Any, *, plugin: str | None = None) -> dict:
        kd = self.kind(kind)
        self._may_write(actor, kd, None, None)
        _no_presented(kd, payload, {})
        data = k.load(kd, payload)
        self._may_write(actor, kd, data, None)
        with _race(kd), self.db.write() as conn:
            ctx = self._context(conn, actor)
            item = self._insert(ctx, kd, data, _note(payload), plugin)
            return {**self.view(item), **ctx.extras}

    def update(self, actor: Actor, kind: str, key: str, payload: Any, *, replace: bool = False) -> dict:
        """A partial payload laid over the current definition (or, with
        replace, the whole new definition), validated whole. A payload that
        carries the `version` it was read at is refused (409) when someone
        saved since."""
        kd = self.kind(kind)
        self._may_write(actor, kd, None, None)
        if not isinstance(payload, dict):
            raise BadRequest("The body must be a JSON object.", {"body": "Must be an object."})
        with _race(kd), self.db.write() as conn:
            ctx = self._context(conn, actor)
            old = self.find(kd.name, key, ctx.registry)
            self._may_write(actor, kd, None, old)
            seen = payload.get("version")
            if "version" not in kd.schema._declared_fields and seen is not None and seen != old.version:
                # the client read an older version: saving would undo someone else's change
                raise Conflict(f"{kd.label('en')} '{old.key}' was changed meanwhile (now version {old.version}); "
                               "reload it.", {"version": f"Stale: the current version is {old.version}."})
            if kd.presented:
                _no_presented(kd, payload, self.view(old))
            given = k.definition_of(kd, payload)
            kp = kd.key_property
            if kp and kp in given and str(given[kp]) != old.key:
                raise BadRequest(f"{kp} cannot change; create a new item instead.", {kp: "Cannot change."})
            data = k.load(kd, given if replace else {**old.data, **given})
            self._may_write(actor, kd, data, old)
            item = self._save(ctx, kd, old, data, _note(payload))
            return {**self.view(item), **ctx.extras}

    def delete(self, actor: Actor, kind: str, key: str) -> dict:
        kd = self.kind(kind)
        self._may_write(actor, kd, None, None)
        if kd.singleton:
            raise Conflict(f"{kd.label('en')} cannot be deleted; change it instead.", {"key": "Singleton."})
        with _race(kd), self.db.write() as conn:
            ctx = self._context(conn, actor)
            old = self.find(kd.name, key, ctx.registry)
            self._may_write(actor, kd, None, old)
            users = self.referrers(ctx.registry, kd.name, old.key)
            if users:
                raise Conflict(f"{kd.label('en')} '{old.key}' is used by {', '.join(users)}; change those first.",
                               {"key": "In use."})
            if kd.check_delete:
                kd.check_delete(ctx, old)
            conn.execute(sa.delete(t.meta_items).where(t.meta_items.c.id == old.id))
            record_history(conn, kd.name, old.key, "deleted", None, actor)
            self._changed(ctx, kd, old, None, "meta_deleted")
            return ctx.extras

    @contextmanager
    def writing(self, actor: Actor) -> Iterator[Context]:
        """One admin's write in which several items change together (put, remove)."""
        permissions.require_admin(actor)
        with self.db.write() as conn:
            yield self._context(conn, actor)

    def put(self, ctx: Context, kind: str, data: dict, *, plugin: str | None = None, note: str | None = None) -> Item:
        """Create or replace an item inside the caller's write (plugins and
        bundles install through this)."""
        kd = self.kind(kind)
        data = k.load(kd, data)
        old = ctx.registry.items.get(kd.name, {}).get(kd.key_of(data))
        if old is None:
            return self._insert(ctx, kd, data, note, plugin)
        return self._save(ctx, kd, old, data, note)

    def definition(self, ctx: Context, kind: str, data: dict) -> dict:
        """What a definition becomes once validated (the form it is stored in),
        saving nothing: plugins compare what they ship with what is stored."""
        kd = self.kind(kind)
        return self._validate(ctx, kd, k.load(kd, data), None)

    def remove(self, ctx: Context, kind: str, key: str) -> None:
        """Delete inside the caller's write, references checked (bundle uninstall)."""
        kd = self.kind(kind)
        old = ctx.registry.items.get(kd.name, {}).get(key)
        if old is None:
            return
        users = self.referrers(ctx.registry, kd.name, old.key)
        if users:
            raise Conflict(f"{kd.label('en')} '{old.key}' is used by {', '.join(users)}.", {"key": "In use."})
        if kd.check_delete:
            kd.check_delete(ctx, old)
        ctx.conn.execute(sa.delete(t.meta_items).where(t.meta_items.c.id == old.id))
        record_history(ctx.conn, kd.name, old.key, "deleted", None, ctx.actor)
        self._changed(ctx, kd, old, None, "meta_deleted")

    # ------------------------------------------------------------ history
    def versions(self, actor: Actor, kind: str, key: str) -> list[dict]:
        """Every saved state, newest first; also for a deleted item."""
        permissions.require_admin(actor)
        name = self._history_kind(kind)
        h = t.meta_history
        with self.db.read() as conn:
            rows = conn.execute(sa.select(h).where(h.c.kind == name, h.c.key == str(key))
                                .order_by(h.c.version.desc())).mappings().all()
            if not rows and self.known(kind) and str(key).isdigit():   # an item addressed by id
                item = self.find(kind, key)
                return self.versions(actor, kind, item.key)
        if not rows:
            raise NotFound(f"No history for {name} '{key}'.", {"key": "No such item."})
        return [{"version": r["version"], "action": r["action"], "at": r["at"], "actor_id": r["actor_id"],
                 "note": r["note"], "current": i == 0 and r["action"] != "deleted", "data": r["data"]}
                for i, r in enumerate(rows)]

    def diff(self, actor: Actor, kind: str, key: str, a: int, b: int) -> dict:
        """What changed between two versions: each changed property path with
        its two values, and a unified diff of any multi-line text."""
        versions = {v["version"]: v["data"] for v in self.versions(actor, kind, key)}
        for name, n in (("from", a), ("to", b)):
            if n not in versions:
                raise NotFound(f"{kind} '{key}' has no version {n}.", {name: "No such version."})
        old, new = _paths(versions[a] or {}), _paths(versions[b] or {})
        changed, text = {}, {}
        for path in sorted(set(old) | set(new)):
            if old.get(path) == new.get(path):
                continue
            changed[path] = {"from": old.get(path), "to": new.get(path)}
            if any(isinstance(v, str) and "\n" in v for v in (old.get(path), new.get(path))):
                text[path] = "".join(difflib.unified_diff(
                    (old.get(path) or "").splitlines(keepends=True), (new.get(path) or "").splitlines(keepends=True),
                    f"{key} v{a}", f"{key} v{b}"))
        return {"from": a, "to": b, "changed": changed, "text": text}

    def rollback(self, actor: Actor, kind: str, key: str, version: Any) -> dict:
        """Save an earlier version's definition as a new version (history is
        never rewritten); brings back a deleted item."""
        permissions.require_admin(actor)
        kd = self.kind(kind)
        if isinstance(version, bool) or not isinstance(version, int):
            raise BadRequest("version must be a version number.", {"version": "Must be an integer."})
        if str(key).isdigit() and str(key) not in self.items(kd.name):
            key = self.find(kd.name, key).key
        data = {v["version"]: v["data"] for v in self.versions(actor, kd.name, key)}.get(version)
        if data is None:
            raise NotFound(f"{kd.label('en')} '{key}' has no version {version} to roll back to.",
                           {"version": "No such version."})
        note = f"rolled back to version {version}"
        with _race(kd), self.db.write() as conn:
            ctx = self._context(conn, actor)
            old = ctx.registry.items.get(kd.name, {}).get(str(key))
            loaded = k.load(kd, data)
            item = self._insert(ctx, kd, loaded, note, None) if old is None else self._save(ctx, kd, old, loaded, note)
            return {**self.view(item), **ctx.extras}

    # ------------------------------------------------------------ references
    def referrers(self, reg: "Registry", target: str, key: str) -> list[str]:
        """Items that reference (target, key), as readable names with where."""
        index = reg.memo("kind_referrers", lambda: self._reference_index(reg))
        return [f"{self._kinds[kind].label('en').lower().rstrip('s')} '{ikey}' ({path})"
                for kind, ikey, path in index.get((target, key), [])]

    def _reference_index(self, reg: "Registry") -> dict[tuple[str, str], list[tuple[str, str, str]]]:
        index: dict[tuple[str, str], list] = {}
        for kind_name, items in reg.items.items():
            kd = self._kinds.get(kind_name)
            if kd is None:
                continue            # a plugin that is not active here: its items are inert
            for item in items.values():
                for ref in kd.refs(item.data):
                    if ref.soft:
                        continue        # does not stop its target being deleted
                    index.setdefault((ref.target, ref.key), []).append((kind_name, item.key, ref.path))
                    if ref.target == "field":      # a field's object is needed too
                        index.setdefault(("object", ref.key.partition(".")[0]), []).append(
                            (kind_name, item.key, ref.path))
        return index

    def belonging_to(self, reg: "Registry", object_name: str) -> list[Item]:
        """Items that belong to an object (its layouts, its shared views)."""
        return [item for kd in self._kinds.values() if kd.belongs_to
                for item in reg.items.get(kd.name, {}).values() if item.data.get(kd.belongs_to) == object_name]

    def _exists(self, conn) -> Any:
        def exists(target: str, key: str) -> bool:
            if target == "user":
                col = t.users.c.login
            elif target == "role":
                col = t.roles.c.api_name
            else:
                return False
            return conn.execute(sa.select(sa.literal(1)).where(col == key)).first() is not None
        return exists

    # ------------------------------------------------------------ steps
    @staticmethod
    def _may_write(actor: Actor, kd: Kind, data: dict | None, old: Item | None) -> None:
        """Admins write every kind; a kind with may_write also lets others
        write what it allows (asked before loading, then with what is known)."""
        if kd.may_write is None:
            permissions.require_admin(actor)
        elif data is not None or old is not None:
            kd.may_write(actor, data, old)
        elif actor is None:
            raise permissions.Forbidden("Sign in first.")

    def _context(self, conn, actor: Actor) -> Context:
        return Context(runtime=self.runtime, conn=conn, registry=self.cache.current(conn), actor=actor)

    def _validate(self, ctx: Context, kd: Kind, data: dict, old: Item | None) -> dict:
        k.check_references(kd, data, ctx.registry, self._exists(ctx.conn))
        if kd.check:
            data = kd.check(ctx, data, old) or data
        return data

    def _insert(self, ctx: Context, kd: Kind, data: dict, note: str | None, plugin: str | None) -> Item:
        data = self._validate(ctx, kd, data, None)
        key = kd.key_of(data)
        if not key or len(key) > 200:
            raise k.invalid(kd, {kd.key_field: "A key of 1-200 characters is required."})
        m = t.meta_items
        if ctx.conn.execute(sa.select(m.c.id).where(m.c.kind == kd.name, m.c.key == key)).first():
            raise Conflict(f"{kd.label('en')}: '{key}' already exists.", {kd.key_field: "Already taken."})
        now = utcnow()
        version = record_history(ctx.conn, kd.name, key, "created", data, ctx.actor, note)
        item_id = ctx.conn.execute(m.insert().values(
            kind=kd.name, key=key, data=data, version=version, plugin=plugin, created_by=ctx.actor.user_id,
            created_at=now, updated_by=ctx.actor.user_id, updated_at=now)).inserted_primary_key[0]
        item = Item(kind=kd.name, key=key, data=data, id=item_id, version=version, plugin=plugin, updated_at=now,
                    created_by=ctx.actor.user_id)
        self._changed(ctx, kd, None, item, "meta_created")
        return item

    def _save(self, ctx: Context, kd: Kind, old: Item, data: dict, note: str | None) -> Item:
        data = self._validate(ctx, kd, data, old)
        if kd.key_of(data) != old.key:         # a key made from the definition (a blacklist's type:value)
            if not kd.renamable:
                raise BadRequest(f"This change makes a different {kd.label('en').lower().rstrip('s')}: delete this "
                                 "one and create the new one.", {kd.key_field: "Cannot change."})
            old = self._rename(ctx, kd, old, kd.key_of(data))
        if data == old.data:
            return old                      # nothing changed: no version, no bump
        now = utcnow()
        h = t.meta_history
        version = (ctx.conn.execute(sa.select(sa.func.max(h.c.version)).where(
            h.c.kind == kd.name, h.c.key == old.key)).scalar() or 0) + 1
        # only over the version this write read: a save committed meanwhile wins, this one is refused
        saved = ctx.conn.execute(sa.update(t.meta_items).where(
            t.meta_items.c.id == old.id, t.meta_items.c.version == old.version).values(
            data=data, version=version, updated_by=ctx.actor.user_id, updated_at=now))
        if saved.rowcount != 1:
            raise Conflict(f"{kd.label('en')} '{old.key}' was changed meanwhile; reload it.",
                           {"version": "Stale: saved by someone else meanwhile."})
        record_history(ctx.conn, kd.name, old.key, "updated", data, ctx.actor, note)
        item = Item(kind=kd.name, key=old.key, data=data, id=old.id, version=version, plugin=old.plugin,
                    updated_at=now, created_by=old.created_by)
        self._changed(ctx, kd, old, item, "meta_updated")
        return item

    def _rename(self, ctx: Context, kd: Kind, old: Item, key: str) -> Item:
        """Give an item a new key; its history moves with it. Refused while
        other items name the old key, or when the new one is taken."""
        if not key or len(key) > 200:
            raise k.invalid(kd, {kd.key_field: "A key of 1-200 characters is required."})
        users = self.referrers(ctx.registry, kd.name, old.key)
        if users:
            raise Conflict(f"{kd.label('en')} '{old.key}' is used by {', '.join(users)}; it cannot be renamed.",
                           {kd.key_field: "In use."})
        m, h = t.meta_items, t.meta_history
        if ctx.conn.execute(sa.select(m.c.id).where(m.c.kind == kd.name, m.c.key == key)).first() \
                or ctx.conn.execute(sa.select(h.c.id).where(h.c.kind == kd.name, h.c.key == key).limit(1)).first():
            raise Conflict(f"{kd.label('en')}: '{key}' already exists or existed.", {kd.key_field: "Already taken."})
        ctx.conn.execute(sa.update(m).where(m.c.id == old.id).values(key=key))
        ctx.conn.execute(sa.update(h).where(h.c.kind == kd.name, h.c.key == old.key).values(key=key))
        return Item(kind=old.kind, key=key, data=old.data, id=old.id, version=old.version, plugin=old.plugin,
                    updated_at=old.updated_at, created_by=old.created_by)

    def _changed(self, ctx: Context, kd: Kind, old: Item | None, new: Item | None, action: str) -> None:
        item = new or old
        bump_version(ctx.conn)
        audit.record(ctx.conn, ctx.actor, action, object=kd.name, target=item.key,
                     details={"version": new.version if new else None})
        ctx.registry = self.cache.current(ctx.conn)     # later steps of this write see the change
        if kd.on_change:
            kd.on_change(ctx, old, new)

    def _history_kind(self, kind: str) -> str:
        return kind if kind in ("object", "field") else self.kind(kind).name


@contextmanager
def _race(kd: Kind):
    """Two writes of one key at the same moment: the unique indexes catch
    what the checks inside each could not see; a 409 like the checks'."""
    try:
        yield
    except sa.exc.IntegrityError:
        raise Conflict(f"{kd.label('en')}: the same item was saved by someone else at the same moment; reload it.",
                       {kd.key_field: "Saved meanwhile."}) from None


def _no_presented(kd: Kind, payload: Any, shown: dict) -> None:
    """What a kind only shows (a form's public key) may come back unchanged
    with the rest of the view, never as a new value."""
    if not isinstance(payload, dict):
        return
    bad = {p: "Set by leadhub; it cannot be given." for p in kd.presented
           if p in payload and (p not in shown or payload[p] != shown[p])}
    if bad:
        raise BadRequest(f"{', '.join(bad)} cannot be set.", bad)


def _text(value: Any) -> str:
    return "true" if value is True else "false" if value is False else "" if value is None else str(value)


def _paths(value: Any, prefix: str = "") -> dict[str, Any]:
    """A definition flattened to {"conditions.0.field": value} for diffs."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for name, v in value.items():
            out.update(_paths(v, f"{prefix}.{name}" if prefix else str(name)))
        return out
    if isinstance(value, list) and value and any(isinstance(v, (dict, list)) for v in value):
        out = {}
        for i, v in enumerate(value):
            out.update(_paths(v, f"{prefix}.{i}" if prefix else str(i)))
        return out
    return {prefix: value} if prefix else {}


__all__ = ["KindService", "bump_version", "record_history", "Ref"]
