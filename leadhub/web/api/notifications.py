"""The caller's notifications: the bell's count, the list, marking read."""
from __future__ import annotations

from flask import g, request

from leadhub.platform.errors import BadRequest
from leadhub.web.api.base import api, runtime


def _int_arg(name: str, default: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number.", {name: "Not a number."}) from None


@api.get("/notifications")
def list_notifications():
    unread = request.args.get("unread", "").lower() in ("1", "true", "yes")
    return runtime().notifications.list(g.actor, unread_only=unread, page=_int_arg("page", 1),
                                        page_size=_int_arg("page_size", 50))


@api.get("/notifications/count")
def count_notifications():
    return {"unread": runtime().notifications.unread_count(g.actor)}


@api.post("/notifications/<id:notification_id>/read")
def read_notification(notification_id):
    return runtime().notifications.mark_read(g.actor, notification_id)


@api.post("/notifications/read-all")
def read_all_notifications():
    return {"updated": runtime().notifications.mark_all_read(g.actor)}
