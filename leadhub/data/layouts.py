"""Layouts, list views and the menu: what the designer and the record pages
ask for, on top of the layout, list_view and menu metadata kinds
(view_kinds.py) and the rules they are checked against (layout_rules.py).

Layouts and shared list views are items of their kinds: stored, versioned,
audited and cached like every other kind, and addressed here by the ids the
designer's URLs use. Personal list views are a user's own preferences, kept
in lh_list_views. What a user sees is cut by the one permission check
(permissions.py): hidden fields are absent, fields he may not write come
back read-only, and list view queries compile through the query compiler
for him."""
from __future__ import annotations

import hashlib
import re
from typing import Any

import sqlalchemy as sa

from leadhub.data.layout_rules import (
    DEFAULT_SORT, HIDDEN_SYSTEM, MAX_PERSONAL_VIEWS, STANDARD_BUTTONS, check_text, default_definition,
    filter_fields, related_alive, related_live_parts, validate_layout, validate_view)
from leadhub.data.query import QueryCompiler
from leadhub.data.view_kinds import KINDS
from leadhub.metadata.definitions import ObjectDef
from leadhub.metadata.kinds import Item
from leadhub.metadata.registry import Registry
from leadhub.platform import permissions, tables as t
from leadhub.platform.db import UTCDateTime, utcnow
from leadhub.platform.errors import BadRequest, Conflict, Forbidden, LeadhubError, NotFound, ValidationFailed
from leadhub.platform.permissions import Actor
from leadhub.platform.tables import metadata

