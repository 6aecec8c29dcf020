"""Web-to-lead over HTTP: the public endpoints pages post to (/forms/<key>);
form definitions are items of the web_form kind (/api/v1/meta/web-forms);
the rules live in ../webforms.py."""
from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, redirect, request
from markupsafe import Markup

from leadhub.platform.errors import LeadhubError
from leadhub.plugins.lead.webforms import DEFAULT_MESSAGE, MAX_BODY, TooManyRequests, WebForms, snippet
from leadhub.web.session import csrf


def _page(title: str, body: Markup, status: int = 200) -> Response:
    html = Markup('<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" '
                  'content="width=device-width, initial-scale=1"><title>{}</title></head>'
                  '<body style="max-width:36em;margin:2em auto;font-family:sans-serif">'
                  '<h1>{}</h1>{}</body></html>').format(title, title, body)
    return Response(str(html), status=status, mimetype="text/html")


# ---------------------------------------------------------------- blueprints

def _runtime():
    return current_app.extensions["leadhub"]


def _public_blueprint() -> Blueprint:
    bp = Blueprint("lead_web_forms_public", __name__)
    csrf.exempt(bp)            # posted from other sites by anyone: throttled and validated instead

    def cors(resp: Response) -> Response:
        resp.headers["Access-Control-Allow-Origin"] = "*"
        resp.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        resp.headers["Access-Control-Allow-Headers"] = "Content-Type"
        return resp

    def wants_json() -> bool:
        return request.is_json or request.accept_mimetypes.best == "application/json"

    def not_found() -> Response:
        if wants_json():
            return cors(Response(json.dumps({"error": {"code": "not_found", "message": "No such form.",
                                                       "fields": {}}}), 404, mimetype="application/json"))
        return _page("Not found", Markup("<p>This form does not exist or is closed.</p>"), 404)

    # OPTIONS is answered below with CORS headers, not by Flask's default
    @bp.get("/forms/<key>", provide_automatic_options=False)
    def hosted(key):
        forms = WebForms(_runtime())
        form = forms.by_key(key)
        if form is None:
            return not_found()
        return _page(form["name"], snippet(forms._lead(), form, request.host_url.rstrip("/")))

    @bp.route("/forms/<key>", methods=["OPTIONS"])
    def preflight(key):
        return cors(Response("", 204))

    @bp.post("/forms/<key>", provide_automatic_options=False)
    def submit(key):
        forms = WebForms(_runtime())
        form = forms.by_key(key)
        if form is None:
            return not_found()
        request.max_content_length = MAX_BODY
        as_json = wants_json()
        try:
            forms.throttle(form["api_name"], request.remote_addr or "unknown")
            if request.is_json:
                from leadhub.web.jsonio import body
                data = body()
            else:
                data = request.form.to_dict()
            forms.submit(form, data)
        except TooManyRequests as exc:
            resp = answer_error(exc, as_json, form)
            resp.headers["Retry-After"] = str(exc.retry_after)
            return resp
        except LeadhubError as exc:
            return answer_error(exc, as_json, form)
        message = form["success_message"] or DEFAULT_MESSAGE[form["language"]]
        if as_json:
            return cors(Response(json.dumps({"ok": True, "message": message}, ensure_ascii=False), 201,
                                 mimetype="application/json"))
        if form["redirect_url"]:
            return redirect(form["redirect_url"], 303)
        return _page(form["name"], Markup("<p>{}</p>").format(message))

    def answer_error(exc: LeadhubError, as_json: bool, form: dict) -> Response:
        status = exc.status
        if as_json:
            return cors(Response(json.dumps(exc.to_dict(), ensure_ascii=False, default=str), status,
                                 mimetype="application/json"))
        lines = Markup("").join(Markup("<li>{}: {}</li>").format(k, v) for k, v in exc.fields.items())
        back = Markup('<p><a href="javascript:history.back()">&larr;</a></p>')
        return _page(form["name"], Markup("<p>{}</p><ul>{}</ul>{}").format(exc.message, lines, back), status)

    return bp


def blueprints() -> list:
    return [_public_blueprint()]
