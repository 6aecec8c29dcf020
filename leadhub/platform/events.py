"""Record events. Plugins subscribe in Python; the record service publishes
before/after insert, update, delete and restore inside the writing
transaction, and custom events (claimed, converted, ...) through `publish`.

A before-handler may change `event.values` or raise ValidationFailed to
refuse the write; an after-handler may write related records on
`event.conn`. Work that must wait for the commit (mail, webhooks, jobs)
goes to `event.on_commit`."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable

import sqlalchemy as sa

from leadhub.platform.permissions import Actor

RECORD_EVENTS = ("before_insert", "after_insert", "before_update", "after_update",
                 "before_delete", "after_delete", "after_restore")


@dataclass
class RecordEvent:
    name: str
    object: str
    actor: Actor
    conn: sa.Connection
    values: dict[str, Any]                 # the record as it will be (before_*) or is (after_*)
    old: dict[str, Any] | None = None      # the stored record, for updates and deletes
    record_id: int | None = None
    on_commit: Callable[[Callable[[], None]], None] = field(default=lambda fn: None)
    registry: Any = None                   # the metadata snapshot the write runs on

    def changed(self, name: str) -> bool:
        return self.old is not None and self.old.get(name) != self.values.get(name)


Handler = Callable[[RecordEvent], None]


class EventBus:
    def __init__(self):
        self._handlers: dict[tuple[str, str | None], list[Handler]] = defaultdict(list)

    def subscribe(self, event: str, handler: Handler | None = None, *, object: str | None = None):
        """Subscribe `handler` to `event` for one object (or all when None).
        Usable as a decorator: @bus.subscribe("after_insert", object="lead")."""
        def add(fn: Handler) -> Handler:
            self._handlers[(event, object)].append(fn)
            return fn
        return add(handler) if handler is not None else add

    def has(self, event: str, object: str) -> bool:
        return bool(self._handlers.get((event, object)) or self._handlers.get((event, None)))

    def publish(self, ev: RecordEvent) -> None:
        for fn in self._handlers.get((ev.name, ev.object), ()):
            fn(ev)
        for fn in self._handlers.get((ev.name, None), ()):
            fn(ev)
