"""The Flask app factory."""
from __future__ import annotations

import datetime as dt

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from leadhub.platform.config import Config
from leadhub.platform.errors import LeadhubError
from leadhub.runtime import Runtime
from leadhub.web.converters import RecordIdConverter
from leadhub.web.jsonio import JSONProvider

MAX_BODY = 16 * 1024 * 1024


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
    from leadhub.web.session import bp as session_bp
    app.register_blueprint(api)
    app.register_blueprint(session_bp)
    from leadhub.web import pages
    pages.register(app)  # generated pages (home is /), designer under /admin/
    for plugin in runtime.plugins.discover().values():
        for bp in (plugin.web() if plugin.web else ()):
            app.register_blueprint(bp)

    @app.errorhandler(LeadhubError)
    def leadhub_error(exc: LeadhubError):
        return jsonify(exc.to_dict()), exc.status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if request.path.startswith("/api/"):
            code = (exc.name or "error").lower().replace(" ", "_")
            return jsonify({"error": {"code": code, "message": exc.description, "fields": {}}}), exc.code
        return exc

    @app.get("/healthz")
    def health():
        runtime.cache.current()
        return {"status": "ok"}

    return app
