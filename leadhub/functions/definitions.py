"""What a function is: its kinds, its payload, and the checks a save runs.

A function is metadata. Its code is compiled when it is saved (the sandbox
policy for code, the expression compiler for a validation rule's condition),
so an admin learns of a syntax error or a refused name at once, with line and
column, and nothing is saved."""
from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass, field
from typing import Any

from croniter import croniter

from leadhub.expressions import ExpressionError, compile_expression
from leadhub.functions.sandbox import CompileError, compile_function
from leadhub.functions.sandbox.limits import MAXIMA, resolve
from leadhub.metadata.registry import Registry
from leadhub.platform.apinames import check_api_name
from leadhub.platform.errors import BadRequest
from leadhub.platform.labels import normalise_labels

KINDS = ("validation", "before_save", "after_save", "action", "scheduled", "api", "hook")
BOUND = frozenset({"validation", "before_save", "after_save", "action"})   # need an object
PARAM_TYPES = ("text", "integer", "decimal", "boolean", "date", "datetime", "json", "record_id")
EVENTS = ("insert", "update")
MAX_PARAMS = 30
PARAM_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")   # a key of `params`, so no column rules apply
MAX_DESCRIPTION = 2000
MAX_MESSAGE = 500

# payload keys and where each lives: a column of lh_functions or the JSON definition
COLUMNS = ("api_name", "label", "description", "kind", "object", "active", "run_as")
DEFINITION = ("params", "code", "condition", "message", "error_field", "events", "schedule",
              "timezone", "limits", "run_async", "hook", "position", "roles")
ALLOWED = frozenset(COLUMNS + DEFINITION + ("note",))


class CompileRefused(BadRequest):
    """Code or a condition that does not compile: 400 naming the field, with
    the line and column of the first problem and the full list."""

    def __init__(self, field_name: str, message: str, line: int | None, column: int | None,
                 problems: list[dict] | None = None):
        where = f"Line {line}, column {column}: " if line else ""
        super().__init__(f"{field_name} does not compile: {where}{message}", {field_name: where + message})
        self.line, self.column, self.problems = line, column, problems or []

    def to_dict(self) -> dict:
        out = super().to_dict()
        out["error"].update(line=self.line, column=self.column, problems=self.problems)
        return out


@dataclass
class FunctionDef:
    id: int
    api_name: str
    labels: dict
    kind: str
    object: str | None
    active: bool
    version: int
    run_as: int | None
    owner: int | None
    description: str | None = None
    definition: dict = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:       # params, code, condition, ... from the definition
        if name in DEFINITION:
            return self.__dict__["definition"].get(name)
        raise AttributeError(name)

    def may_run(self, actor) -> bool:
        """Whether `actor` may run this API function or action: admins, and
        holders of one of its roles (none named: admins only)."""
        if actor.is_admin:
            return True
        held = set(actor.principal.roles) if actor.principal else set()
        return bool(held & set(self.definition.get("roles") or ()))

    def payload(self) -> dict:
        """The API's view of the function: what a client sends back, plus ids."""
        return {"id": self.id, "api_name": self.api_name, "label": self.labels, "description": self.description,
                "kind": self.kind, "object": self.object, "active": self.active, "version": self.version,
                "run_as": self.run_as, "owner": self.owner,
                **{k: self.definition.get(k) for k in DEFINITION if k in self.definition}}


