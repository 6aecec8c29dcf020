"""Running functions: triggers in the record service's lifecycle, actions,
API functions, hooks, scheduled runs, the test bench, and the execution log.

Code runs in the sandbox's worker pool (leadhub/functions/sandbox); its API
calls come back to this process and go through the record service as the
run-as user, on the triggering write's connection (Database.write joins an
open write under a savepoint), so a before-save function's writes commit or
roll back with the save. A validation rule with a `condition` is an
expression of the formula language and runs in-process."""
from __future__ import annotations

import datetime as dt
import decimal
import logging
import threading
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from leadhub.data.records import json_value
from leadhub.expressions import EvaluationError, compile_expression
from leadhub.functions.definitions import FunctionDef, next_run
from leadhub.functions.sandbox import Result, WorkerPool
from leadhub.functions.sandbox.handlers import RecordServiceHandler
from leadhub.functions.tables import function_runs
from leadhub.platform import auth, permissions, tables as t
from leadhub.platform.db import utcnow
from leadhub.platform.errors import BadRequest, Forbidden, LeadhubError, NotFound, ValidationFailed
from leadhub.platform.events import RecordEvent
from leadhub.platform.jobs import current_runtime
from leadhub.platform.permissions import Actor

if TYPE_CHECKING:
    from leadhub.runtime import Runtime

log = logging.getLogger(__name__)
MAX_CALL_DEPTH = 3          # a function calling a function calling a function
# Validation and before-save functions run while their user waits for the
# save (before its transaction, holding no lock): a short wall time unless
# the admin sets one.
SAVE_LIMITS = {"wall_seconds": 2.0, "cpu_seconds": 1.0}
SAVE_TRIGGERS = ("validation", "before_save")
LOG_KEEP = 8000             # characters of a run's output kept in the execution log
RECORD_ERROR = "record"     # the error key of a validation message that names no field
CALLABLE_KINDS = ("api", "action")


class FunctionFailed(LeadhubError):
    """A function failed where its caller needs an answer (an action, an API
    function): 422 with the function's error, line included."""
    status = 422
    code = "function_failed"

    def __init__(self, fn: FunctionDef, error: dict):
        line = f" (line {error['line']})" if error.get("line") else ""
        super().__init__(f"Function '{fn.api_name}' failed: {error.get('message')}{line}",
                         {error.get("field") or "function": error.get("message")})
        self.error = error

    def to_dict(self) -> dict:
        out = super().to_dict()
        out["error"]["function_error"] = self.error
        return out


