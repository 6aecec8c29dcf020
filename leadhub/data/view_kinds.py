"""How records are shown, as metadata kinds: layouts (with the roles they
are assigned to), shared list views and the menu order.

    layout      key "<object>.<name>"      {object, name, default, sections, related_lists, buttons, roles}
    list_view   key "<object>.<api_name>"  {object, api_name, name: {en, zh_CN}, columns, filter, sort, position}
    menu        singleton                  {objects: [api names in menu order]}

A layout and a shared view belong to their object (Kind.belongs_to): an
exported object brings them along, purging the object removes them, and the
fields they name are soft references: deleting a field is not refused
because a layout shows it; the layout skips it from then on. A role is in
at most one layout of an object: giving it to one takes it from the others.
Personal list views are a user's own preferences, not metadata: they stay in
lh_list_views (layouts.py)."""
from __future__ import annotations

import marshmallow as mm

from leadhub.data import sort_indexes
from leadhub.data.layout_rules import (
    DEFAULT_BUTTONS, check_text, filter_fields, validate_layout, validate_view)
from leadhub.metadata.kinds import Context, Item, Kind, Ref
from leadhub.platform.errors import ValidationFailed
from leadhub.platform.permissions import Actor


class _Strict(mm.Schema):
    class Meta:
        unknown = mm.RAISE


class LayoutSchema(_Strict):
    # the parts are checked by validate_layout (422 naming each path), not here
    object = mm.fields.String(required=True)
    name = mm.fields.String(required=True)
    default = mm.fields.Boolean(load_default=False, truthy={True}, falsy={False})
    sections = mm.fields.Raw(required=True)
    related_lists = mm.fields.Raw(load_default=list)
    buttons = mm.fields.Raw(load_default=lambda: [{"kind": "standard", "name": n} for n in DEFAULT_BUTTONS])
    roles = mm.fields.List(mm.fields.String(), load_default=list)


class ListViewSchema(_Strict):
    object = mm.fields.String(required=True)
    api_name = mm.fields.String(required=True)
    name = mm.fields.Raw(required=True)
    columns = mm.fields.List(mm.fields.String(), required=True)
    filter = mm.fields.Raw(load_default=None)
    sort = mm.fields.List(mm.fields.String(), load_default=list)
    position = mm.fields.Integer(load_default=0, strict=True)


class MenuSchema(_Strict):
    objects = mm.fields.List(mm.fields.String(), required=True)


# ------------------------------------------------------------------ layouts

def layout_refs(data: dict) -> list[Ref]:
    obj = data["object"]
    out = [Ref("object", obj, "object", soft=True)]
    for i, section in enumerate(data.get("sections") or []):
        out += [Ref("field", f"{obj}.{f['field']}", f"sections.{i}.fields.{j}", soft=True)
                for j, f in enumerate(section.get("fields") or []) if isinstance(f, dict) and f.get("field") != "owner"]
    for i, r in enumerate(data.get("related_lists") or []):
        if isinstance(r, dict) and r.get("object") and r.get("field"):
            out += [Ref("object", r["object"], f"related_lists.{i}.object", soft=True),
                    Ref("field", f"{r['object']}.{r['field']}", f"related_lists.{i}.field", soft=True)]
    out += [Ref("role", role, f"roles.{i}") for i, role in enumerate(data.get("roles") or [])]
    # a button's function is checked for its name's shape only: it may be written after the layout
    out += [Ref("function", b["function"], f"buttons.{i}.function", soft=True)
            for i, b in enumerate(data.get("buttons") or []) if isinstance(b, dict) and b.get("function")]
    return out


