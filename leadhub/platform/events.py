"""Record events. Plugins subscribe in Python; the record service publishes
before/after insert, update, delete and restore inside the writing
transaction, and custom events (claimed, converted, ...) through `publish`.

prepare_insert and prepare_update come first, before the write transaction
takes any lock (`conn` is None): slow work that only looks at the values
(admins' before-save and validation functions) belongs there, so nobody
else's save waits on it. A handler may change `values` or refuse as a
before-handler does; the record service writes only if the stored rows are
still the versions the handlers saw.

A before-handler may change `event.values` or raise ValidationFailed to
refuse the write; an after-handler may write related records on
`event.conn`. Work that must wait for the commit (mail, webhooks, jobs)
goes to `event.on_commit`."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable

import sqlalchemy as sa

from leadhub.platform.errors import ValidationFailed
from leadhub.platform.permissions import Actor

RECORD_EVENTS = ("prepare_insert", "prepare_update", "before_insert", "after_insert", "before_update", "after_update",
                 "before_delete", "after_delete", "after_restore")


@dataclass
class RecordEvent:
    name: str
    object: str
    actor: Actor
    conn: sa.Connection | None             # None for prepare_* (no transaction is open)
    values: dict[str, Any]                 # the record as it will be (before_*) or is (after_*)
    old: dict[str, Any] | None = None      # the stored record, for updates and deletes
    record_id: int | None = None
    on_commit: Callable[[Callable[[], None]], None] = field(default=lambda fn: None)
    registry: Any = None                   # the metadata snapshot the write runs on

    def changed(self, name: str) -> bool:
        return self.old is not None and self.old.get(name) != self.values.get(name)


Handler = Callable[[RecordEvent], None]
BatchHandler = Callable[[list[RecordEvent]], None]


class EventBus:
    """Handlers run in the order they subscribed (those for one object before
    those for every object). A handler subscribed with batch=True takes the
    list of one write's events at once (a bulk write of 500 rows: one call),
    so it can look things up with one query instead of one per row."""

    def __init__(self):
        self._handlers: dict[tuple[str, str | None], list[tuple[Callable, bool]]] = defaultdict(list)
        self._wants: dict[Callable, Callable[[Any, str], bool]] = {}

    def subscribe(self, event: str, handler: Callable | None = None, *, object: str | None = None,
                  batch: bool = False, wants: Callable[[Any, str], bool] | None = None):
        """Subscribe `handler` to `event` for one object (or all when None).
        Usable as a decorator: @bus.subscribe("after_insert", object="lead").
        `wants(registry, object)` tells `has` whether the handler would do
        anything for that object now (a write skips the event otherwise)."""
        def add(fn: Callable) -> Callable:
            self._handlers[(event, object)].append((fn, batch))
            if wants is not None:
                self._wants[fn] = wants
            return fn
        return add(handler) if handler is not None else add

    def has(self, event: str, object: str, registry: Any = None) -> bool:
        for key in ((event, object), (event, None)):
            for fn, _batch in self._handlers.get(key, ()):
                wants = self._wants.get(fn)
                if wants is None or wants(registry, object):
                    return True
        return False

    def publish(self, ev: RecordEvent) -> None:
        self.publish_all([ev])

    def publish_all(self, events: list[RecordEvent], refused: Callable[[int, Exception], None] | None = None) -> None:
        """Every handler over the write's events, handler by handler. With
        `refused`, a row's ValidationFailed from a per-row handler is passed to
        it (with the row's index) and later handlers skip that row; without,
        it propagates. A batch handler refuses rows by returning
        {position in its list: ValidationFailed} (treated the same way); an
        exception it raises always propagates."""
        if not events:
            return
        live = list(enumerate(events))
        first = events[0]
        for key in ((first.name, first.object), (first.name, None)):
            for fn, batch in self._handlers.get(key, ()):
                if batch:
                    refusals = fn([ev for _i, ev in live])
                    if refusals:
                        for position in sorted(refusals):
                            if refused is None:
                                raise refusals[position]
                            refused(live[position][0], refusals[position])
                        live = [item for position, item in enumerate(live) if position not in refusals]
                    continue
                kept = []
                for i, ev in live:
                    try:
                        fn(ev)
                    except ValidationFailed as exc:
                        if refused is None:
                            raise
                        refused(i, exc)
                        continue
                    kept.append((i, ev))
                live = kept