def validate(payload: Any, registry: Registry, *, current: dict | None = None) -> dict:
    """The normalised payload (columns and definition keys) or BadRequest
    naming every bad field; CompileRefused for code that does not compile.
    `current` is the stored payload a PATCH merges into."""
    if not isinstance(payload, dict):
        raise BadRequest("A function must be a JSON object.", {"function": "Must be an object."})
    errors: dict[str, str] = {k: "Unknown field." for k in payload if k not in ALLOWED}
    if current is not None:
        for key in ("api_name", "kind"):
            if key in payload and payload[key] != current[key]:
                errors[key] = "Cannot be changed; create a new function instead."
        data = {**current, **payload}
    else:
        data = dict(payload)
    out: dict[str, Any] = {}

    problem = check_api_name(data.get("api_name"), kind="function")
    if problem:
        errors["api_name"] = problem
    out["api_name"] = data.get("api_name")
    try:
        out["label"] = normalise_labels(data.get("label") or data.get("api_name") or "")
    except ValueError as exc:
        errors["label"] = str(exc)
    description = data.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > MAX_DESCRIPTION):
        errors["description"] = f"Must be text of at most {MAX_DESCRIPTION} characters."
    out["description"] = description

    kind = data.get("kind")
    if kind not in KINDS:
        errors["kind"] = f"Must be one of: {', '.join(KINDS)}."
    out["kind"] = kind
    obj = None
    object_name = data.get("object")
    if kind in BOUND or object_name is not None:
        if not isinstance(object_name, str) or object_name not in registry.objects:
            errors["object"] = ("Required for this kind: the object the function is bound to."
                                if object_name is None else f"Unknown object '{object_name}'.")
        else:
            obj = registry.objects[object_name]
    out["object"] = object_name

    active = data.get("active", True)
    if not isinstance(active, bool):
        errors["active"] = "Must be true or false."
    out["active"] = active
    run_as = data.get("run_as")
    if run_as is not None and (isinstance(run_as, bool) or not isinstance(run_as, (int, str))):
        errors["run_as"] = "Must be a user id or login, or null for the calling user."
    out["run_as"] = run_as

    out["params"] = _params(data.get("params"), errors)
    out["events"] = _events(data.get("events"), kind, errors)
    out["limits"] = _limits(data.get("limits"), errors)
    out["run_async"] = _flag(data, "run_async", errors)
    roles = data.get("roles")
    if roles is not None and kind not in ("api", "action"):
        errors["roles"] = "Only API functions and actions are run by people; other kinds run on their events."
    elif roles is not None and (not isinstance(roles, list) or len(roles) > 50
                                or not all(isinstance(r, str) and r for r in roles)):
        errors["roles"] = "A list of role api names (at most 50); administrators may always run it."
    out["roles"] = sorted(set(roles)) if isinstance(roles, list) and "roles" not in errors else None
    position = data.get("position", 0)
    if isinstance(position, bool) or not isinstance(position, int) or not 0 <= position <= 10_000:
        errors["position"] = "Must be a whole number from 0 to 10000 (run order)."
    out["position"] = position

    code, condition = data.get("code"), data.get("condition")
    if kind == "validation" and condition is not None:
        if code is not None:
            errors["code"] = "A validation rule has either code or a condition, not both."
        if not isinstance(data.get("message"), str) or not data["message"].strip() \
                or len(data["message"]) > MAX_MESSAGE:
            errors["message"] = f"Required with a condition: the error text (at most {MAX_MESSAGE} characters)."
        out["message"] = data.get("message")
    elif condition is not None:
        errors["condition"] = "Only validation rules have a condition; other kinds have code."
    elif not isinstance(code, str) or not code.strip():
        errors["code"] = "Required: the body of the function."
    out["code"], out["condition"] = code, condition
    error_field = data.get("error_field")
    if error_field is not None:
        if kind != "validation":
            errors["error_field"] = "Only validation rules name an error field."
        elif obj is not None and error_field not in obj.fields:
            errors["error_field"] = f"Unknown field '{error_field}' on {obj.api_name}."
    out["error_field"] = error_field

    out["schedule"], out["timezone"] = _schedule(data, kind, errors)
    hook = data.get("hook")
    if kind == "hook":
        if check_api_name(hook, kind="hook"):
            errors["hook"] = "Required for a hook: the hook's name, e.g. duplicate_normaliser."
    elif hook is not None:
        errors["hook"] = "Only hook functions name a hook."
    out["hook"] = hook
    if errors:
        raise BadRequest("The function is not valid.", errors)

    # compile last: the admin fixes the shape first, then the code
    if isinstance(code, str):
        try:
            compile_function(code)
        except CompileError as exc:
            raise CompileRefused("code", exc.message, exc.line, exc.column,
                                 [p.to_dict() for p in exc.problems]) from None
    if isinstance(condition, str):
        try:
            compile_expression(condition, frozenset(obj.fields) if obj else frozenset())
        except ExpressionError as exc:
            raise CompileRefused("condition", str(exc).split(" (line")[0], exc.line, exc.column) from None
    return out


def _flag(data: dict, key: str, errors: dict) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        errors[key] = "Must be true or false."
    return value


def _params(value: Any, errors: dict) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_PARAMS:
        errors["params"] = f"Must be a list of at most {MAX_PARAMS} parameters."
        return []
    out, seen = [], set()
    for i, p in enumerate(value):
        if not isinstance(p, dict):
            errors[f"params.{i}"] = "Each parameter is an object with name and type."
            continue
        name, ptype = p.get("name"), p.get("type", "text")
        if not isinstance(name, str) or not PARAM_NAME.fullmatch(name) or name in seen:
            errors[f"params.{i}.name"] = "A unique lowercase name (letters, digits, underscores)."
        if ptype not in PARAM_TYPES:
            errors[f"params.{i}.type"] = f"Must be one of: {', '.join(PARAM_TYPES)}."
        required = p.get("required", False)
        if not isinstance(required, bool):
            errors[f"params.{i}.required"] = "Must be true or false."
        unknown = set(p) - {"name", "type", "required", "label"}
        if unknown:
            errors[f"params.{i}"] = f"Unknown keys: {', '.join(sorted(unknown))}."
        seen.add(name)
        out.append({"name": name, "type": ptype, "required": required, "label": p.get("label") or name})
    return out


def _events(value: Any, kind: str, errors: dict) -> list[str] | None:
    if kind not in ("validation", "before_save", "after_save"):
        if value is not None:
            errors["events"] = "Only validation, before-save and after-save functions have events."
        return None
    if value is None:
        return list(EVENTS)
    if not isinstance(value, list) or not value or any(e not in EVENTS for e in value):
        errors["events"] = "A non-empty list of: insert, update."
        return None
    return sorted(set(value))


def _limits(value: Any, errors: dict) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors["limits"] = "Must be an object of limit names and figures."
        return {}
    try:
        resolve(value)
    except ValueError as exc:
        errors["limits"] = f"{exc} Maxima: {MAXIMA.as_dict()}."
    return value


def _schedule(data: dict, kind: str, errors: dict) -> tuple[str | None, str | None]:
    schedule, tz = data.get("schedule"), data.get("timezone")
    if kind != "scheduled":
        if schedule is not None:
            errors["schedule"] = "Only scheduled functions have a schedule."
        return None, None
    if not isinstance(schedule, str) or not croniter.is_valid(schedule):
        errors["schedule"] = "Required: a cron expression such as '0 9 * * 1-5' (minute hour day month weekday)."
    if tz is not None:
        try:
            zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
            errors["timezone"] = "Unknown time zone; use a name like Asia/Shanghai."
    return schedule, tz


def next_run(schedule: str, tz: str, after: dt.datetime) -> dt.datetime:
    """The first time after `after` the cron matches, read in `tz`, in UTC."""
    zone = zoneinfo.ZoneInfo(tz)
    return croniter(schedule, after.astimezone(zone)).get_next(dt.datetime).astimezone(dt.timezone.utc)