def _live_parts(ctx: Context, data: dict, old: Item | None) -> dict:
    """A definition without what it was saved with and has been deleted
    since: fields, related lists, their columns and sort keys (so an old
    layout can be saved again; naming a deleted field anew is still refused)."""
    reg = ctx.registry
    obj = reg.objects.get(data["object"])
    if old is None or obj is None:
        return data
    dead = {f["field"] for s in old.data["sections"] for f in s["fields"] if f["field"] not in obj.fields}
    sections = data["sections"]
    if dead and isinstance(sections, list):
        sections = [{**s, "fields": [f for f in s.get("fields", []) if _field_name(f) not in dead]}
                    if isinstance(s, dict) and isinstance(s.get("fields"), list) else s for s in sections]
    gone, dead_columns = set(), set()
    for r in old.data["related_lists"]:
        child = reg.objects.get(r["object"])
        if child is None or r["field"] not in child.fields:
            gone.add((r["object"], r["field"]))
        else:
            dead_columns |= {(r["object"], c) for c in r["columns"] + [k.lstrip("-") for k in r["sort"]]
                             if c not in child.fields}
    related = data["related_lists"]
    if (gone or dead_columns) and isinstance(related, list):
        related = [_without_columns(r, dead_columns) for r in related
                   if not (isinstance(r, dict) and (r.get("object"), r.get("field")) in gone)]
    return {**data, "sections": sections, "related_lists": related}


def _without_columns(r, dead: set) -> dict:
    if not isinstance(r, dict) or not dead:
        return r
    out = dict(r)
    if isinstance(r.get("columns"), list):
        out["columns"] = [c for c in r["columns"] if (r.get("object"), c) not in dead]
    if isinstance(r.get("sort"), list):
        out["sort"] = [k for k in r["sort"] if not isinstance(k, str) or (r.get("object"), k.lstrip("-")) not in dead]
    return out


def _field_name(f):
    return f.get("field") if isinstance(f, dict) else f


def check_layout(ctx: Context, data: dict, old: Item | None) -> dict:
    obj = ctx.registry.get(data["object"])      # 404 naming the object
    check_text(data)
    data = _live_parts(ctx, data, old)
    body = {k: v for k, v in data.items() if k not in ("object", "roles")}
    checked = validate_layout(ctx.registry, obj, body)
    roles = data.get("roles") or []
    if len(set(roles)) != len(roles):
        raise ValidationFailed({"roles": "A role is listed twice."})
    same = [i for i in ctx.registry.items.get("layout", {}).values()
            if i.data["object"] == obj.api_name and (old is None or i.id != old.id)]
    if old is None and len(same) >= MAX_LAYOUTS_PER_OBJECT:
        raise ValidationFailed({"name": f"{obj.api_name} already has {MAX_LAYOUTS_PER_OBJECT} layouts."})
    return {"object": obj.api_name, **checked, "roles": sorted(roles)}


MAX_LAYOUTS_PER_OBJECT = 50


def layout_changed(ctx: Context, old: Item | None, new: Item | None) -> None:
    """One default layout per object; a role in one layout per object."""
    if new is None:
        return
    kinds = ctx.runtime.kinds
    for other in list(ctx.registry.items.get("layout", {}).values()):
        if other.id == new.id or other.data["object"] != new.data["object"]:
            continue
        roles = [r for r in other.data["roles"] if r not in new.data["roles"]]
        default = other.data["default"] and not new.data["default"]
        if roles != other.data["roles"] or default != other.data["default"]:
            kinds.put(ctx, "layout", {**other.data, "roles": roles, "default": default},
                      note=f"roles or default moved to '{new.data['name']}'")


LAYOUT = Kind(
    name="layout", url="layouts", labels={"en": "Layouts", "zh_CN": "页面布局"}, schema=LayoutSchema,
    key=lambda d: f"{d['object']}.{d['name']}", key_fields=("object", "name"), title="name",
    references=layout_refs, check=check_layout, on_change=layout_changed, belongs_to="object", renamable=True,
    order=lambda i: i.id, editor=lambda item: ("admin.layout_editor", {"name": item["object"], "layout_id": item["id"]}),
    properties={"object": {"en": "Object", "zh_CN": "对象"}, "name": {"en": "Name", "zh_CN": "名称"},
                "default": {"en": "Default layout", "zh_CN": "默认布局"},
                "sections": {"en": "Sections", "zh_CN": "分组"},
                "related_lists": {"en": "Related lists", "zh_CN": "相关列表"},
                "buttons": {"en": "Buttons", "zh_CN": "按钮"}, "roles": {"en": "Assigned roles", "zh_CN": "分配的角色"}},
)


