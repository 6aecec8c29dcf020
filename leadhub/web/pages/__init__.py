"""The generated pages (records, search, home) and the admin designer, as
Flask blueprints; `register(app)` adds them, the translations and the
template helpers to the app."""
from __future__ import annotations

from flask import Blueprint, Flask, abort, g, redirect, request, session

from leadhub.web.pages import i18n
from leadhub.web.pages.common import template_globals
from leadhub.web.session import local_path

lang_bp = Blueprint("language", __name__)


@lang_bp.post("/language")
def set_language():
    """The language switcher: the user's own setting when signed in, else
    remembered for this browser session."""
    lang = request.form.get("language")
    if lang not in i18n.LANGUAGES:
        abort(400, "language must be zh_CN or en.")
    session["lang"] = lang
    if session.get("uid"):          # a signed-in user keeps it: his setting, on every device
        from leadhub.platform import auth
        from leadhub.platform.errors import Unauthorized
        from leadhub.web.pages.common import runtime
        rt = runtime()
        try:
            rt.org.update_me(auth.session_actor(rt.db, rt.cache, session["uid"], session.get("sid")), {"language": lang})
        except Unauthorized:
            session.clear()
    return redirect(local_path(request.form.get("back")))


def register(app: Flask) -> None:
    from leadhub.web.pages import bundles, functions, imports, jobs, kinds  # noqa: F401  (their routes join the admin and page blueprints)
    from leadhub.web.pages.admin import bp as admin_bp
    from leadhub.web.pages.inbox import bp as inbox_bp
    from leadhub.web.pages.records import bp as pages_bp

    app.jinja_env.add_extension("jinja2.ext.i18n")
    app.jinja_env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)
    app.jinja_env.globals.update(template_globals())
    app.jinja_env.filters["label"] = i18n.label
    # a message made at run time (it may repeat what the user typed): translated
    # when the catalog knows it, and escaped, unlike _(), whose result Jinja trusts
    app.jinja_env.filters["message"] = lambda text: i18n.gettext(str(text))
    app.register_blueprint(pages_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(inbox_bp)
    app.register_blueprint(lang_bp)

    @app.before_request
    def _language():
        g.lang = i18n.choose()  # page blueprints refine it with the user's setting
