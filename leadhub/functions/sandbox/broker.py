"""The parent's side of a function's API calls: check the arguments, count
the call against the run's limits, execute it through the handler the
caller supplied, and answer with a value or an error.

A handler is any object with the methods below (see handlers.py for the
one backed by leadhub's RecordService). Its exceptions that carry `code`,
`message` and `fields` (leadhub's LeadhubError) reach the function as
ApiError; anything else is logged here and reported without details."""
from __future__ import annotations

import logging
from typing import Any, Protocol

from leadhub.functions.sandbox import protocol
from leadhub.functions.sandbox.limits import Limits, limit_error

log = logging.getLogger(__name__)


class ApiHandler(Protocol):
    def get(self, object_name: str, record_id: int) -> dict: ...
    def query(self, object_name: str, query: dict) -> dict: ...
    def create(self, object_name: str, values: dict) -> dict: ...
    def update(self, object_name: str, record_id: int, values: dict) -> dict: ...
    def delete(self, object_name: str, record_id: int) -> Any: ...
    def notify(self, user: Any, message: str) -> Any: ...
    def call(self, function: str, params: dict) -> Any: ...


def _text(v) -> bool:
    return isinstance(v, str)


def _mapping(v) -> bool:
    return isinstance(v, dict)


def _id(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _anything(v) -> bool:
    return True


# method: (handler method, the counter it uses, one check per argument)
METHODS = {
    "records.get": ("get", "reads", (_text, _id)),
    "records.query": ("query", "queries", (_text, _mapping)),
    "records.create": ("create", "writes", (_text, _mapping)),
    "records.update": ("update", "writes", (_text, _id, _mapping)),
    "records.delete": ("delete", "writes", (_text, _id)),
    "notify": ("notify", "writes", (_anything, _text)),
    "functions.call": ("call", "queries", (_text, _mapping)),
}


class CallBroker:
    def __init__(self, handler: ApiHandler | None, limits: Limits):
        self.handler, self.limits = handler, limits
        self.usage = {"reads": 0, "writes": 0, "queries": 0}
        self.limit_error: dict | None = None     # once set, every later call gets it

    def dispatch(self, method: Any, raw_args: Any) -> dict:
        """The reply message for one call message."""
        if self.limit_error is not None:
            return _reply(error=self.limit_error)
        entry = METHODS.get(method) if isinstance(method, str) else None
        if entry is None:
            return _api_error("unknown_method", f"There is no api call {method!r}.")
        name, counter, checks = entry
        try:
            args = protocol.decode(raw_args)
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
            return _api_error("bad_request", f"api {method}: unreadable arguments.")
        if not isinstance(args, list) or len(args) != len(checks) or not all(
                check(a) for check, a in zip(checks, args)):
            return _api_error("bad_request", f"api {method}: wrong arguments.")
        if self.handler is None:
            return _api_error("unavailable", "This function cannot call the API here.")
        if (refused := self._count(counter, 1)) is not None:    # counted before it runs, failed calls too
            return _reply(error=refused)
        try:
            value = getattr(self.handler, name)(*args)
        except Exception as exc:
            return self._handler_error(method, exc)
        if method == "records.query":                             # a query also reads what it returns
            records = value.get("records") if isinstance(value, dict) else None
            if (refused := self._count("reads", len(records or []))) is not None:
                return _reply(error=refused)
        try:
            return _reply(value=protocol.encode(value))
        except TypeError:
            log.exception("sandbox handler %s returned a value that is not data", name)
            return _api_error("internal", "The platform could not complete this call.")

    def _count(self, counter: str, n: int) -> dict | None:
        self.usage[counter] += n
        maximum = getattr(self.limits, counter)
        if self.usage[counter] > maximum:
            self.limit_error = limit_error(counter, self.usage[counter], maximum)
            return self.limit_error
        return None

    @staticmethod
    def _handler_error(method: str, exc: Exception) -> dict:
        code, message = getattr(exc, "code", None), getattr(exc, "message", None)
        if isinstance(code, str) and isinstance(message, str):
            fields = getattr(exc, "fields", None)
            try:
                fields = protocol.encode(fields or {})
            except TypeError:
                fields = {}
            return _api_error(code, message, fields)
        log.exception("sandbox api call %s failed", method)
        return _api_error("internal", "The platform could not complete this call.")


def _reply(value: Any = None, error: dict | None = None) -> dict:
    return {"op": "reply", "error": error} if error else {"op": "reply", "value": value}


def _api_error(code: str, message: str, fields: dict | None = None) -> dict:
    return _reply(error={"type": "api", "code": code, "message": message, "fields": fields or {}})
