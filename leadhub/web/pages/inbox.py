"""The bell's page: the signed-in user's in-app notifications, newest first,
marked read one by one or all at once (runtime.notifications, the same
service as GET /api/v1/notifications)."""
from __future__ import annotations

from flask import Blueprint, g, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from leadhub.platform.errors import BadRequest, LeadhubError
from leadhub.web.pages.common import actor, render_error, render_http_error, require_signed_in, runtime

bp = Blueprint("inbox", __name__)
bp.before_request(require_signed_in)
bp.register_error_handler(LeadhubError, render_error)
bp.register_error_handler(HTTPException, render_http_error)
PAGE_SIZE = 30


@bp.app_context_processor
def _bell():
    """The unread count in every signed-in page's header (one indexed count)."""
    a = g.get("actor")
    if a is None or a.user_id is None:
        return {"unread": 0}
    return {"unread": runtime().notifications.unread_count(a)}


@bp.get("/notifications")
def notifications():
    try:
        page = int(request.args.get("page", 1))
    except ValueError:
        raise BadRequest("page must be a whole number.", {"page": "Not a number."}) from None
    unread_only = request.args.get("unread") == "1"
    out = runtime().notifications.list(actor(), unread_only=unread_only, page=page, page_size=PAGE_SIZE)
    return render_template("notifications.html", items=out["notifications"], page=page, unread_only=unread_only,
                           has_more=len(out["notifications"]) == PAGE_SIZE, tz=runtime().config.timezone)


@bp.post("/notifications/<id:nid>/read")
def read(nid):
    item = runtime().notifications.mark_read(actor(), nid)
    link = item.get("link") if request.form.get("open") else None
    if link and link.startswith("/") and not link.startswith("//"):
        return redirect(link)
    return redirect(url_for("inbox.notifications"))


@bp.post("/notifications/read-all")
def read_all():
    runtime().notifications.mark_all_read(actor())
    return redirect(url_for("inbox.notifications"))
