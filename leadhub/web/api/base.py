"""The API's shared pieces: the /api/v1 blueprint, bearer-token or session
authentication, the caller's language and the runtime. Every route module
(and a plugin's API) imports these from here; the package imports the route
modules, so nothing imports back up."""
from __future__ import annotations

from flask import Blueprint, current_app, g, request, session

from leadhub.platform import auth
from leadhub.platform.errors import Forbidden, Unauthorized
from flask_wtf.csrf import CSRFError

from leadhub.web.session import SAFE_METHODS, csrf

api = Blueprint("api", __name__, url_prefix="/api/v1")


def runtime():
    return current_app.extensions["leadhub"]


@api.before_request
def authenticate():
    """A bearer token, or a browser session whose unsafe calls carry the CSRF
    token in X-CSRF-Token."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        g.actor = auth.authenticate(runtime().db, runtime().cache, token.strip())
        token_limits(g.actor)
        return
    if session.get("uid"):
        if request.method not in SAFE_METHODS:
            try:
                csrf.protect()
            except CSRFError:
                raise Forbidden("Send the page's CSRF token in X-CSRF-Token.", {"csrf": "Missing or wrong."}) from None
        g.actor = auth.session_actor(runtime().db, runtime().cache, session["uid"], session.get("sid"))
        return
    raise Unauthorized("Send 'Authorization: Bearer <token>' or sign in. Create a token with `leadhub token create --user NAME`.")


READS_BY_POST = frozenset({"api.query_records"})        # POSTs that only read
OPEN_TO_OBJECT_TOKENS = frozenset({"api.me", "api.search", "api.openapi_document"})


def token_limits(actor) -> None:
    """The one place a token's limits apply, before any endpoint runs: a
    read-only token only reads; a token limited to some objects only
    reaches their records (and who it is, search, the API's description).
    Endpoints about anything else (users, audit, imports, functions,
    notifications, tokens, settings) refuse it."""
    if actor.read_only and request.method not in SAFE_METHODS and request.endpoint not in READS_BY_POST:
        raise Forbidden("This token is read-only.", {"token": "Read-only."})
    if actor.token_objects is None:
        return
    name = (request.view_args or {}).get("name")
    if name is None and request.endpoint in OPEN_TO_OBJECT_TOKENS and request.method in SAFE_METHODS:
        return
    if name is None or name not in actor.token_objects:
        limited = ", ".join(sorted(actor.token_objects)) or "no object"
        raise Forbidden(f"This token is limited to {limited}; it cannot be used here.", {"token": "Limited to objects."})


def language() -> str:
    """The caller's language: Accept-Language when it names one we ship, else the user's."""
    best = request.accept_languages.best_match(["zh-CN", "zh", "en"])
    if best:
        return "en" if best == "en" else "zh_CN"
    return getattr(g, "actor", None).language if getattr(g, "actor", None) else "zh_CN"