class _RecordingHandler(RecordServiceHandler):
    """Keeps what each API call asked for, for the test bench's "queries"."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[dict] = []

    def _note(self, method: str, **details) -> None:
        if len(self.calls) < 200:
            self.calls.append({"call": method, **details})

    def get(self, object_name, record_id):
        self._note("records.get", object=object_name, id=record_id)
        return super().get(object_name, record_id)

    def query(self, object_name, query):
        out = super().query(object_name, query)
        self._note("records.query", object=object_name, query=query, returned=len(out.get("records", [])))
        return out

    def create(self, object_name, values):
        out = super().create(object_name, values)
        self._note("records.create", object=object_name, id=out.get("id"))
        return out

    def update(self, object_name, record_id, values):
        self._note("records.update", object=object_name, id=record_id, fields=sorted(values))
        return super().update(object_name, record_id, values)

    def delete(self, object_name, record_id):
        self._note("records.delete", object=object_name, id=record_id)
        return super().delete(object_name, record_id)


class FunctionRunner:
    def __init__(self, runtime: "Runtime"):
        self.runtime = runtime
        self._pool: WorkerPool | None = None
        self._pool_lock = threading.Lock()
        self._depth: ContextVar[int] = ContextVar(f"leadhub_fn_depth_{id(self)}", default=0)

    # ------------------------------------------------------------ the pool
    @property
    def pool(self) -> WorkerPool:
        """Started on first use: a process that never runs a function never
        starts workers."""
        if self._pool is None:
            with self._pool_lock:
                if self._pool is None:
                    self._pool = WorkerPool(size=max(1, self.runtime.config.function_workers),
                                            user=self.runtime.config.sandbox_user)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    # ------------------------------------------------------------ triggers
    def install(self) -> None:
        """Subscribe to every object's writes; an object without functions
        costs a dictionary lookup per write. Before-save and validation
        functions run in the record service's prepare pass, before its
        transaction takes a lock."""
        bus = self.runtime.events
        for name in ("prepare_insert", "prepare_update"):
            bus.subscribe(name, self._before_save, batch=True, wants=self._has_save_functions)
        for name in ("after_insert", "after_update"):
            bus.subscribe(name, self._after_save)

    def _has_save_functions(self, registry, obj: str) -> bool:
        service = self.runtime.functions
        return bool(service.bound(registry, "before_save", obj) or service.bound(registry, "validation", obj))

    def _before_save(self, events: list[RecordEvent]) -> dict[int, ValidationFailed]:
        """Before-save functions, then validation rules, over a write's rows:
        each function runs once for the batch (one round trip to a sandbox
        worker), each row with its own result. Returns the refused rows."""
        first = events[0]
        op = "insert" if first.name == "prepare_insert" else "update"
        service = self.runtime.functions
        fields = first.registry.get(first.object).fields
        refused: dict[int, ValidationFailed] = {}

        def live() -> list[tuple[int, RecordEvent]]:
            return [(i, ev) for i, ev in enumerate(events) if i not in refused]

        def inputs(rows):
            # every field is in `record` (None when unset), as on a stored record
            return [({**dict.fromkeys(fields), **ev.values}, ev.old, ev.record_id) for _i, ev in rows]

        for fn in service.bound(first.registry, "before_save", first.object, op):
            rows = live()
            for (i, ev), result in zip(rows, self.execute_many(fn, first.actor, "before_save", inputs(rows))):
                if result.error:
                    refused[i] = self._refusal(fn, result.error)
                elif result.value is not None:
                    try:
                        ev.values.update(self._changes(fn, ev.object, result.value))
                    except ValidationFailed as exc:
                        refused[i] = exc
        errors: dict[int, dict[str, str]] = {}
        for fn in service.bound(first.registry, "validation", first.object, op):
            rows = live()
            if fn.condition is not None:
                for i, ev in rows:
                    if self._condition(ev.registry, fn, ev.values):
                        errors.setdefault(i, {}).setdefault(fn.error_field or RECORD_ERROR, fn.message)
                continue
            for (i, _ev), result in zip(rows, self.execute_many(fn, first.actor, "validation", inputs(rows))):
                if result.error and result.error.get("type") == "validation":
                    errors.setdefault(i, {}).setdefault(result.error.get("field") or fn.error_field or RECORD_ERROR,
                                                        result.error.get("message"))
                elif result.error:
                    refused[i] = self._refusal(fn, result.error)
                elif result.value:
                    field, message = self._verdict(fn, result.value)
                    errors.setdefault(i, {}).setdefault(field, message)
        for i, fields_ in errors.items():
            refused.setdefault(i, ValidationFailed(fields_))
        return refused

    def _after_save(self, ev: RecordEvent) -> None:
        op = "insert" if ev.name == "after_insert" else "update"
        for fn in self.runtime.functions.bound(ev.registry, "after_save", ev.object, op):
            args = (fn.api_name, ev.actor.user_id, "after_save", ev.object, ev.values.get("id") or ev.record_id)
            if fn.run_async:
                self.runtime.jobs.enqueue(run_function_job, *args)      # with the write: runs iff it commits
            else:
                ev.on_commit(lambda args=args: run_function_job(*args, runtime=self.runtime))

    @staticmethod
    def _condition(registry, fn: FunctionDef, values: dict) -> bool:
        """A validation condition, compiled once per metadata version; true
        means the record is refused (Salesforce's convention). A condition
        that cannot be evaluated for this record refuses it too."""
        obj = registry.get(fn.object)
        expr = registry.memo(("fn_condition", fn.api_name, fn.version),
                             lambda: compile_expression(fn.condition, frozenset(obj.fields)))
        try:
            return bool(expr.evaluate(values))
        except EvaluationError:
            return True

    @staticmethod
    def _verdict(fn: FunctionDef, value: Any) -> tuple[str, str]:
        """A validation function's return: a message, or (field, message), or
        {"field", "message"}."""
        if isinstance(value, str):
            return fn.error_field or RECORD_ERROR, value
        if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, str) for v in value):
            return value[0], value[1]
        if isinstance(value, dict) and isinstance(value.get("message"), str):
            return str(value.get("field") or fn.error_field or RECORD_ERROR), value["message"]
        return fn.error_field or RECORD_ERROR, str(value)

    def _changes(self, fn: FunctionDef, obj: str, value: Any) -> dict:
        if not isinstance(value, dict):
            raise ValidationFailed({RECORD_ERROR: f"Before-save function '{fn.api_name}' must return a dict "
                                                  "of field changes or nothing."})
        try:
            return self.runtime.records.coerce(obj, {k: json_value(v) for k, v in value.items()})
        except ValidationFailed as exc:
            raise ValidationFailed({k: f"{v} (set by function '{fn.api_name}')" for k, v in exc.fields.items()}) \
                from None

    @staticmethod
    def _refusal(fn: FunctionDef, error: dict) -> ValidationFailed:
        """A before-save or validation function that failed refuses the save:
        the admin's mistake must not let bad data through."""
        if error.get("type") == "validation":
            return ValidationFailed({error.get("field") or RECORD_ERROR: error.get("message")})
        line = f" at line {error['line']}" if error.get("line") and "line" not in error.get("message", "") else ""
        return ValidationFailed({RECORD_ERROR: f"Function '{fn.api_name}' failed{line}: {error.get('message')}"})

    # ------------------------------------------------------------ running
    def execute(self, fn: FunctionDef, actor: Actor, *, trigger: str, record: Any = None, old: Any = None,
                params: Any = None, record_id: int | None = None, code: str | None = None,
                dry_run: bool = False, handler: RecordServiceHandler | None = None) -> Result:
        """Run `fn` (or draft `code` under its settings) as its run-as user
        or `actor`; log the run. Limit and code errors come back in the Result."""
        depth = self._depth.get()
        if depth >= MAX_CALL_DEPTH:
            return Result(error={"type": "limit", "limit": "depth", "figure": depth + 1, "maximum": MAX_CALL_DEPTH,
                                 "message": f"Functions may call each other at most {MAX_CALL_DEPTH} deep.",
                                 "line": None}, usage={})
        run_actor = self.run_as(fn, actor)
        if handler is None:
            handler = self._handler(run_actor, read_only=trigger in SAVE_TRIGGERS)
        started = utcnow()
        token = self._depth.set(depth + 1)
        try:
            limits = fn.limits or None
            if trigger in SAVE_TRIGGERS:
                limits = {**SAVE_LIMITS, **(fn.limits or {})}
            result = self.pool.run(code if code is not None else fn.code, record=_data(record), old=_data(old),
                                   params=params or {}, handler=handler, limits=limits, nested=depth > 0)
        finally:
            self._depth.reset(token)
        self._log(fn, actor, run_actor, trigger, record_id, started, result, dry_run, draft=code is not None)
        return result

    def execute_many(self, fn: FunctionDef, actor: Actor, trigger: str,
                     rows: list[tuple[Any, Any, int | None]]) -> list[Result]:
        """`fn` over (record, old, record id) rows in one sandbox round trip
        (WorkerPool.run_many), a Result and an execution log entry each, the
        entries written in one statement."""
        depth = self._depth.get()
        if depth >= MAX_CALL_DEPTH:
            return [self.execute(fn, actor, trigger=trigger, record=r, old=o, record_id=rid) for r, o, rid in rows]
        run_actor = self.run_as(fn, actor)
        handler = self._handler(run_actor, read_only=trigger in SAVE_TRIGGERS)
        limits = {**SAVE_LIMITS, **(fn.limits or {})} if trigger in SAVE_TRIGGERS else (fn.limits or None)
        started = utcnow()
        token = self._depth.set(depth + 1)
        try:
            results = self.pool.run_many(fn.code, [{"record": _data(r), "old": _data(o)} for r, o, _rid in rows],
                                         handler=handler, limits=limits, nested=depth > 0)
        finally:
            self._depth.reset(token)
        self._log_all(fn, actor, run_actor, trigger, [(rid, started, result) for (_r, _o, rid), result
                                                         in zip(rows, results)], dry_run=False, draft=False)
        return results

    def run_as(self, fn: FunctionDef, actor: Actor) -> Actor:
        """The user a run acts as: the function's named user (an explicit
        grant by an admin) or the caller."""
        if fn.run_as is None or fn.run_as == actor.user_id:
            return actor
        return auth.actor_for(self.runtime.db, self.runtime.cache, fn.run_as)

    def _handler(self, actor: Actor, *, read_only: bool = False) -> _RecordingHandler:
        return _RecordingHandler(self.runtime.records, actor, notifier=self._notifier(actor),
                                 caller=lambda name, params: self.call(actor, name, params, trigger="call"),
                                 read_only=read_only)

    def _notifier(self, actor: Actor):
        def notify(user: Any, message: str) -> None:
            notifications = getattr(self.runtime, "notifications", None)
            if notifications is None:
                raise BadRequest("Notifications are not available here.")
            if isinstance(user, bool) or not isinstance(user, int):
                raise BadRequest("notify takes a user id.", {"user": "Must be a user id."})
            with self.runtime.db.read() as conn:     # a function's author is told, not silently ignored
                active = conn.execute(sa.select(t.users.c.active).where(t.users.c.id == user)).scalar()
            if not active:
                raise BadRequest(f"No active user {user} to notify.", {"user": "Unknown or deactivated user."})
            notifications.send([user], "function", message[:200], body=message,
                               data={"from_user": actor.user_id})
        return notify

    def call(self, actor: Actor, name: str, params: Any, *, trigger: str = "api") -> Any:
        """Run an API function by name and return its value; errors raise."""
        fn = self._callable(name, "api")
        result = self.execute(fn, actor, trigger=trigger, params=self._params(fn, params))
        if result.error:
            raise FunctionFailed(fn, result.error)
        return result.value

    def run_api(self, actor: Actor, name: str, params: Any) -> dict:
        """POST /functions/{name}/run. No transaction is held while the code
        runs: each record call it makes is a short transaction of its own, so
        a slow function never keeps other users' saves waiting."""
        self._may_run(actor, self._callable(name, "api"))
        return {"result": self.call(actor, name, params)}

    def run_action(self, actor: Actor, obj: str, name: str, ids: list[int], params: Any) -> dict:
        """An action on one record or a selection; reports every record's
        outcome, one failure not undoing the others. No transaction is held
        while the code runs: its record calls are short transactions of
        their own (what a failing run wrote before it failed stays)."""
        fn = self._callable(name, "action")
        if fn.object != obj:
            raise NotFound(f"No action '{name}' on {obj}.")
        permissions.require(actor, obj, "read")
        self._may_run(actor, fn)
        params = self._params(fn, params)
        results = []
        for rid in ids:
            try:
                record = self.runtime.records.get(actor, obj, rid)
                result = self.execute(fn, actor, trigger="action", record=record, params=params, record_id=rid)
                if result.error:
                    raise FunctionFailed(fn, result.error)
                results.append({"id": rid, "ok": True, "result": result.value, "log": result.log})
            except LeadhubError as exc:
                results.append({"id": rid, "ok": False, "error": exc.to_dict()["error"]})
        return {"results": results, "succeeded": sum(r["ok"] for r in results),
                "failed": sum(not r["ok"] for r in results)}

    @staticmethod
    def _may_run(actor: Actor, fn: FunctionDef) -> None:
        if not fn.may_run(actor):
            who = ", ".join(fn.roles or ()) or "administrators"
            raise Forbidden(f"Function '{fn.api_name}' may be run by: {who}.",
                                        {"function": "Not one of your roles."})

    def run_hook(self, hook: str, actor: Actor, *, record: Any = None, params: Any = None) -> list[Any]:
        """Results of every active function registered for a plugin hook
        (e.g. duplicate_normaliser, scoring_rule), in run order; a failing
        hook function is logged and skipped, so one admin's mistake does not
        stop the plugin."""
        reg = self.runtime.cache.current()
        out = []
        for fn in self.runtime.functions.bound(reg, "hook", hook):
            result = self.execute(fn, actor, trigger="hook", record=record, params=params)
            if result.error is None:
                out.append(result.value)
        return out

    def test(self, actor: Actor, name: str, payload: Any) -> dict:
        """The test bench: saved or draft code on a record or parameters, as
        a dry run whose writes are rolled back."""
        permissions.require_admin(actor)
        if not isinstance(payload, dict):
            raise BadRequest("The test request must be a JSON object.", {"test": "Must be an object."})
        unknown = set(payload) - {"code", "record_id", "record", "old", "params"}
        if unknown:
            raise BadRequest("Unknown keys in the test request.", {k: "Unknown field." for k in unknown})
        fn = self.runtime.functions.get(name)
        code = payload.get("code")
        if code is not None and not isinstance(code, str):
            raise BadRequest("code must be text.", {"code": "Must be text."})
        if fn.condition is not None and code is None:
            raise BadRequest("A condition rule is tried by saving records; the bench runs code.",
                             {"code": "This rule has a condition, not code."})
        params = payload.get("params")
        if params is not None and not isinstance(params, dict):
            raise BadRequest("params must be an object.", {"params": "Must be an object."})
        record, old, rid = payload.get("record"), payload.get("old"), payload.get("record_id")
        handler = self._handler(self.run_as(fn, actor), read_only=fn.kind in SAVE_TRIGGERS)
        with self.runtime.db.write(rollback=True):
            if rid is not None:
                if isinstance(rid, bool) or not isinstance(rid, int) or fn.object is None:
                    raise BadRequest("record_id must be the id of a record of the function's object.",
                                     {"record_id": "Must be an integer id (the function must be bound)."})
                record = self.runtime.records.get(actor, fn.object, rid)
                old = old if old is not None else record
            result = self.execute(fn, actor, trigger="test", record=record, old=old, params=params or {},
                                  record_id=rid, code=code, dry_run=True, handler=handler)
        error = None
        if result.error:
            error = {k: result.error.get(k) for k in ("type", "message", "line", "column", "field", "limit")
                     if result.error.get(k) is not None}
        return {"result": result.value, "log": result.log, "queries": handler.calls, "usage": result.usage,
                "error": error, "dry_run": True}

    def _callable(self, name: str, kind: str) -> FunctionDef:
        fn = self.runtime.functions.all().get(name)
        if fn is None or fn.kind != kind or not fn.active:
            raise NotFound(f"No active {kind} function '{name}'.")
        return fn

    @staticmethod
    def _params(fn: FunctionDef, params: Any) -> dict:
        """Parameters checked against the declaration: unknown, missing or
        mistyped ones are a 400 naming params.<name>."""
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise BadRequest("params must be an object.", {"params": "Must be an object."})
        declared = {p["name"]: p for p in fn.params or []}
        errors = {f"params.{k}": "Unknown parameter." for k in params if k not in declared}
        for name, p in declared.items():
            value = params.get(name)
            if value is None:
                if p.get("required"):
                    errors[f"params.{name}"] = "Required."
                continue
            if not _PARAM_CHECKS[p["type"]](value):
                errors[f"params.{name}"] = f"Must be {p['type']}."
        if errors:
            raise BadRequest("Invalid parameters.", errors)
        return params

    # ------------------------------------------------------------ scheduling
    def run_due(self, now: dt.datetime | None = None) -> list[str]:
        """Claim scheduled functions that are due (a conditional UPDATE moves
        next_run_at, so two processes never both claim one) and run each as a
        job. Returns the names claimed."""
        now = now or utcnow()
        claimed = []
        service = self.runtime.functions
        with self.runtime.db.read() as conn:
            due = service.next_runs(conn, now)
        fns = service.all()
        for name, due_at in due:
            fn = fns.get(name)
            if fn is None or fn.kind != "scheduled" or not fn.active:
                continue        # changed since; its save rewrote or dropped the schedule
            nxt = next_run(fn.schedule, fn.timezone or self.runtime.config.timezone, max(now, due_at))
            with self.runtime.db.write() as conn:
                moved = service.claim(conn, name, due_at, nxt)
            if moved:
                claimed.append(name)
                self.runtime.jobs.enqueue(run_function_job, name, None, "scheduled", None, None)
        return claimed

    def purge_runs(self, now: dt.datetime | None = None) -> int:
        """Drop execution-log entries older than the retention setting."""
        cutoff = (now or utcnow()) - dt.timedelta(days=self.runtime.config.function_run_retention_days)
        with self.runtime.db.write() as conn:
            return conn.execute(sa.delete(function_runs).where(function_runs.c.started_at < cutoff)).rowcount

    # ------------------------------------------------------------ the log
    def _log(self, fn: FunctionDef, actor: Actor, run_actor: Actor, trigger: str, record_id, started,
             result: Result, dry_run: bool, draft: bool) -> None:
        self._log_all(fn, actor, run_actor, trigger, [(record_id, started, result)], dry_run, draft)

    def _log_all(self, fn: FunctionDef, actor: Actor, run_actor: Actor, trigger: str,
                 runs: list[tuple[int | None, Any, Result]], dry_run: bool, draft: bool) -> None:
        """One entry per run that failed or refused; the runs of one batch
        that went well share one entry (counts summed, logs joined), so a
        1,000-record save does not write 1,000 lines saying "ok"."""
        rows = [self._log_row(fn, actor, run_actor, trigger, record_id, started, result, dry_run, draft)
                for record_id, started, result in runs]
        ok = [row for row in rows if row["outcome"] == "ok"]
        if len(ok) > 1:
            summary = {**ok[0], "record_id": None}
            for key in ("wall_ms", "cpu_ms", "reads", "writes", "queries"):
                summary[key] = sum(row[key] or 0 for row in ok)
            summary["peak_memory_kb"] = max((row["peak_memory_kb"] or 0 for row in ok), default=None)
            text = f"Ran for {len(ok)} records of one save.\n" + "".join(row["log"] or "" for row in ok)
            summary["log"] = text[:LOG_KEEP]
            rows = [row for row in rows if row["outcome"] != "ok"] + [summary]

        def write() -> None:
            try:
                with self.runtime.db.write() as conn:
                    conn.execute(sa.insert(function_runs), rows)
            except Exception:           # the log must never break the work it records
                log.exception("could not write the execution log of %s", fn.api_name)
        # after the triggering write ends, committed or rolled back: a refused
        # save's run is logged too, and SQLite's one writer is free by then
        self.runtime.db.after_end(write)

    @staticmethod
    def _log_row(fn: FunctionDef, actor: Actor, run_actor: Actor, trigger: str, record_id, started,
                 result: Result, dry_run: bool, draft: bool) -> dict:
        error = result.error or {}
        usage = result.usage or {}
        if not error:
            outcome = "ok"
        elif error.get("type") == "validation":
            outcome = "refused"
        elif error.get("type") == "limit":
            outcome = "limit"
        else:
            outcome = "error"
        return {"function": fn.api_name, "version": None if draft else fn.version, "kind": fn.kind,
                "trigger": trigger, "user_id": actor.user_id, "run_as": run_actor.user_id, "object": fn.object,
                "record_id": record_id, "started_at": started, "wall_ms": usage.get("wall_ms"),
                "cpu_ms": usage.get("cpu_ms"), "peak_memory_kb": usage.get("peak_memory_kb"),
                "reads": usage.get("reads") or 0, "writes": usage.get("writes") or 0,
                "queries": usage.get("queries") or 0, "outcome": outcome, "error_type": error.get("type"),
                "error_message": (error.get("message") or "")[:2000] or None, "error_line": error.get("line"),
                "log": (result.log or "")[:LOG_KEEP] or None, "dry_run": dry_run}

    def runs(self, actor: Actor, spec: Any) -> dict:
        """GET /meta/function-runs: the execution log, filtered with the
        kernel's JSON filter tree (the query compiler, over the log's table)."""
        from leadhub.functions.runlog import query_runs
        permissions.require_admin(actor)
        return query_runs(self.runtime, actor, spec)


def run_function_job(name: str, user_id: int | None, trigger: str, obj: str | None, record_id: int | None,
                     runtime: "Runtime | None" = None) -> None:
    """A job: an after-save or scheduled run. A failure notifies the
    function's owner (it runs where nobody is waiting for an answer)."""
    runtime = runtime or current_runtime()
    fn = runtime.functions.all().get(name)
    if fn is None or not fn.active:
        return
    actor = _actor(runtime, user_id or fn.run_as or fn.owner)
    if actor is None:
        log.warning("function %s skipped: no active user to run as", name)
        return
    try:
        with runtime.db.write():
            record = runtime.records.get(actor, obj, record_id) if obj and record_id else None
            result = runtime.function_runner.execute(fn, actor, trigger=trigger, record=record, record_id=record_id)
            if result.error:
                raise FunctionFailed(fn, result.error)
    except LeadhubError as exc:
        _tell_owner(runtime, fn, exc.message)


run_function_job.job_label = "Function run"


def _actor(runtime: "Runtime", uid: int | None) -> Actor | None:
    if uid is None:
        return None
    try:
        return auth.actor_for(runtime.db, runtime.cache, uid)
    except LeadhubError:
        return None


def _tell_owner(runtime: "Runtime", fn: FunctionDef, message: str) -> None:
    notifications = getattr(runtime, "notifications", None)
    if fn.owner is None or notifications is None:
        log.warning("function %s failed: %s", fn.api_name, message)
        return
    with runtime.db.write():
        notifications.send([fn.owner], "function_failed", f"Function {fn.api_name} failed", body=message,
                           link=f"/api/v1/meta/function-runs?function={fn.api_name}")


def _data(value: Any) -> Any:
    return dict(value) if isinstance(value, dict) else value


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_PARAM_CHECKS = {
    "text": lambda v: isinstance(v, str),
    "integer": _is_int,
    "decimal": lambda v: _is_int(v) or isinstance(v, (float, decimal.Decimal)) or (isinstance(v, str) and _decimal_text(v)),
    "boolean": lambda v: isinstance(v, bool),
    "date": lambda v: isinstance(v, str) and _iso(v, dt.date.fromisoformat),
    "datetime": lambda v: isinstance(v, str) and _iso(v, dt.datetime.fromisoformat),
    "json": lambda v: True,
    "record_id": lambda v: _is_int(v) and v > 0,
}


def _decimal_text(v: str) -> bool:
    try:
        return decimal.Decimal(v).is_finite()
    except decimal.InvalidOperation:
        return False


def _iso(v: str, parse) -> bool:
    try:
        parse(v)
        return True
    except ValueError:
        return False
