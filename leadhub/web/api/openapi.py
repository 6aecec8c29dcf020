"""GET /api/v1/openapi.json: an OpenAPI 3.1 document built from the live
metadata, so each object's record schema appears and changes with it."""
from __future__ import annotations

import re

import marshmallow as mm
from flask import current_app, request

import leadhub
from leadhub.metadata.registry import Registry
from leadhub.web.api import layouts
from leadhub.web.api.base import api, language, runtime

ERROR = {"$ref": "#/components/schemas/Error"}


def _params(*names: str) -> list[dict]:
    return [{"name": n, "in": "path", "required": True,
             "schema": {"type": "integer" if n == "id" else "string"}} for n in names]


def _responses(ok_code: str, ok_schema: dict | None, *errors: str) -> dict:
    out = {ok_code: {"description": "OK"} if ok_schema is None else
           {"description": "OK", "content": {"application/json": {"schema": ok_schema}}}}
    for code in ("401",) + errors:
        out[code] = {"description": "Error", "content": {"application/json": {"schema": ERROR}}}
    return out


def _record_schemas(reg: Registry, lang: str) -> dict:
    schemas = {}
    for obj in reg.objects.values():
        props, required = {}, []
        for fd in obj.fields.values():
            schema = fd.type.openapi(fd)
            schema["title"] = fd.label(lang)
            if not fd.writable:
                schema["readOnly"] = True
            schema = {**schema, "type": [schema["type"], "null"]} if "type" in schema else schema
            props[fd.api_name] = schema
            if fd.required and fd.writable:
                required.append(fd.api_name)
        schemas[f"{obj.api_name}_record"] = {
            "type": "object", "title": obj.label(lang), "properties": props,
            "required": required, "additionalProperties": False}
    return schemas


def _function_paths() -> dict:
    ok = lambda *codes: _responses("200", None, *codes)  # noqa: E731
    fn = _params("function")
    return {
        "/meta/functions": {
            "get": {"summary": "List functions (admins)", "responses": ok("403")},
            "post": {"summary": "Create a function; code is compiled at save",
                     "responses": _responses("201", None, "400", "403", "409")}},
        "/meta/functions/{function}": {
            "parameters": fn,
            "get": {"summary": "Get a function", "responses": ok("403", "404")},
            "patch": {"summary": "Change a function (a new version)", "responses": ok("400", "403", "404")},
            "delete": {"summary": "Delete a function (the log keeps it)", "responses": _responses("204", None, "404")}},
        "/meta/functions/{function}/versions": {"parameters": fn, "get": {
            "summary": "Saved versions", "responses": ok("404")}},
        "/meta/functions/{function}/diff": {"parameters": fn, "get": {
            "summary": "Diff two versions (?from=&to=)", "responses": ok("400", "404")}},
        "/meta/functions/{function}/rollback": {"parameters": fn, "post": {
            "summary": "Save an old version as the newest", "responses": ok("400", "404")}},
        "/meta/function-runs": {"get": {"summary": "The execution log, with the JSON filter",
                                        "responses": ok("400", "403")}},
        "/meta/schedules": {"get": {"summary": "Periodic tasks and their due times", "responses": ok("403")}},
        "/jobs": {"get": {"summary": "Background jobs (?status=pending|queued|running|done|failed&limit=)",
                          "parameters": [{"name": "status", "in": "query", "schema": {"type": "string"}},
                                         {"name": "limit", "in": "query", "schema": {"type": "integer"}}],
                          "responses": ok("400", "403")}},
        "/functions/{function}/test": {"parameters": fn, "post": {
            "summary": "Test bench: a dry run of saved or draft code", "responses": ok("400", "403", "404")}},
        "/functions/{function}/run": {"parameters": fn, "post": {
            "summary": "Run an API function", "responses": ok("400", "404", "422")}},
        "/objects/{object}/records/{id}/actions/{function}": {
            "parameters": _params("object", "id", "function"),
            "post": {"summary": "Run an action on a record", "responses": ok("400", "404", "422")}},
        "/objects/{object}/actions/{function}": {
            "parameters": _params("object", "function"),
            "post": {"summary": "Run an action on a selection (each record's outcome)",
                     "responses": ok("400", "404")}},
    }


