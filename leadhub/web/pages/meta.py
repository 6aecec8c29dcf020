"""Layouts, list views and the menu as the pages see them: through
runtime.layouts (leadhub/metadata/layouts.py). While that service is not
there yet, a default layout is built from the object's fields, the way the
service builds its own default; remove the fallback once it lands."""
from __future__ import annotations

from leadhub.platform import permissions
from leadhub.platform.permissions import Actor
from leadhub.web.pages.common import runtime

SYSTEM_SHOWN = ("owner", "created_at", "updated_at")


def service():
    return getattr(runtime(), "layouts", None)


def effective_layout(actor: Actor, obj_name: str) -> dict:
    svc = service()
    if svc is not None:
        return svc.effective_layout(actor, obj_name)
    return default_layout(actor, obj_name)


def default_layout(actor: Actor, obj_name: str) -> dict:
    """Fallback only (see the module doc)."""
    reg = runtime().cache.current()
    obj = reg.get(obj_name)
    rights = actor.rights(obj_name)
    fields = []
    for fd in sorted(obj.custom_fields(), key=lambda f: (f.position, f.api_name)):
        access = rights.field_access(fd.api_name)
        if access == "hidden":
            continue
        fields.append({"field": fd.api_name, "required": fd.required,
                       "read_only": access != "edit" or not fd.writable})
    related = [{"object": child.api_name, "field": fd.api_name, "title": child.labels,
                "columns": [f.api_name for f in child.custom_fields()[:4] if f.api_name != fd.api_name],
                "sort": ["-created_at"]}
               for child, fd in reg.references_to(obj_name) if child.api_name != obj_name]
    return {"id": None, "name": "default",
            "sections": [{"key": "main", "title": {"en": "Details", "zh_CN": "详细信息"}, "columns": 2,
                          "collapsible": False, "collapsed": False, "fields": fields}],
            "related_lists": related, "buttons": []}


def list_views(actor: Actor, obj_name: str) -> list[dict]:
    svc = service()
    return svc.list_views(actor, obj_name) if svc is not None else []


def menu(actor: Actor) -> list[dict]:
    svc = service()
    if svc is not None:
        return svc.menu(actor)
    objs = [o for o in runtime().cache.current().objects.values() if "read" in actor.rights(o.api_name).actions]
    return [{"object": o.api_name, "label": o.labels} for o in sorted(objs, key=lambda o: o.label(actor.language))]


def visible(actor: Actor, obj_name: str, name: str) -> bool:
    return permissions.visible(actor, obj_name, name)