# a user's own list views (shared ones are items of the list_view kind)
list_views = sa.Table(
    "lh_list_views", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("object", sa.String(40), nullable=False),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("columns", sa.JSON, nullable=False),
    sa.Column("filter", sa.JSON),
    sa.Column("sort", sa.JSON, nullable=False),
    sa.Column("shared", sa.Boolean, nullable=False, default=False),    # always false since 0012
    sa.Column("owner_id", sa.Integer, sa.ForeignKey("lh_users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("position", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_lh_list_views_object_owner", "object", "owner_id"),
)

# shared views' old numbers (before they became items in 0012), so old links open them
list_view_links = sa.Table(
    "lh_list_view_links", metadata,
    sa.Column("old_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("object", sa.String(40), nullable=False),
    sa.Column("api_name", sa.String(40), nullable=False),
)


class LayoutService:
    def __init__(self, runtime):
        self.runtime = runtime
        self.db, self.cache, self.kinds = runtime.db, runtime.cache, runtime.kinds
        self.timezone = runtime.config.timezone
        for kind in KINDS:
            self.kinds.declare(kind)

    # --- layouts ------------------------------------------------------------
    @staticmethod
    def _of(reg: Registry, kind: str, object_name: str) -> list[Item]:
        return sorted((i for i in reg.items.get(kind, {}).values() if i.data["object"] == object_name),
                      key=lambda i: i.id)

    def _layout(self, reg: Registry, object_name: str, layout_id: Any) -> Item:
        item = next((i for i in self._of(reg, "layout", object_name) if i.id == layout_id), None)
        if item is None:
            raise NotFound(f"No layout {layout_id} on {object_name}.")
        return item

    @staticmethod
    def _layout_dict(reg: Registry, obj: ObjectDef, item: Item) -> dict:
        """A stored layout for the designer: fields deleted since are left out
        (so saving it back succeeds), required shows the field's own rule too."""
        d = item.data
        sections = [{**s, "fields": [{**f, "required": f["required"] or obj.fields[f["field"]].required}
                                     for f in s["fields"] if f["field"] in obj.fields]}
                    for s in d["sections"]]
        return {"id": item.id, "key": item.key, "object": d["object"], "name": d["name"], "default": d["default"],
                "version": item.version, "sections": sections,
                "related_lists": [related_live_parts(reg, r) for r in d["related_lists"] if related_alive(reg, obj, r)],
                "buttons": d["buttons"], "roles": d["roles"], "created_by": item.created_by,
                "updated_at": item.updated_at}

    def list_layouts(self, object_name: str) -> list[dict]:
        reg = self.cache.current()
        obj = reg.get(object_name)
        return [self._layout_dict(reg, obj, i) for i in self._of(reg, "layout", object_name)]

    def get_layout(self, object_name: str, layout_id: int) -> dict:
        reg = self.cache.current()
        obj = reg.get(object_name)
        return self._layout_dict(reg, obj, self._layout(reg, object_name, layout_id))

    def create_layout(self, actor: Actor, object_name: str, payload: Any) -> dict:
        permissions.require_admin(actor)
        reg = self.cache.current()
        obj = reg.get(object_name)
        data = validate_layout(reg, obj, payload)
        if "version" in payload:
            raise ValidationFailed({"version": "A new layout has no version to match."})
        saved = self.kinds.create(actor, "layout", {"object": object_name, **data})
        return self.get_layout(object_name, saved["id"])

    def update_layout(self, actor: Actor, object_name: str, layout_id: int, payload: Any) -> dict:
        """Changes any of name, default, sections, related_lists, buttons. A
        payload carrying "version" is refused (409) if someone saved since."""
        permissions.require_admin(actor)
        reg = self.cache.current()
        obj = reg.get(object_name)
        item = self._layout(reg, object_name, layout_id)
        if isinstance(payload, dict) and "version" in payload and payload["version"] != item.version:
            raise Conflict(f"The layout was saved by someone else (now version {item.version}); reload it.",
                           {"version": f"Stale: the current version is {item.version}."})
        data = validate_layout(reg, obj, payload, self._layout_dict(reg, obj, item))
        # by id: a rename committed meanwhile changed the key, and must still be seen as a conflict
        self.kinds.update(actor, "layout", str(item.id), {**data, "version": item.version})
        return self.get_layout(object_name, layout_id)

    def delete_layout(self, actor: Actor, object_name: str, layout_id: int) -> None:
        """The layout goes (its history stays); its roles fall back to the default layout."""
        permissions.require_admin(actor)
        item = self._layout(self.cache.current(), object_name, layout_id)
        self.kinds.delete(actor, "layout", item.key)

    def layout_versions(self, object_name: str, layout_id: int) -> list[dict]:
        """Every saved state, newest first."""
        item = self._layout(self.cache.current(), object_name, layout_id)
        return [{"version": v["version"], "name": v["data"]["name"], "default": v["data"]["default"],
                 "sections": v["data"]["sections"], "related_lists": v["data"]["related_lists"],
                 "buttons": v["data"]["buttons"], "roles": v["data"]["roles"], "note": v["note"],
                 "saved_by": v["actor_id"], "saved_at": v["at"]}
                for v in self.kinds.versions(Actor.system(), "layout", item.key) if v["data"]]

    # --- assignments --------------------------------------------------------
    def assignments(self, object_name: str) -> dict[str, int]:
        reg = self.cache.current()
        reg.get(object_name)
        return dict(sorted((role, i.id) for i in self._of(reg, "layout", object_name) for role in i.data["roles"]))

    def assign(self, actor: Actor, object_name: str, mapping: Any) -> dict[str, int]:
        """{role api name: layout id, or None to fall back to the default}."""
        permissions.require_admin(actor)
        if not isinstance(mapping, dict) or not mapping:
            raise BadRequest("The body maps role api names to layout ids (or null).", {"body": "Must be an object."})
        check_text(mapping)
        with self.kinds.writing(actor) as ctx:
            ctx.registry.get(object_name)
            roles = set(ctx.conn.execute(sa.select(t.roles.c.api_name)).scalars())
            layouts = self._of(ctx.registry, "layout", object_name)
            ids = {i.id for i in layouts}
            errors = {}
            for role, lid in mapping.items():
                if role not in roles:
                    errors[role] = "Unknown role."
                elif lid is not None and (isinstance(lid, bool) or not isinstance(lid, int) or lid not in ids):
                    errors[role] = f"No layout {lid} on {object_name}."
            if errors:
                raise ValidationFailed(errors)
            for item in layouts:     # take the roles away first, then give them: a role is in one layout
                kept = [r for r in item.data["roles"] if r not in mapping or mapping[r] == item.id]
                given = sorted(set(kept) | {r for r, lid in mapping.items() if lid == item.id})
                if given != item.data["roles"]:
                    self.kinds.put(ctx, "layout", {**ctx.registry.items["layout"][item.key].data, "roles": given},
                                   note="role assignments")
        return self.assignments(object_name)

    # --- the effective layout -----------------------------------------------
    def effective_layout(self, actor: Actor, object_name: str) -> dict:
        """The layout `actor` gets for an object, cut to what he may see: his
        roles' assigned layout (the first role, by role id, that has one),
        else the default one, else one generated from the fields."""
        permissions.require(actor, object_name, "read")
        with self.db.read() as conn:        # one connection: the version check and the caller's roles
            reg = self.cache.current(conn)
            obj = reg.get(object_name)
            item = self._chosen(conn, reg, actor, object_name)
        if item is None:
            layout = {"id": None, "name": "Default", **default_definition(reg, obj)}
        else:
            layout = {"id": item.id, **item.data}
        return self._cut(reg, obj, actor, layout)

    def _chosen(self, conn, reg: Registry, actor: Actor, object_name: str) -> Item | None:
        layouts = self._of(reg, "layout", object_name)
        if not layouts:
            return None
        if not actor.is_admin and actor.user_id is not None:
            by_role = {role: i for i in layouts for role in i.data["roles"]}
            if by_role:
                mine = actor.principal.roles if actor.principal is not None else conn.execute(
                    sa.select(t.roles.c.api_name).join(t.user_roles, t.user_roles.c.role_id == t.roles.c.id)
                    .where(t.user_roles.c.user_id == actor.user_id).order_by(t.roles.c.id)).scalars().all()
                chosen = next((by_role[r] for r in mine if r in by_role), None)
                if chosen is not None:
                    return chosen
        return next((i for i in layouts if i.data["default"]), None)

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
            if not related_alive(reg, obj, r) or not _can(actor, r["object"], "read"):
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
    # A personal view's id is its row id (a number); a shared view's is its
    # api name ("my_leads").
    def _shared(self, reg: Registry, object_name: str, view_id: Any) -> Item | None:
        return reg.items.get("list_view", {}).get(f"{object_name}.{view_id}")

    def _personal_row(self, conn, actor: Actor, object_name: str, view_id: Any):
        if not str(view_id).isdigit():
            return None
        row = conn.execute(sa.select(list_views).where(list_views.c.id == int(view_id),
                                                       list_views.c.object == object_name)).mappings().first()
        # another's personal view does not exist for you
        return row if row is not None and row["owner_id"] == actor.user_id else None

    def moved_view(self, object_name: str, view_id: Any) -> str | None:
        """The api name a shared view had its old number moved to, if it did."""
        if not str(view_id).isdigit() or int(view_id) > 2 ** 31 - 1:
            return None
        with self.db.read() as conn:
            return conn.execute(sa.select(list_view_links.c.api_name).where(
                list_view_links.c.old_id == int(view_id), list_view_links.c.object == object_name)).scalar()

    def _find_view(self, conn, reg: Registry, actor: Actor, object_name: str, view_id: Any):
        """(personal row, None) or (None, shared item), or a 404."""
        row = self._personal_row(conn, actor, object_name, view_id)
        item = None if row is not None else self._shared(reg, object_name, view_id)
        if row is None and item is None:
            raise NotFound(f"No list view {view_id} on {object_name}.")
        return row, item

    @staticmethod
    def _stored(row, item: Item | None) -> dict:
        if item is not None:
            return {"id": item.data["api_name"], "object": item.data["object"], "name": item.data["name"],
                    "columns": item.data["columns"], "filter": item.data["filter"], "sort": item.data["sort"],
                    "shared": True, "owner": item.created_by, "position": item.data["position"],
                    "version": item.version}
        return {"id": row["id"], "object": row["object"], "name": row["labels"], "columns": row["columns"],
                "filter": row["filter"], "sort": row["sort"], "shared": False, "owner": row["owner_id"],
                "position": row["position"]}

    @staticmethod
    def _view_dict(qc: QueryCompiler, view: dict) -> dict:
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
        for path in filter_fields(view["filter"]):
            try:
                qc.resolve(path, purpose="filter")
            except LeadhubError as exc:
                filter_error = exc.message
                break
        return {**view, "columns": [c for c in view["columns"] if ok(c)],
                "sort": [k for k in view["sort"] if ok(k.lstrip("-"))], "filter_error": filter_error}

    def list_views(self, actor: Actor, object_name: str) -> list[dict]:
        """Shared views and the actor's own, by position."""
        permissions.require(actor, object_name, "read")
        v = list_views
        with self.db.read() as conn:        # one connection: the version check and the user's own views
            reg = self.cache.current(conn)
            reg.get(object_name)
            rows = conn.execute(sa.select(v).where(v.c.object == object_name, v.c.owner_id == actor.user_id)
                                .order_by(v.c.position, v.c.id)).mappings().all() if actor.user_id else []
        views = [(self._stored(None, i), 0, i.id) for i in self._of(reg, "list_view", object_name)]
        views += [(self._stored(r, None), 1, r["id"]) for r in rows]
        views.sort(key=lambda x: (x[0]["position"], x[1], x[2]))
        qc = QueryCompiler(reg, object_name, actor, self.timezone)   # one for all: only resolves paths
        return [self._view_dict(qc, view) for view, _, _ in views]

    def get_list_view(self, actor: Actor, object_name: str, view_id: Any) -> dict:
        permissions.require(actor, object_name, "read")
        with self.db.read() as conn:
            reg = self.cache.current(conn)
            reg.get(object_name)
            row, item = self._find_view(conn, reg, actor, object_name, view_id)
        return self._view_dict(QueryCompiler(reg, object_name, actor, self.timezone), self._stored(row, item))

    def create_list_view(self, actor: Actor, object_name: str, payload: Any) -> dict:
        permissions.require(actor, object_name, "read")
        if actor.user_id is None:
            raise Forbidden("List views belong to users; the system has none.")
        shared = isinstance(payload, dict) and payload.get("shared") is True
        if shared:
            permissions.require_admin(actor)   # refused before anything else is looked at
        reg = self.cache.current()
        reg.get(object_name)
        data = self._checked(reg, actor, object_name, payload, None)
        if shared:
            item = self.kinds.create(actor, "list_view",
                                     {"object": object_name, "api_name": _view_api_name(reg, object_name, data),
                                      **data})
            return self.get_list_view(actor, object_name, item["api_name"])
        v, now = list_views, utcnow()
        with self.db.write() as conn:
            n = conn.execute(sa.select(sa.func.count()).select_from(v).where(
                v.c.object == object_name, v.c.owner_id == actor.user_id)).scalar_one()
            if n >= MAX_PERSONAL_VIEWS:
                raise Conflict(f"You already have {MAX_PERSONAL_VIEWS} views of {object_name}.",
                               {"name": "Too many views."})
            vid = conn.execute(v.insert().values(object=object_name, owner_id=actor.user_id, created_at=now,
                                                 updated_at=now, shared=False, **_row_values(data))
                               .returning(v.c.id)).scalar_one()
        return self.get_list_view(actor, object_name, vid)

    def update_list_view(self, actor: Actor, object_name: str, view_id: Any, payload: Any) -> dict:
        """A personal view made shared becomes a shared view (a new id), and
        a shared view made personal becomes the admin's own."""
        permissions.require(actor, object_name, "read")
        reg = self.cache.current()
        reg.get(object_name)
        with self.db.read() as conn:
            row, item = self._find_view(conn, reg, actor, object_name, view_id)
        current = self._stored(row, item)
        shared = payload.get("shared", current["shared"]) if isinstance(payload, dict) else current["shared"]
        if current["shared"] or shared is True:
            permissions.require_admin(actor)
        data = self._checked(reg, actor, object_name, payload, current)
        if item is not None and shared is not False:
            saved = self.kinds.update(actor, "list_view", item.key, data)
            return self.get_list_view(actor, object_name, saved["api_name"])
        if row is not None and shared is not True:
            with self.db.write() as conn:
                conn.execute(sa.update(list_views).where(list_views.c.id == row["id"])
                             .values(updated_at=utcnow(), **_row_values(data)))
            return self.get_list_view(actor, object_name, row["id"])
        created = self.create_list_view(actor, object_name, {**_payload(data), "shared": bool(shared)})
        self.delete_list_view(actor, object_name, view_id)
        return created

    def delete_list_view(self, actor: Actor, object_name: str, view_id: Any) -> None:
        permissions.require(actor, object_name, "read")
        reg = self.cache.current()
        with self.db.read() as conn:
            row, item = self._find_view(conn, reg, actor, object_name, view_id)
        if item is not None:
            permissions.require_admin(actor)
            self.kinds.delete(actor, "list_view", item.key)
            return
        with self.db.write() as conn:
            conn.execute(sa.delete(list_views).where(list_views.c.id == row["id"]))

    def _checked(self, reg: Registry, actor: Actor, object_name: str, payload: Any, current: dict | None) -> dict:
        data = validate_view(reg, actor, object_name, payload, current, self.timezone)
        if isinstance(payload, dict) and "shared" in payload and not isinstance(payload["shared"], bool):
            raise ValidationFailed({"shared": "Must be true or false."})
        return data

    # --- menu ---------------------------------------------------------------
    def menu_order(self) -> list[str]:
        item = self.cache.current().items.get("menu", {}).get("default")
        return list(item.data["objects"]) if item else []

    def menu(self, actor: Actor) -> list[dict]:
        """Objects the actor may read: the admin's order first, the rest by label."""
        reg = self.cache.current()
        order = {name: i for i, name in enumerate(self.menu_order())}
        readable = [o for o in reg.objects.values() if _can(actor, o.api_name, "read")]
        readable.sort(key=lambda o: (order.get(o.api_name, len(order)), o.label(actor.language).lower(), o.api_name))
        return [{"object": o.api_name, "label": o.labels} for o in readable]

    def set_menu(self, actor: Actor, names: Any) -> list[dict]:
        permissions.require_admin(actor)
        if not isinstance(names, list):
            raise ValidationFailed({"objects": "A list of at most 1000 object api names."})
        check_text(names, "objects")
        if not all(isinstance(n, str) for n in names):
            raise ValidationFailed({f"objects.{i}": "Unknown object." for i, n in enumerate(names)
                                    if not isinstance(n, str)})
        with self.kinds.writing(actor) as ctx:
            self.kinds.put(ctx, "menu", {"objects": names})
        return self.menu(actor)


def _row_values(data: dict) -> dict:
    return {"labels": data["name"], "columns": data["columns"], "filter": data["filter"], "sort": data["sort"],
            "position": data["position"]}


def _payload(data: dict) -> dict:
    return {k: data[k] for k in ("name", "columns", "filter", "sort", "position")}


def _view_api_name(reg: Registry, object_name: str, data: dict) -> str:
    """A shared view's api name from its English (or Chinese) name."""
    label = data["name"].get("en") or data["name"].get("zh_CN") or ""
    slug = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")[:36]
    if not slug or not slug[0].isalpha():
        slug = "view_" + hashlib.sha1(label.encode("utf-8")).hexdigest()[:8]
    if f"{object_name}.{slug}" in reg.items.get("list_view", {}):
        raise Conflict(f"{object_name} already has a shared view named '{label}'.", {"name": "Already taken."})
    return slug


def _can(actor: Actor, obj_name: str, action: str) -> bool:
    try:
        permissions.require(actor, obj_name, action)
        return True
    except Forbidden:
        return False


def _button_allowed(actor: Actor, obj: ObjectDef, name: str) -> bool:
    if name not in STANDARD_BUTTONS:
        return False
    needs = STANDARD_BUTTONS[name][1]
    if needs == "owner":
        return _can(actor, obj.api_name, "edit") and actor.rights(obj.api_name).field_access("owner") == "edit"
    return _can(actor, obj.api_name, needs)