def json_schema(schema: mm.Schema | type[mm.Schema]) -> dict:
    """A marshmallow schema as JSON Schema: types, required, enums, ranges, lengths."""
    schema = schema() if isinstance(schema, type) else schema
    props = {name: _field_schema(f) for name, f in schema.fields.items()}
    required = [name for name, f in schema.fields.items() if f.required]
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


def _field_schema(f: mm.fields.Field) -> dict:
    if isinstance(f, mm.fields.Nested):
        out = json_schema(f.schema)
    elif isinstance(f, mm.fields.List):
        out = {"type": "array", "items": _field_schema(f.inner)}
    elif isinstance(f, mm.fields.Dict):
        out = {"type": "object", "additionalProperties": _field_schema(f.value_field) if f.value_field else True}
    else:
        kinds = ((mm.fields.Boolean, "boolean"), (mm.fields.Integer, "integer"), (mm.fields.Number, "number"),
                 (mm.fields.String, "string"))
        out = next(({"type": t} for cls, t in kinds if isinstance(f, cls)), {})
    for v in f.validators:
        if isinstance(v, mm.validate.OneOf):
            out["enum"] = list(v.choices)
        elif isinstance(v, mm.validate.Range):
            out.update({k: b for k, b in (("minimum", v.min), ("maximum", v.max)) if b is not None})
        elif isinstance(v, mm.validate.Length):
            prefix = "Items" if out.get("type") == "array" else "Length"
            out.update({k: b for k, b in ((f"min{prefix}", v.min), (f"max{prefix}", v.max)) if b is not None})
        elif isinstance(v, mm.validate.Regexp):
            out["pattern"] = v.regex.pattern
    if f.allow_none and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def _kind_paths(kinds, lang: str) -> tuple[dict, dict]:
    """Each metadata kind's REST, with its item schema (web/api/kinds.py)."""
    paths, schemas = {}, {}
    for kd in (k for k in kinds if not k.own_api):
        ref = {"$ref": f"#/components/schemas/{kd.name}_item"}
        schemas[f"{kd.name}_item"] = {**json_schema(kd.schema), "title": kd.label(lang)}
        body = {"required": True, "content": {"application/json": {"schema": ref}}}
        tag, base, label = [kd.label(lang)], f"/meta/{kd.url}", kd.label(lang)
        if kd.singleton:
            paths[base] = {
                "get": {"tags": tag, "summary": f"{label}", "responses": _responses("200", ref, "404")},
                "put": {"tags": tag, "summary": f"Change {label} (admins)", "requestBody": body,
                        "responses": _responses("200", ref, "400", "403")},
                "patch": {"tags": tag, "summary": f"Change some of {label} (admins)",
                          "responses": _responses("200", ref, "400", "403")}}
            base, key = f"{base}/default", []
        else:
            paths[base] = {
                "get": {"tags": tag, "summary": f"List {label}", "responses": _responses("200", None, "403")},
                "post": {"tags": tag, "summary": f"Create one of {label} (admins)", "requestBody": body,
                         "responses": _responses("201", ref, "400", "403", "409")}}
            key = _params("key")
            paths[f"{base}/{{key}}"] = {
                "parameters": key,
                "get": {"tags": tag, "summary": "Get one (by key or id)", "responses": _responses("200", ref, "404")},
                "patch": {"tags": tag, "summary": "Change some properties (a new version)",
                          "responses": _responses("200", ref, "400", "403", "404")},
                "put": {"tags": tag, "summary": "Replace the definition (a new version)", "requestBody": body,
                        "responses": _responses("200", ref, "400", "403", "404")},
                "delete": {"tags": tag, "summary": "Delete (409 naming what uses it)",
                           "responses": _responses("204", None, "403", "404", "409")}}
            base = f"{base}/{{key}}"
        paths[f"{base}/versions"] = {**({"parameters": key} if key else {}), "get": {
            "tags": tag, "summary": "Every saved version, newest first", "responses": _responses("200", None, "403", "404")}}
        paths[f"{base}/diff"] = {**({"parameters": key} if key else {}), "get": {
            "tags": tag, "summary": "What changed between versions ?from=&to=",
            "responses": _responses("200", None, "400", "403", "404")}}
        paths[f"{base}/rollback"] = {**({"parameters": key} if key else {}), "post": {
            "tags": tag, "summary": "Save an earlier version ({version}) as the newest",
            "responses": _responses("200", ref, "400", "403", "404")}}
    for target, what in (("object", "an object's own properties"), ("field", "a field (restored if deleted)")):
        key = _params("key")
        paths[f"/meta/history/{target}/{{key}}"] = {"parameters": key, "get": {
            "tags": ["History"], "summary": f"Every version of {what}", "responses": _responses("200", None, "403", "404")}}
        paths[f"/meta/history/{target}/{{key}}/diff"] = {"parameters": key, "get": {
            "tags": ["History"], "summary": "What changed between versions ?from=&to=",
            "responses": _responses("200", None, "400", "403", "404")}}
        paths[f"/meta/history/{target}/{{key}}/rollback"] = {"parameters": key, "post": {
            "tags": ["History"], "summary": f"Give {what} an earlier version's definition ({{version}})",
            "responses": _responses("200", None, "400", "403", "404", "409")}}
    return paths, schemas


