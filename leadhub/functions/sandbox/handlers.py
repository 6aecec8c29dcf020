"""The API handler backed by leadhub's RecordService: a function's calls
run as `actor`, through the one record service, so permissions, field
rights, validation, events, history and roll-ups apply exactly as they do
for the REST API. Errors are LeadhubErrors (code, message, fields); the
broker hands them to the function as ApiError."""
from __future__ import annotations

from typing import Any, Callable

from leadhub.data.query import load_spec
from leadhub.data.records import RecordService
from leadhub.platform.errors import BadRequest
from leadhub.platform.permissions import Actor


class RecordServiceHandler:
    def __init__(self, records: RecordService, actor: Actor,
                 notifier: Callable[[Any, str], None] | None = None,
                 caller: Callable[[str, dict], Any] | None = None, *, read_only: bool = False):
        self.records, self.actor, self.notifier, self.caller = records, actor, notifier, caller
        self.read_only = read_only

    def _may_change(self, what: str) -> None:
        """Before-save and validation functions run before the save's
        transaction, so nothing they wrote could be undone with a refused
        save: they read, and change only the record being saved (by
        returning the changes)."""
        if self.read_only:
            raise BadRequest(f"A before-save or validation function cannot {what}: return the record's changes "
                             "instead, or do it in an after-save function.")

    def get(self, object_name: str, record_id: int) -> dict:
        return self.records.get(self.actor, object_name, record_id)

    def query(self, object_name: str, query: dict) -> dict:
        return self.records.query(self.actor, object_name, load_spec(query))

    def create(self, object_name: str, values: dict) -> dict:
        self._may_change("create records")
        return self.records.create(self.actor, object_name, values)

    def update(self, object_name: str, record_id: int, values: dict) -> dict:
        self._may_change("update records")
        return self.records.update(self.actor, object_name, record_id, values)

    def delete(self, object_name: str, record_id: int) -> None:
        self._may_change("delete records")
        self.records.delete(self.actor, object_name, record_id)

    def notify(self, user: Any, message: str) -> None:
        self._may_change("send notifications")
        if self.notifier is None:
            raise BadRequest("Notifications are not available here.")
        self.notifier(user, message)

    def call(self, function: str, params: dict) -> Any:
        self._may_change("call other functions")
        if self.caller is None:
            raise BadRequest("Calling other functions is not available here.")
        return self.caller(function, params)
