"""Metadata kinds over REST, the same for every kind (see metadata/kinds.py):

    GET    /meta/kinds                          the kinds, their keys and properties
    GET    /meta/{kind}?prop=value              {"kind", "items": [...]}   (a singleton: the item)
    POST   /meta/{kind}                         create (201)
    GET    /meta/{kind}/{key}                   one item (a numeric id works too)
    PATCH  /meta/{kind}/{key}                   change some properties; PUT replaces the definition
    DELETE /meta/{kind}/{key}                   204, or 409 naming what uses it
    GET    /meta/{kind}/{key}/versions          every saved state, newest first
    GET    /meta/{kind}/{key}/diff?from=&to=    what changed between two versions
    POST   /meta/{kind}/{key}/rollback          {"version": n}: saved again as a new version

A singleton kind (one item, e.g. scoring settings) also takes PUT/PATCH on
/meta/{kind}. Objects and fields keep their own routes (they carry DDL) and
share the history: /meta/history/object/{o}, /meta/history/field/{o}.{f}."""
from __future__ import annotations

from flask import g, request

from leadhub.platform.errors import BadRequest
from leadhub.web.api.base import api, language, runtime
from leadhub.web.jsonio import body, int_arg


def _kinds():
    return runtime().kinds


@api.get("/meta/kinds")
def list_kinds():
    lang = language()
    return {"kinds": [{"name": kd.name, "url": kd.url, "label": kd.label(lang), "labels": kd.labels,
                       "key": kd.key_property, "singleton": kd.singleton, "plugin": kd.plugin,
                       "properties": sorted(kd.schema().fields)} for kd in _kinds().kinds()]}


@api.get("/meta/<kind>")
def list_items(kind):
    kd = _kinds().kind(kind)
    if kd.singleton:
        return _kinds().get(g.actor, kd.name, "default")
    return {"kind": kd.name, "items": _kinds().list(g.actor, kd.name, dict(request.args) or None)}


@api.post("/meta/<kind>")
def create_item(kind):
    kd = _kinds().kind(kind)
    if kd.singleton:
        raise BadRequest(f"{kd.label('en')} is one item: change it with PUT or PATCH.", {"body": "Singleton."})
    return _kinds().create(g.actor, kd.name, body()), 201


@api.route("/meta/<kind>", methods=["PUT", "PATCH"])
def update_singleton(kind):
    kd = _kinds().kind(kind)
    if not kd.singleton:
        raise BadRequest(f"Name the item: /meta/{kd.url}/<key>.", {"key": "Missing."})
    return _kinds().update(g.actor, kd.name, "default", body())


@api.get("/meta/<kind>/<key>")
def get_item(kind, key):
    return _kinds().get(g.actor, kind, key)


@api.patch("/meta/<kind>/<key>")
def update_item(kind, key):
    return _kinds().update(g.actor, kind, key, body())


@api.put("/meta/<kind>/<key>")
def replace_item(kind, key):
    return _kinds().update(g.actor, kind, key, body(), replace=True)


@api.delete("/meta/<kind>/<key>")
def delete_item(kind, key):
    extras = _kinds().delete(g.actor, kind, key)
    return (extras, 200) if extras else ("", 204)


@api.get("/meta/<kind>/<key>/versions")
def item_versions(kind, key):
    return {"versions": _kinds().versions(g.actor, kind, key)}


@api.get("/meta/<kind>/<key>/diff")
def item_diff(kind, key):
    return _kinds().diff(g.actor, kind, key, int_arg("from"), int_arg("to"))


@api.post("/meta/<kind>/<key>/rollback")
def item_rollback(kind, key):
    return _kinds().rollback(g.actor, kind, key, body().get("version"))


@api.get("/meta/history/object/<key>")
def object_history(key):
    """Versions of an object ("lead")."""
    return {"versions": _kinds().versions(g.actor, "object", key)}


@api.get("/meta/history/object/<key>/diff")
def object_diff(key):
    return _kinds().diff(g.actor, "object", key, int_arg("from"), int_arg("to"))


@api.post("/meta/history/object/<key>/rollback")
def object_rollback(key):
    """{"version": n}: the object's own properties as they were then."""
    obj = runtime().metadata.rollback_object(g.actor, key, body().get("version"))
    return obj.to_api(language(), with_fields=True)


@api.get("/meta/history/field/<key>")
def field_history(key):
    """Versions of a field ("lead.mobile")."""
    return {"versions": _kinds().versions(g.actor, "field", key)}


@api.get("/meta/history/field/<key>/diff")
def field_diff(key):
    return _kinds().diff(g.actor, "field", key, int_arg("from"), int_arg("to"))


@api.post("/meta/history/field/<key>/rollback")
def field_rollback(key):
    """{"version": n}: the field's definition as it was then (restored if deleted)."""
    fd = runtime().metadata.rollback_field(g.actor, key, body().get("version"))
    return fd.to_api(language())
