"""Named slots: the places where plugins extend the kernel and the pages
without the kernel naming them. A plugin fills a slot in its
register(runtime); whoever shows the slot asks for its entries:

    runtime.slots.add("timeline", source, object="lead")     # the lead plugin
    for source, options in runtime.slots.entries("timeline"): ...   # the record page

Slots in use: "timeline" (record-page timeline sources, see
web/pages/timeline.py), "record_panel" (boxes on a record's page, see
web/pages/panels.py), "handover" ("keep": an object whose records stay
with their owner when a user's records are handed over, see
data/ownership.py), "admin_nav" (entries of the designer's navigation,
{endpoint, label, shown}, see web/pages/admin.py) and "scope" (grants that
widen who may read or edit records, see identity.load_principal). A plugin also keeps the one object it needs per
runtime here (`one`: the follow-up service with its clock, the scoring
engine with its caches) rather than in a module-level registry. Entries live
on the runtime, one set per process, so a second runtime (tests, tools)
starts empty."""
from __future__ import annotations

import threading
from typing import Any, Callable


class Slots:
    def __init__(self):
        self._entries: dict[str, list[tuple[Any, dict]]] = {}
        self._ones: dict[str, Any] = {}
        self._lock = threading.Lock()

    def one(self, name: str, make: Callable[[], Any]) -> Any:
        """The object named `name` on this runtime, made by `make()` the first time."""
        with self._lock:
            if name not in self._ones:
                self._ones[name] = make()
            return self._ones[name]

    def add(self, slot: str, value: Any, **options: Any) -> None:
        self._entries.setdefault(slot, []).append((value, options))

    def entries(self, slot: str) -> list[tuple[Any, dict]]:
        return list(self._entries.get(slot, ()))
