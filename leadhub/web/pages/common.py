"""What every page needs: the runtime, the signed-in user's Actor, the CSRF
check on every form post, and errors rendered as pages (a 404 page for a
record out of scope, exactly as the API answers 404)."""
from __future__ import annotations

from flask import current_app, g, redirect, render_template, request, session, url_for

from leadhub.platform import auth, permissions
from leadhub.platform.errors import LeadhubError, Unauthorized
from leadhub.platform.permissions import Actor
from leadhub.web.pages import i18n
from leadhub.web.pages.i18n import gettext as _
from leadhub.web.session import csrf_token, local_path  # noqa: F401 (pages import it from here)


def runtime():
    return current_app.extensions["leadhub"]


def actor() -> Actor:
    return g.actor


def require_signed_in():
    """before_request of the page blueprints: a session and a live user (the
    CSRF token of every unsafe method was checked by CSRFProtect)."""
    uid = session.get("uid")
    if not uid:
        return redirect(url_for("session.login_form", next=request.full_path.rstrip("?")))
    rt = runtime()
    try:
        g.actor = auth.session_actor(rt.db, rt.cache, uid, session.get("sid"))
    except Unauthorized:
        session.clear()
        return redirect(url_for("session.login_form"))
    g.lang = i18n.choose(g.actor.language)
    return None


def require_admin():
    """before_request of the designer's blueprints (the kernel's and plugins'):
    signed in as above, and an admin (403 otherwise)."""
    redirect_ = require_signed_in()
    if redirect_ is not None:
        return redirect_
    permissions.require_admin(actor())
    return None


def user_choices() -> list[dict]:
    """Active users as (id, name) for owner and user pickers: one SELECT
    (org.list_users reads every user's roles too, a query per user)."""
    import sqlalchemy as sa
    from leadhub.platform import tables as t
    with runtime().db.read() as conn:
        rows = conn.execute(sa.select(t.users.c.id, t.users.c.name).where(t.users.c.active.is_(True))
                            .order_by(t.users.c.name)).all()
    return [{"id": r.id, "name": r.name, "active": True} for r in rows]


def render_error(exc: LeadhubError):
    titles = {400: _("Bad request"), 401: _("Sign in first"), 403: _("Not allowed"),
              404: _("Not found"), 409: _("Conflict"), 422: _("Invalid input")}
    return render_template("error.html", status=exc.status, title=titles.get(exc.status, _("Error")),
                           message=_(exc.message), fields=exc.fields), exc.status


def render_http_error(exc):
    return render_template("error.html", status=exc.code, title=exc.name, message=exc.description,
                           fields={}), exc.code


def template_globals() -> dict:
    from leadhub.web.pages import fields
    return {"csrf_token": csrf_token, "L": i18n.label, "lang": i18n.current,
            "display": fields.display, "options": fields.options, "widget": fields.widget, "table": fields.table,
            "local_time": fields.local_time}
