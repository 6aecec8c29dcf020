"""Metadata endpoints: objects and fields, created and changed at runtime."""
from __future__ import annotations

from flask import g, request

from leadhub.metadata.types import get_type, type_names
from leadhub.platform.errors import NotFound
from leadhub.web.api.base import api, language, runtime
from leadhub.web.jsonio import body


def _object(name: str, include_deleted: bool = False) -> dict:
    obj = runtime().cache.current().get(name, include_deleted=include_deleted)
    out = obj.to_api(language())
    out["deleted_fields"] = [f.to_api(language()) for f in obj.deleted_fields.values()]
    return out


def _flag(name: str) -> bool:
    return request.args.get(name, "").lower() in ("1", "true", "yes")


@api.get("/meta/types")
def list_types():
    return {"types": [{"type": n, "computed": get_type(n).computed,
                       "settings": sorted(get_type(n).Settings().fields),
                       "operators": sorted(get_type(n).operators)} for n in type_names()]}


@api.get("/meta/objects")
def list_objects():
    reg = runtime().cache.current()
    objs = list(reg.objects.values()) + (list(reg.deleted_objects.values()) if _flag("include_deleted") else [])
    return {"objects": [o.to_api(language(), with_fields=False) for o in objs]}


@api.post("/meta/objects")
def create_object():
    obj = runtime().metadata.create_object(g.actor, body())
    return _object(obj.api_name), 201


@api.get("/meta/objects/<name>")
def get_object(name):
    return _object(name, include_deleted=True)


@api.patch("/meta/objects/<name>")
def update_object(name):
    runtime().metadata.update_object(g.actor, name, body())
    return _object(name)


@api.delete("/meta/objects/<name>")
def delete_object(name):
    md = runtime().metadata
    if _flag("purge"):
        md.purge_object(g.actor, name)
    else:
        md.delete_object(g.actor, name)
    return "", 204


@api.post("/meta/objects/<name>/restore")
def restore_object(name):
    runtime().metadata.restore_object(g.actor, name)
    return _object(name)


@api.get("/meta/objects/<name>/fields")
def list_fields(name):
    obj = _object(name, include_deleted=True)
    fields = obj["fields"] + (obj["deleted_fields"] if _flag("include_deleted") else [])
    return {"fields": fields}


@api.post("/meta/objects/<name>/fields")
def add_field(name):
    fd = runtime().metadata.add_field(g.actor, name, body())
    return fd.to_api(language()), 201


def _field(name: str, field_name: str) -> dict:
    obj = runtime().cache.current().get(name, include_deleted=True)
    fd = obj.fields.get(field_name) or obj.deleted_fields.get(field_name)
    if fd is None:
        raise NotFound(f"No field '{field_name}' on {name}.")
    return fd.to_api(language())


@api.get("/meta/objects/<name>/fields/<field_name>")
def get_field(name, field_name):
    return _field(name, field_name)


@api.patch("/meta/objects/<name>/fields/<field_name>")
def update_field(name, field_name):
    return runtime().metadata.update_field(g.actor, name, field_name, body()).to_api(language())


@api.delete("/meta/objects/<name>/fields/<field_name>")
def delete_field(name, field_name):
    md = runtime().metadata
    if _flag("purge"):
        md.purge_field(g.actor, name, field_name)
    else:
        md.delete_field(g.actor, name, field_name)
    return "", 204


@api.post("/meta/objects/<name>/fields/<field_name>/restore")
def restore_field(name, field_name):
    return runtime().metadata.restore_field(g.actor, name, field_name).to_api(language())
