"""Function endpoints: functions as metadata (admins), their versions, the
test bench, the execution log, and running actions and API functions."""
from __future__ import annotations

import json

from flask import g, request

from leadhub.platform.errors import BadRequest
from leadhub.web.api.base import api, runtime
from leadhub.web.jsonio import body, int_arg

MAX_SELECTION = 200


@api.get("/meta/functions")
def list_functions():
    args = request.args
    return {"functions": runtime().functions.list(g.actor, kind=args.get("kind"), obj=args.get("object"))}


@api.post("/meta/functions")
def create_function():
    return runtime().functions.create(g.actor, body()), 201


@api.get("/meta/functions/<name>")
def get_function(name):
    from leadhub.platform import permissions
    permissions.require_admin(g.actor)
    return runtime().functions.get(name).payload()


@api.patch("/meta/functions/<name>")
def update_function(name):
    return runtime().functions.update(g.actor, name, body())


@api.delete("/meta/functions/<name>")
def delete_function(name):
    runtime().functions.delete(g.actor, name)
    return "", 204


@api.get("/meta/functions/<name>/versions")
def function_versions(name):
    return {"versions": runtime().functions.versions(g.actor, name)}


@api.get("/meta/functions/<name>/diff")
def function_diff(name):
    """?from=1&to=3: a unified diff of the code and the settings that changed."""
    a, b = (int_arg(k) for k in ("from", "to"))
    return runtime().functions.diff(g.actor, name, a, b)


@api.post("/meta/functions/<name>/rollback")
def function_rollback(name):
    payload = body()
    version = payload.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise BadRequest("version must be a version number.", {"version": "Must be an integer."})
    return runtime().functions.rollback(g.actor, name, version)


@api.get("/meta/function-runs")
def function_runs():
    """The execution log: ?filter=<JSON tree>&sort=-started_at&page=&page_size=;
    ?function=name is a shortcut for the common filter."""
    args = request.args
    spec: dict = {}
    tree = None
    if "filter" in args:
        try:
            tree = json.loads(args["filter"])
        except (json.JSONDecodeError, RecursionError):
            raise BadRequest("filter is not valid JSON.", {"filter": "Malformed JSON."}) from None
    if "function" in args:
        by_name = {"field": "function", "op": "eq", "value": args["function"]}
        tree = by_name if tree is None else {"and": [tree, by_name]}
    if tree is not None:
        spec["filter"] = tree
    if "sort" in args:
        spec["sort"] = [s for s in args["sort"].split(",") if s]
    for key in ("page", "page_size"):
        if key in args:
            spec[key] = int_arg(key)
    if args.get("count", "").lower() in ("1", "true", "yes"):
        spec["count"] = True
    return runtime().function_runner.runs(g.actor, spec)


@api.post("/functions/<name>/test")
def test_function(name):
    return runtime().function_runner.test(g.actor, name, body())


@api.post("/functions/<name>/run")
def run_function(name):
    payload = body()
    unknown = set(payload) - {"params"}
    if unknown:
        raise BadRequest("Send {\"params\": {...}}.", {k: "Unknown field." for k in unknown})
    return runtime().function_runner.run_api(g.actor, name, payload.get("params"))


@api.post("/objects/<name>/records/<id:record_id>/actions/<function>")
def run_action(name, record_id, function):
    payload = body(required=False)
    out = runtime().function_runner.run_action(g.actor, name, function, [record_id], _params(payload))
    result = out["results"][0]
    if not result["ok"]:
        error = result["error"]
        status = 404 if error["code"] == "not_found" else 422
        return {"error": error}, status
    return {"id": record_id, "result": result["result"], "log": result["log"]}


@api.post("/objects/<name>/actions/<function>")
def run_action_on_selection(name, function):
    """{"ids": [...], "params": {...}}: every record's outcome is reported."""
    payload = body()
    ids = payload.get("ids")
    if not isinstance(ids, list) or not ids or len(ids) > MAX_SELECTION or \
            any(isinstance(i, bool) or not isinstance(i, int) for i in ids):
        raise BadRequest(f"ids must be a list of 1 to {MAX_SELECTION} record ids.", {"ids": "Invalid selection."})
    if len(set(ids)) != len(ids):
        raise BadRequest("The same id appears twice.", {"ids": "Duplicate id."})
    return runtime().function_runner.run_action(g.actor, name, function, ids, _params(payload, {"ids"}))


@api.get("/meta/schedules")
def list_schedules():
    from leadhub.platform import permissions
    permissions.require_admin(g.actor)
    return {"schedules": runtime().scheduler.status()}


@api.get("/jobs")
def list_jobs():
    """Background work (admins): counts by status and the newest jobs."""
    from leadhub.platform import jobs, permissions
    permissions.require_admin(g.actor)
    status = request.args.get("status") or None
    if status is not None and status not in jobs.STATUSES:
        raise BadRequest(f"status must be one of {', '.join(jobs.STATUSES)}.", {"status": "Unknown status."})
    listed = runtime().jobs.list(status=status, limit=int_arg("limit", 100, 1, 1000))
    return {"counts": runtime().jobs.counts(), "jobs": [job_out(j) for j in listed]}


def job_out(row: dict) -> dict:
    return {"id": row["id"], "function": row["fn"], "status": row["status"], "attempts": row["attempts"],
            "max_attempts": row["max_attempts"], "error": row["error"], "worker": row["worker"],
            **{k: row[k] for k in ("created_at", "queued_at", "started_at", "heartbeat_at", "finished_at",
                                   "not_before")}}


def _params(payload: dict, allowed: set = frozenset()) -> dict | None:
    unknown = set(payload) - {"params"} - set(allowed)
    if unknown:
        raise BadRequest("Send {\"params\": {...}}.", {k: "Unknown field." for k in unknown})
    return payload.get("params")