def build_document(reg: Registry, lang: str, server: str, kinds=()) -> dict:
    paths: dict = {
        "/meta/objects": {
            "get": {"summary": "List objects", "responses": _responses("200", None)},
            "post": {"summary": "Create an object", "responses": _responses("201", None, "400", "409", "422")},
        },
        "/meta/objects/{object}": {
            "parameters": _params("object"),
            "get": {"summary": "Get an object with its fields", "responses": _responses("200", None, "404")},
            "patch": {"summary": "Change an object", "responses": _responses("200", None, "404", "409", "422")},
            "delete": {"summary": "Soft-delete (or ?purge=true) an object", "responses": _responses("204", None, "404", "409")},
        },
        "/meta/objects/{object}/fields": {
            "parameters": _params("object"),
            "get": {"summary": "List fields", "responses": _responses("200", None, "404")},
            "post": {"summary": "Add a field", "responses": _responses("201", None, "404", "409", "422")},
        },
        "/meta/objects/{object}/fields/{field}": {
            "parameters": _params("object", "field"),
            "get": {"summary": "Get a field", "responses": _responses("200", None, "404")},
            "patch": {"summary": "Change a field", "responses": _responses("200", None, "404", "409", "422")},
            "delete": {"summary": "Soft-delete (or ?purge=true) a field", "responses": _responses("204", None, "404", "409")},
        },
    }
    paths.update(_function_paths())
    for obj in reg.objects.values():
        ref = {"$ref": f"#/components/schemas/{obj.api_name}_record"}
        page = {"type": "object", "properties": {
            "records": {"type": "array", "items": ref}, "page": {"type": "integer"},
            "page_size": {"type": "integer"}, "has_more": {"type": "boolean"},
            "total": {"type": ["integer", "null"]}}}
        base = f"/objects/{obj.api_name}"
        tag = [obj.label(lang)]
        body = {"required": True, "content": {"application/json": {"schema": ref}}}
        paths[f"{base}/records"] = {
            "get": {"tags": tag, "summary": f"List {obj.label(lang)}", "responses": _responses("200", page, "400", "404")},
            "post": {"tags": tag, "summary": f"Create a {obj.label(lang)}", "requestBody": body,
                     "responses": _responses("201", ref, "400", "409", "422")},
        }
        paths[f"{base}/records/{{id}}"] = {
            "parameters": _params("id"),
            "get": {"tags": tag, "summary": "Get a record", "responses": _responses("200", ref, "404")},
            "patch": {"tags": tag, "summary": "Update a record", "requestBody": body,
                      "responses": _responses("200", ref, "400", "404", "409", "422")},
            "delete": {"tags": tag, "summary": "Soft-delete a record", "responses": _responses("204", None, "404", "409")},
        }
        paths[f"{base}/records/{{id}}/restore"] = {
            "parameters": _params("id"),
            "post": {"tags": tag, "summary": "Restore a deleted record", "responses": _responses("200", ref, "404", "409")}}
        paths[f"{base}/query"] = {
            "post": {"tags": tag, "summary": "Filter, sort and page records",
                     "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Query"}}}},
                     "responses": _responses("200", page, "400", "404")}}
        paths[f"{base}/records/bulk"] = {
            "post": {"tags": tag, "summary": "Create or update up to 1000 records, all or none",
                     "requestBody": {"content": {"application/json": {"schema": {
                         "type": "object", "properties": {
                             "operation": {"enum": ["create", "update"]},
                             "records": {"type": "array", "items": ref, "maxItems": 1000}}}}}},
                     "responses": _responses("201", None, "400", "404", "409", "422")}}
        paths[f"{base}/records/bulk-delete"] = {
            "post": {"tags": tag, "summary": "Soft-delete up to 1000 records, all or none",
                     "requestBody": {"content": {"application/json": {"schema": {
                         "type": "object", "properties": {"ids": {"type": "array", "items": {"type": "integer"},
                                                                  "maxItems": 1000}}}}}},
                     "responses": _responses("200", None, "400", "403", "404", "422")}}
        paths[f"{base}/export"] = {
            "get": {"tags": tag, "summary": "Export as CSV, or XLSX with format=xlsx (export right)",
                    "parameters": [{"name": "format", "in": "query", "schema": {"enum": ["csv", "xlsx"]}}],
                    "responses": _responses("200", None, "400", "403", "404")}}
    paths.update(layouts.openapi_paths(_params, _responses))
    kind_paths, kind_schemas = _kind_paths(kinds, lang)
    paths.update(kind_paths)
    return {
        "openapi": "3.1.0",
        "info": {"title": "leadhub API", "version": leadhub.__version__,
                 "description": f"Generated from metadata version {reg.version}."},
        "servers": [{"url": server}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
                    "code": {"type": "string"}, "message": {"type": "string"},
                    "fields": {"type": "object", "additionalProperties": True}}}}},
                "Query": {"type": "object", "properties": {
                    "filter": {"description": "{field, op, value} | {and: [...]} | {or: [...]} | {not: ...}"},
                    "sort": {"type": "array", "items": {"type": "string"}},
                    "fields": {"type": "array", "items": {"type": "string"}},
                    "page": {"type": "integer", "minimum": 1},
                    "page_size": {"type": "integer", "minimum": 1, "maximum": 500},
                    "count": {"type": "boolean"}, "deleted": {"type": "boolean"}}},
                **_record_schemas(reg, lang),
                **kind_schemas,
            },
        },
    }


