"""Browser sessions: sign-in and sign-out forms, and the CSRF token every
form and every cookie-authenticated unsafe API call must carry (Flask-WTF's
CSRFProtect checks every unsafe request to a page; the API, whose bearer
tokens carry no cookie, is exempt and checks its cookie path itself)."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from flask_wtf.csrf import CSRFProtect, generate_csrf

from leadhub.platform import audit, auth, sessions
from leadhub.platform.errors import Unauthorized

bp = Blueprint("session", __name__)
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


csrf = CSRFProtect()
# the token lives as long as the session (no hour limit: a form left open over lunch still saves)
CSRF_SETTINGS = {"WTF_CSRF_TIME_LIMIT": None, "WTF_CSRF_HEADERS": ["X-CSRF-Token"],
                 "WTF_CSRF_FIELD_NAME": "csrf_token"}


def csrf_token() -> str:
    return generate_csrf()


def local_path(target: str | None, default: str = "/") -> str:
    """`target` if it is a path on this site, else `default`: an open redirect
    would let a phishing link bounce through us. Browsers drop tabs and
    newlines and read a backslash as a slash, so "/\t/evil.example" and
    "/\\evil.example" lead off-site; anything holding those is refused."""
    if not target or not target.startswith("/") or "\\" in target or \
            any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith("//"):
        return default
    return target


@bp.get("/login")
def login_form():
    return render_template("login.html", csrf=csrf_token(), next=local_path(request.args.get("next")), error=None)


@bp.post("/login")
def login():
    rt = current_app.extensions["leadhub"]
    try:
        actor = auth.sign_in(rt.db, rt.cache, request.form.get("login", ""), request.form.get("password", ""),
                             ip=request.remote_addr)
    except Unauthorized as exc:
        return render_template("login.html", csrf=csrf_token(), next=local_path(request.form.get("next")),
                               error=exc.message), 401
    session.clear()  # a new session id after sign-in: no fixation
    with rt.db.write() as conn:
        session["sid"] = sessions.start(conn, actor.user_id, request.remote_addr)
    session["uid"] = actor.user_id
    session.permanent = True
    return redirect(local_path(request.form.get("next")))


@bp.post("/logout")
def logout():
    rt = current_app.extensions["leadhub"]
    if session.get("uid"):
        try:
            actor = auth.session_actor(rt.db, rt.cache, session["uid"], session.get("sid"))
        except Unauthorized:
            actor = None                    # already ended: nothing to end or audit
        if actor is not None:
            with rt.db.write() as conn:
                sessions.end(conn, session.get("sid"))     # a copy of this cookie no longer works
                audit.record(conn, actor, "sign_out", ip=request.remote_addr)
    session.clear()
    return redirect(url_for("session.login_form"))
