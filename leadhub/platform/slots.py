"""Named slots: the places where plugins extend the kernel and the pages
without the kernel naming them. A plugin fills a slot in its
register(runtime); whoever shows the slot asks for its entries:

    runtime.slots.add("timeline", source, object="lead")     # the lead plugin
    for source, options in runtime.slots.entries("timeline"): ...   # the record page

Slots in use: "timeline" (record-page timeline sources, see
web/pages/timeline.py). Entries live on the runtime, one set per process,
so a second runtime (tests, tools) starts empty."""
from __future__ import annotations

from typing import Any


class Slots:
    def __init__(self):
        self._entries: dict[str, list[tuple[Any, dict]]] = {}

    def add(self, slot: str, value: Any, **options: Any) -> None:
        self._entries.setdefault(slot, []).append((value, options))

    def entries(self, slot: str) -> list[tuple[Any, dict]]:
        return list(self._entries.get(slot, ()))
