"""Layouts and shared list views in bundles. They are not metadata kinds
yet (metadata/layouts.py keeps them, with ids the designer's URLs use), so
bundles reach them through LayoutService by object and name:

    layout/<object>.<name>          {name, default, sections, related_lists, buttons, roles}
    list_view/<object>.<English name>   {name: {en, zh_CN}, columns, filter, sort, position}

An object chosen for export brings its layouts and shared views along."""
from __future__ import annotations

import hashlib
import re

import sqlalchemy as sa

from leadhub.metadata.kinds import Ref
from leadhub.platform import tables as t
from leadhub.platform.errors import Forbidden
from leadhub.platform.permissions import Actor

TYPES = ("layout", "list_view")


def split(key: str) -> tuple[str, str]:
    obj, _, name = key.partition(".")
    return obj, name


def path(kind: str, key: str) -> str:
    obj, name = split(key)
    slug = re.sub(r"[^\w\-]+", "_", name, flags=re.ASCII).strip("_")[:40] or kind
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:6]
    return f"{kind}s/{obj}/{slug}-{digest}.yaml"


def state(runtime, reg, kind: str, key: str) -> dict | None:
    obj, name = split(key)
    if obj not in reg.objects:
        return None
    if kind == "layout":
        return runtime.layouts.layout_spec(obj, name)
    return runtime.layouts.shared_views(obj).get(name)


def of_object(runtime, obj: str) -> list[tuple[str, str]]:
    """The layouts and shared views an exported object brings along."""
    return [("layout", f"{obj}.{n}") for n in runtime.layouts.layout_names(obj)] + \
        [("list_view", f"{obj}.{n}") for n in runtime.layouts.shared_views(obj)]


def refs(kind: str, key: str, data: dict) -> list[Ref]:
    """What a layout or view names: its object, fields, related objects, roles, functions."""
    obj, _ = split(key)
    out = [Ref("object", obj, "object")]
    if kind == "layout":
        for i, section in enumerate(data.get("sections") or []):
            out += [Ref("field", f"{obj}.{f['field']}", f"sections.{i}.fields.{j}")
                    for j, f in enumerate(section.get("fields") or []) if f["field"] != "owner"]
        for i, r in enumerate(data.get("related_lists") or []):
            out += [Ref("object", r["object"], f"related_lists.{i}.object"),
                    Ref("field", f"{r['object']}.{r['field']}", f"related_lists.{i}.field")]
        out += [Ref("role", role, f"roles.{i}") for i, role in enumerate(data.get("roles") or [])]
        out += [Ref("function", b["function"], f"buttons.{i}.function")
                for i, b in enumerate(data.get("buttons") or []) if b.get("function")]
    return out


def apply(runtime, actor: Actor, kind: str, key: str, action: str, values: dict | None) -> None:
    obj, name = split(key)
    layouts = runtime.layouts
    if kind == "layout":
        if action == "delete":
            layouts.delete_layout_named(actor, obj, name)
        else:
            layouts.put_layout(actor, obj, values)
        return
    owner = actor if actor.user_id is not None else _an_admin(runtime)   # shared views belong to a user
    if action == "delete":
        layouts.delete_shared_view(owner, obj, name)
    else:
        layouts.put_shared_view(owner, obj, values)


def _an_admin(runtime) -> Actor:
    with runtime.db.read() as conn:
        row = conn.execute(sa.select(t.users.c.id, t.users.c.login).where(
            t.users.c.is_admin.is_(True), t.users.c.active.is_(True)).order_by(t.users.c.id)).first()
    if row is None:
        raise Forbidden("Shared list views belong to a user: create an administrator first.")
    return Actor(user_id=row.id, login=row.login, is_admin=True)
