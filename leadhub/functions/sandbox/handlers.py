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
                 caller: Callable[[str, dict], Any] | None = None):
        self.records, self.actor, self.notifier, self.caller = records, actor, notifier, caller

    def get(self, object_name: str, record_id: int) -> dict:
        return self.records.get(self.actor, object_name, record_id)

    def query(self, object_name: str, query: dict) -> dict:
        return self.records.query(self.actor, object_name, load_spec(query))

    def create(self, object_name: str, values: dict) -> dict:
        return self.records.create(self.actor, object_name, values)

    def update(self, object_name: str, record_id: int, values: dict) -> dict:
        return self.records.update(self.actor, object_name, record_id, values)

    def delete(self, object_name: str, record_id: int) -> None:
        self.records.delete(self.actor, object_name, record_id)

    def notify(self, user: Any, message: str) -> None:
        if self.notifier is None:
            raise BadRequest("Notifications are not available here.")
        self.notifier(user, message)

    def call(self, function: str, params: dict) -> Any:
        if self.caller is None:
            raise BadRequest("Calling other functions is not available here.")
        return self.caller(function, params)