@api.get("/openapi.json")
def openapi_document():
    doc = build_document(runtime().cache.current(), language(), request.host_url.rstrip("/") + "/api/v1",
                         runtime().kinds.kinds())
    _add_routes(doc["paths"])
    return doc


_CONVERTER = re.compile(r"<(?:[a-z_]+:)?([a-z_]+)>")


def _add_routes(paths: dict) -> None:
    """Every other /api/v1 route the app serves (areas and plugins add their
    own), described by its view's docstring, so the document never misses
    an endpoint. Generic object routes are already listed per object."""
    described = {re.sub(r"\{[a-z_]+\}", "{}", p) for p in paths}
    for rule in current_app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.rule == "/api/v1/openapi.json":
            continue
        path = _CONVERTER.sub(r"{\1}", rule.rule[len("/api/v1"):])
        if re.sub(r"\{[a-z_]+\}", "{}", path) in described or path.startswith("/objects/{name}/records") \
                or path in ("/objects/{name}/query", "/objects/{name}/export") or path.startswith("/meta/{kind}"):
            continue
        view = current_app.view_functions[rule.endpoint]
        summary = (view.__doc__ or rule.endpoint.rsplit(".", 1)[-1].replace("_", " ")).strip().splitlines()[0]
        entry = paths.setdefault(path, {})
        params = [{"name": n, "in": "path", "required": True,
                   "schema": {"type": "integer" if n in ("id", "record_id") or n.endswith("_id") else "string"}}
                  for n in rule.arguments]
        if params:
            entry.setdefault("parameters", params)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            entry.setdefault(method.lower(), {"summary": summary, "responses": _responses(
                "200", None, "400", "403", "404")})
