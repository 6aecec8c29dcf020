"""The detail page's panel slot: boxes a plugin shows on a record's page
(the lead plugin's follow-up box with its quick composer; a pool's claim
and return buttons). A plugin fills it in its web package:

    runtime.slots.add("record_panel", my_panel, object="lead", order=10)

A panel is called as panel(runtime, actor, object_name, record) with the
record as the reader sees it, and returns None (nothing to show to this
reader) or {"name": str, "title": str, "template": str, "context": dict};
the title is an English catalog string, shown in the reader's language; the
template is rendered inside the panel's card and reads `panel.context`.
Panels come in `order` (then as added). A panel that fails is left out
(logged), never the page."""
from __future__ import annotations

import logging

from leadhub.web.pages.i18n import gettext

log = logging.getLogger(__name__)


def panels(runtime, actor, obj_name: str, record: dict) -> list[dict]:
    entries = [(options.get("order", 100), i, panel)
               for i, (panel, options) in enumerate(runtime.slots.entries("record_panel"))
               if options.get("object") in (None, obj_name)]
    out = []
    for _order, _i, panel in sorted(entries, key=lambda e: e[:2]):
        try:
            shown = panel(runtime, actor, obj_name, record)
        except Exception:  # a plugin's bug must not take the record page down
            log.exception("record panel %r failed for %s %s", panel, obj_name, record.get("id"))
            continue
        if shown:
            out.append({**shown, "title": gettext(shown["title"])})
    return out
