"""The detail page's timeline slot. A plugin fills it by registering a
source in its register(runtime):

    from leadhub.web.pages.timeline import provide
    provide(runtime, my_items, object="lead")   # object=None: every object

A source is called as source(runtime, actor, object_name, record_id) and
returns items {"at": datetime, "title": str, "body": str | None,
"kind": str, "url": str | None}; it reads through the record service with
the actor it is given, so rights apply. Items from all sources are merged,
newest first. A source that fails is skipped (logged), never the page."""
from __future__ import annotations

import datetime as dt
import logging
import weakref
from typing import Callable

log = logging.getLogger(__name__)
Source = Callable[..., list[dict]]
_sources: "weakref.WeakKeyDictionary[object, list[tuple[str | None, Source]]]" = weakref.WeakKeyDictionary()


def provide(runtime, source: Source, *, object: str | None = None) -> None:
    _sources.setdefault(runtime, []).append((object, source))


def items(runtime, actor, obj_name: str, record_id: int, limit: int = 50) -> list[dict]:
    out = []
    for wanted, source in _sources.get(runtime, ()):
        if wanted not in (None, obj_name):
            continue
        try:
            out.extend(source(runtime, actor, obj_name, record_id) or [])
        except Exception:  # a plugin's bug must not take the record page down
            log.exception("timeline source %r failed for %s %s", source, obj_name, record_id)
    epoch = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
    out.sort(key=lambda i: i.get("at") or epoch, reverse=True)
    return out[:limit]
