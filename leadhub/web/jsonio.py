"""JSON in and out: decimals stay exact (parsed as Decimal, written as
strings), datetimes are ISO 8601 in UTC, malformed bodies are a 400."""
from __future__ import annotations

import datetime as dt
import decimal
import json
from typing import Any

from flask import request
from flask.json.provider import DefaultJSONProvider

from leadhub.platform.errors import BadRequest


def _default(o: Any) -> Any:
    if isinstance(o, decimal.Decimal):
        return str(o)
    if isinstance(o, dt.datetime):
        return o.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(o, dt.date):
        return o.isoformat()
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


class JSONProvider(DefaultJSONProvider):
    ensure_ascii = False
    sort_keys = False
    default = staticmethod(_default)

    def loads(self, s, **kwargs):
        return json.loads(s, parse_float=decimal.Decimal, **kwargs)


def body(required: bool = True, object_only: bool = True) -> Any:
    """The request's JSON body; a precise 400 when it is not JSON, or not the
    JSON object an endpoint expects."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        if required:
            raise BadRequest("A JSON body is required.", {"body": "Empty body."})
        return {}
    try:
        value = json.loads(raw.decode("utf-8"), parse_float=decimal.Decimal,
                           parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise BadRequest("The body must be UTF-8 JSON.", {"body": "Not UTF-8."}) from None
    except RecursionError:
        raise BadRequest("The JSON body is nested too deeply.", {"body": "Nested too deeply."}) from None
    except json.JSONDecodeError as exc:
        raise BadRequest(f"Malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}.",
                         {"body": "Malformed JSON."}) from None
    if object_only and not isinstance(value, dict):
        raise BadRequest(f"The body must be a JSON object, not {type(value).__name__}.",
                         {"body": "Must be a JSON object."})
    return value


def _reject_constant(name: str):
    raise json.JSONDecodeError(f"{name} is not valid JSON", name, 0)


def int_arg(key: str, default: int | None = None, low: int = -2 ** 63, high: int = 2 ** 63 - 1) -> int:
    """A whole-number query argument within [low, high] (`default` when it is
    absent and one is given), or a 400 naming it."""
    raw = request.args.get(key)
    if default is not None and raw in (None, ""):
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise BadRequest(f"{key} must be a whole number.", {key: "Not a number."}) from None
    if not low <= value <= high:
        raise BadRequest(f"{key} must be between {low} and {high}.", {key: f"Between {low} and {high}."})
    return value