# ------------------------------------------------------------------ shared list views

def view_refs(data: dict) -> list[Ref]:
    obj = data["object"]
    paths = [("columns", c) for c in data.get("columns") or [] if isinstance(c, str)]
    paths += [("sort", s.lstrip("-")) for s in data.get("sort") or [] if isinstance(s, str)]
    paths += [("filter", p) for p in filter_fields(data.get("filter")) if isinstance(p, str)]
    out = [Ref("object", obj, "object", soft=True)]
    # only the first step of a path is this object's field (owner.department is owner's)
    out += [Ref("field", f"{obj}.{p.split('.')[0]}", where, soft=True) for where, p in paths]
    return out


def check_view(ctx: Context, data: dict, old: Item | None) -> dict:
    obj = ctx.registry.get(data["object"])
    check_text(data)
    body = {k: v for k, v in data.items() if k not in ("object", "api_name")}
    # a shared view is compiled for each reader; checking it needs someone $me can stand for
    actor = ctx.actor if ctx.actor.user_id is not None else Actor(user_id=0, login="system", is_admin=True)
    checked = validate_view(ctx.registry, actor, obj.api_name, body, None, ctx.runtime.config.timezone)
    return {"object": obj.api_name, "api_name": data["api_name"], **checked}


def _first_sort(item: Item | None) -> tuple | None:
    return (item.data["object"], (item.data.get("sort") or [""])[0].lstrip("-")) if item else None


def view_changed(ctx: Context, old: Item | None, new: Item | None) -> None:
    """A view sorted by another field: the kernel's sort indexes follow (after the commit)."""
    if _first_sort(old) != _first_sort(new):
        for obj_name in {i.data["object"] for i in (old, new) if i is not None}:
            sort_indexes.schedule(ctx.runtime, obj_name)


LIST_VIEW = Kind(
    name="list_view", url="list-views", labels={"en": "Shared list views", "zh_CN": "共享列表视图"},
    schema=ListViewSchema, key=lambda d: f"{d['object']}.{d['api_name']}", key_fields=("object", "api_name"),
    title="name", references=view_refs, check=check_view, on_change=view_changed, belongs_to="object",
    order=lambda i: (i.data["object"], i.data["position"], i.id),
    properties={"object": {"en": "Object", "zh_CN": "对象"}, "api_name": {"en": "API name", "zh_CN": "API 名称"},
                "name": {"en": "Name", "zh_CN": "名称"}, "columns": {"en": "Columns", "zh_CN": "列"},
                "filter": {"en": "Filter", "zh_CN": "筛选条件"}, "sort": {"en": "Sort", "zh_CN": "排序"},
                "position": {"en": "Position", "zh_CN": "位置"}},
    widgets={"name": "labels"},
)


# ------------------------------------------------------------------ menu

def check_menu(ctx: Context, data: dict, old: Item | None) -> dict:
    names = data["objects"]
    if len(names) > 1000:
        raise ValidationFailed({"objects": "A list of at most 1000 object api names."})
    errors, seen = {}, set()
    for i, name in enumerate(names):
        if name not in ctx.registry.objects:
            errors[f"objects.{i}"] = "Unknown object."
        elif name in seen:
            errors[f"objects.{i}"] = "Listed twice."
        seen.add(name)
    if errors:
        raise ValidationFailed(errors)
    return data


MENU = Kind(
    name="menu", url="menu-order", labels={"en": "Menu order", "zh_CN": "菜单顺序"}, schema=MenuSchema,
    singleton=True, title=None, check=check_menu,
    references=lambda d: [Ref("object", n, f"objects.{i}", soft=True) for i, n in enumerate(d["objects"])],
    properties={"objects": {"en": "Objects in menu order", "zh_CN": "菜单中的对象顺序"}},
)

KINDS = (LAYOUT, LIST_VIEW, MENU)
