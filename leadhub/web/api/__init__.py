"""The REST API under /api/v1: bearer-token auth, JSON errors as DESIGN.md
says ({"error": {"code", "message", "fields"}}), and the area blueprints."""
from __future__ import annotations

from flask import Blueprint, current_app, g, request

from leadhub.platform import auth
from leadhub.platform.errors import LeadhubError, Unauthorized

api = Blueprint("api", __name__, url_prefix="/api/v1")


def runtime():
    return current_app.extensions["leadhub"]


@api.before_request
def authenticate():
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send 'Authorization: Bearer <token>'. Create one with `leadhub token create --user NAME`.")
    g.actor = auth.authenticate(runtime().db, runtime().cache, token.strip())


def language() -> str:
    """The caller's language: Accept-Language when it names one we ship, else the user's."""
    best = request.accept_languages.best_match(["zh-CN", "zh", "en"])
    if best:
        return "en" if best == "en" else "zh_CN"
    return getattr(g, "actor", None).language if getattr(g, "actor", None) else "zh_CN"


from leadhub.web.api import meta, records, openapi  # noqa: E402,F401  (routes register on import)

__all__ = ["api", "runtime", "language", "LeadhubError"]
