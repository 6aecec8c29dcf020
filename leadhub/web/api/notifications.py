"""The caller's notifications: the bell's count, the list, marking read."""
from __future__ import annotations

from flask import g, request

from leadhub.web.api.base import api, runtime
from leadhub.web.jsonio import int_arg


@api.get("/notifications")
def list_notifications():
    unread = request.args.get("unread", "").lower() in ("1", "true", "yes")
    return runtime().notifications.list(g.actor, unread_only=unread, page=int_arg("page", 1, 1, 100_000),
                                        page_size=int_arg("page_size", 50, 1, 500))


@api.get("/notifications/count")
def count_notifications():
    return {"unread": runtime().notifications.unread_count(g.actor)}


@api.post("/notifications/<id:notification_id>/read")
def read_notification(notification_id):
    return runtime().notifications.mark_read(g.actor, notification_id)


@api.post("/notifications/read-all")
def read_all_notifications():
    return {"updated": runtime().notifications.mark_all_read(g.actor)}
