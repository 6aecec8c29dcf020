"""Layout, list view and menu endpoints (issue 6); the rules live in
leadhub/data/layouts.py, these routes only carry JSON in and out."""
from __future__ import annotations

from flask import g

from leadhub.platform.errors import ValidationFailed
from leadhub.platform.permissions import require_admin
from leadhub.web.api.base import api, runtime
from leadhub.web.jsonio import body


def _layouts():
    return runtime().layouts


# --- layouts (designer: admins only) ------------------------------------------
@api.get("/meta/objects/<name>/layouts")
def list_layouts(name):
    require_admin(g.actor)
    return {"layouts": _layouts().list_layouts(name)}


@api.post("/meta/objects/<name>/layouts")
def create_layout(name):
    return _layouts().create_layout(g.actor, name, body()), 201


@api.get("/meta/objects/<name>/layouts/<id:layout_id>")
def get_layout(name, layout_id):
    require_admin(g.actor)
    return _layouts().get_layout(name, layout_id)


@api.patch("/meta/objects/<name>/layouts/<id:layout_id>")
def update_layout(name, layout_id):
    return _layouts().update_layout(g.actor, name, layout_id, body())


@api.delete("/meta/objects/<name>/layouts/<id:layout_id>")
def delete_layout(name, layout_id):
    _layouts().delete_layout(g.actor, name, layout_id)
    return "", 204


@api.get("/meta/objects/<name>/layouts/<id:layout_id>/versions")
def layout_versions(name, layout_id):
    require_admin(g.actor)
    return {"versions": _layouts().layout_versions(name, layout_id)}


@api.get("/meta/objects/<name>/layout-assignments")
def layout_assignments(name):
    require_admin(g.actor)
    return {"assignments": _layouts().assignments(name)}


@api.put("/meta/objects/<name>/layout-assignments")
def assign_layouts(name):
    """{role api name: layout id | null}; roles not named keep theirs."""
    return {"assignments": _layouts().assign(g.actor, name, body())}


# --- what a user gets -----------------------------------------------------------
@api.get("/objects/<name>/layout")
def effective_layout(name):
    return _layouts().effective_layout(g.actor, name)


@api.get("/objects/<name>/views")
def list_views(name):
    return {"views": _layouts().list_views(g.actor, name)}


@api.post("/objects/<name>/views")
def create_view(name):
    return _layouts().create_list_view(g.actor, name, body()), 201


@api.get("/objects/<name>/views/<view_id>")
def get_view(name, view_id):
    return _layouts().get_list_view(g.actor, name, view_id)


@api.patch("/objects/<name>/views/<view_id>")
def update_view(name, view_id):
    return _layouts().update_list_view(g.actor, name, view_id, body())


@api.delete("/objects/<name>/views/<view_id>")
def delete_view(name, view_id):
    _layouts().delete_list_view(g.actor, name, view_id)
    return "", 204


# --- menu -----------------------------------------------------------------------
@api.get("/meta/menu")
def get_menu():
    """The caller's menu, and the order an admin set (for the designer)."""
    return {"menu": _layouts().menu(g.actor), "order": _layouts().menu_order()}


@api.put("/meta/menu")
def put_menu():
    """{"objects": [api names in menu order]}"""
    require_admin(g.actor)
    payload = body()
    unknown = set(payload) - {"objects"}
    if unknown or "objects" not in payload:
        raise ValidationFailed({**{k: "Unknown property." for k in unknown},
                                **({} if "objects" in payload else {"objects": "Required."})})
    return {"menu": _layouts().set_menu(g.actor, payload["objects"]), "order": _layouts().menu_order()}


# --- OpenAPI --------------------------------------------------------------------
def openapi_paths(params, responses) -> dict:
    """This module's paths for openapi.py, which passes its helpers in."""
    obj, lid, vid = params("object"), params("object", "id"), params("object", "id")
    layout = {"type": "object", "description": "{name, default, sections, related_lists, buttons, version}"}
    view = {"type": "object", "description": "{name, columns, filter, sort, shared, position}"}
    json_body = lambda schema: {"required": True, "content": {"application/json": {"schema": schema}}}  # noqa: E731
    return {
        "/meta/objects/{object}/layouts": {
            "parameters": obj,
            "get": {"summary": "List an object's layouts (admins)", "responses": responses("200", None, "403", "404")},
            "post": {"summary": "Create a layout (admins)", "requestBody": json_body(layout),
                     "responses": responses("201", None, "400", "403", "404", "409", "422")},
        },
        "/meta/objects/{object}/layouts/{id}": {
            "parameters": lid,
            "get": {"summary": "Get a layout (admins)", "responses": responses("200", None, "403", "404")},
            "patch": {"summary": "Change a layout; the previous state is kept as a version", "requestBody":
                      json_body(layout), "responses": responses("200", None, "400", "403", "404", "409", "422")},
            "delete": {"summary": "Delete a layout, its versions and assignments",
                       "responses": responses("204", None, "403", "404")},
        },
        "/meta/objects/{object}/layouts/{id}/versions": {
            "parameters": lid,
            "get": {"summary": "Every saved state of a layout, newest first",
                    "responses": responses("200", None, "403", "404")},
        },
        "/meta/objects/{object}/layout-assignments": {
            "parameters": obj,
            "get": {"summary": "Layout per role", "responses": responses("200", None, "403", "404")},
            "put": {"summary": "Assign layouts to roles ({role: layout id | null})",
                    "requestBody": json_body({"type": "object", "additionalProperties": {"type": ["integer", "null"]}}),
                    "responses": responses("200", None, "400", "403", "404", "422")},
        },
        "/objects/{object}/layout": {
            "parameters": obj,
            "get": {"summary": "The caller's effective layout", "responses": responses("200", None, "403", "404")},
        },
        "/objects/{object}/views": {
            "parameters": obj,
            "get": {"summary": "Shared list views and the caller's own", "responses": responses("200", None, "403", "404")},
            "post": {"summary": "Save a list view (shared: admins only)", "requestBody": json_body(view),
                     "responses": responses("201", None, "400", "403", "404", "409", "422")},
        },
        "/objects/{object}/views/{id}": {
            "parameters": vid,
            "get": {"summary": "Get a list view", "responses": responses("200", None, "403", "404")},
            "patch": {"summary": "Change a list view", "requestBody": json_body(view),
                      "responses": responses("200", None, "400", "403", "404", "422")},
            "delete": {"summary": "Delete a list view", "responses": responses("204", None, "403", "404")},
        },
        "/meta/menu": {
            "get": {"summary": "The caller's menu and the admin-set order", "responses": responses("200", None)},
            "put": {"summary": "Set the menu order (admins)", "requestBody": json_body(
                {"type": "object", "properties": {"objects": {"type": "array", "items": {"type": "string"}}}}),
                    "responses": responses("200", None, "400", "403", "422")},
        },
    }
