"""The Flask app factory."""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from flask import Flask, jsonify, render_template, request
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from leadhub.platform.config import Config
from leadhub.platform.errors import LeadhubError
from leadhub.runtime import Runtime
from leadhub.web.converters import RecordIdConverter
from leadhub.web.jsonio import JSONProvider

MAX_BODY = 16 * 1024 * 1024
BUSY_RETRY_AFTER = 5            # seconds


def create_app(config: Config | None = None, runtime: Runtime | None = None) -> Flask:
    runtime = runtime or Runtime(config).start()
    app = Flask(__name__)
    app.json = JSONProvider(app)
    app.url_map.converters["id"] = RecordIdConverter
    app.config.update(SECRET_KEY=runtime.config.secret_key, MAX_CONTENT_LENGTH=MAX_BODY,
                      SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_SECURE=runtime.config.secure_cookies,
                      PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=12))
    app.extensions["leadhub"] = runtime

    from leadhub.web.api import api
    from leadhub.web.session import CSRF_SETTINGS, bp as session_bp, csrf
    app.config.update(CSRF_SETTINGS)
    csrf.init_app(app)
    csrf.exempt(api)               # bearer tokens carry no cookie; its cookie path checks itself
    app.register_blueprint(api)
    app.register_blueprint(session_bp)
    from leadhub.web import pages
    pages.register(app)  # generated pages (home is /), designer under /admin/
    for plugin in runtime.plugins.discover().values():
        for bp in (plugin.web() if plugin.web else ()):
            if (bp.url_prefix or "").startswith("/api/"):
                csrf.exempt(bp)    # a plugin's API authenticates like the kernel's (web/api/base.authenticate)
            app.register_blueprint(bp)
    from leadhub.web import ratelimits
    ratelimits.install(app, runtime)

    @app.errorhandler(LeadhubError)
    def leadhub_error(exc: LeadhubError):
        return jsonify(exc.to_dict()), exc.status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if request.path.startswith("/api/"):
            code = (exc.name or "error").lower().replace(" ", "_")
            return jsonify({"error": {"code": code, "message": exc.description, "fields": {}}}), exc.code
        return exc

    @app.errorhandler(RateLimitExceeded)
    def too_many(exc: RateLimitExceeded):
        message = "Too many attempts from your address; wait a minute and try again."
        if request.path.startswith("/api/"):
            return jsonify({"error": {"code": "too_many_requests", "message": message, "fields": {}}}), 429
        from leadhub.web.pages.i18n import gettext
        return render_template("error.html", status=429, title=gettext("Too many attempts"),
                               message=gettext(message), fields={}), 429

    @app.errorhandler(CSRFError)
    def form_expired(exc: CSRFError):
        from leadhub.web.pages.i18n import gettext
        message = gettext("The form expired; reload the page and try again.")
        return render_template("error.html", status=400, title=gettext("Bad request"), message=message,
                               fields={}), 400

    @app.errorhandler(sa.exc.OperationalError)
    def database_busy(exc: sa.exc.OperationalError):
        """SQLite lets one writer at a time; a write that waited its whole
        timeout is told to come back (503, Retry-After), not a 500."""
        if "database is locked" not in str(exc.orig):
            raise exc
        message = "The database is busy with another write; try again in a few seconds."
        if request.path.startswith("/api/"):
            response = jsonify({"error": {"code": "busy", "message": message, "fields": {}}})
        else:
            from leadhub.web.pages.i18n import gettext    # the pages' catalog; pages import this module's app
            response = render_template("error.html", status=503, title=gettext("Busy"), message=gettext(message),
                                       fields={})
        return response, 503, {"Retry-After": str(BUSY_RETRY_AFTER)}

    @app.get("/healthz")
    def health():
        runtime.cache.current()
        return {"status": "ok"}

    return app
