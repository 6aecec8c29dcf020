"""The detail page's timeline slot. A plugin fills it by adding a source
to the runtime's "timeline" slot in its register(runtime):

    runtime.slots.add("timeline", my_items, object="lead")   # no object: every object

A source is called as source(runtime, actor, object_name, record_id) and
returns items {"at": datetime, "title": str, "body": str | None,
"kind": str, "url": str | None}; it reads through the record service with
the actor it is given, so rights apply. Items from all sources are merged,
newest first. A source that fails is skipped (logged), never the page."""
from __future__ import annotations

import datetime as dt
import logging

log = logging.getLogger(__name__)


def items(runtime, actor, obj_name: str, record_id: int, limit: int = 50) -> list[dict]:
    out = []
    for source, options in runtime.slots.entries("timeline"):
        if options.get("object") not in (None, obj_name):
            continue
        try:
            out.extend(source(runtime, actor, obj_name, record_id) or [])
        except Exception:  # a plugin's bug must not take the record page down
            log.exception("timeline source %r failed for %s %s", source, obj_name, record_id)
    epoch = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
    out.sort(key=lambda i: i.get("at") or epoch, reverse=True)
    return out[:limit]
