"""The `api` object a function receives. It holds no connection and no
secret: every call becomes a message to the pool, which executes it in the
parent through the run's handler and counts it against the limits.

Slots and "_"-names only: the function cannot read `_state` (names starting
with "_" are refused) nor add or replace attributes."""
from __future__ import annotations

from typing import Any

from leadhub.functions.sandbox.runstate import FieldError, RunState


class Records:
    __slots__ = ("_state",)

    def __init__(self, state: RunState):
        self._state = state

    def get(self, object_name: str, record_id: int) -> dict:
        return self._state.call("records.get", [object_name, record_id])

    def query(self, object_name: str, query: dict | None = None) -> dict:
        """{"filter", "sort", "fields", "page", "page_size"} as the REST API
        takes them; returns {"records": [...], "has_more", ...}."""
        return self._state.call("records.query", [object_name, {} if query is None else query])

    def create(self, object_name: str, values: dict) -> dict:
        return self._state.call("records.create", [object_name, values])

    def update(self, object_name: str, record_id: int, values: dict) -> dict:
        return self._state.call("records.update", [object_name, record_id, values])

    def delete(self, object_name: str, record_id: int) -> None:
        return self._state.call("records.delete", [object_name, record_id])

    def __repr__(self) -> str:
        return "<api.records>"


class Api:
    __slots__ = ("records", "_state")

    def __init__(self, state: RunState):
        self.records = Records(state)
        self._state = state

    def error(self, field: str, message: str) -> None:
        """Fail the save with `message` on `field`; ends the run."""
        self._state.check()
        raise FieldError(str(field), str(message))

    def log(self, *values: Any) -> None:
        self._state.write_log(" ".join(str(v) for v in values) + "\n")

    def notify(self, user: Any, message: str) -> None:
        """An in-app notification (and e-mail, when configured) to a user id."""
        return self._state.call("notify", [user, message])

    def call(self, function: str, params: dict | None = None) -> Any:
        """Run another function (an API or action function) and return its result."""
        return self._state.call("functions.call", [function, {} if params is None else params])

    def __repr__(self) -> str:
        return "<api>"
