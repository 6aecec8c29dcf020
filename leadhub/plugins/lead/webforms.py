"""Web-to-lead: forms an admin defines (which lead fields, required flags,
labels, the source and campaign leads get) and the public endpoint pages
post to.

- Metadata: GET|POST /api/v1/meta/web-forms, GET|PATCH|DELETE
  /api/v1/meta/web-forms/<id> (admins write; GET of one form includes its
  embeddable HTML snippet).
- Public: GET /forms/<key> serves a hosted page with the form; POST
  /forms/<key> takes form-encoded or JSON submissions (no session, so no
  CSRF; CORS open for JSON posts from the embedding site).

A submission is rate limited per client address per form (fixed one-minute
windows counted in lh_web_form_hits, so every process agrees; 429 with
Retry-After); a filled honeypot field gets the normal success answer and
stores nothing (logged); otherwise the lead is created through the record
service by a system actor, owned by the form's owner, with the form's source
and campaign and the page's utm_* parameters. The client address is
request.remote_addr: behind a proxy, deploy with ProxyFix so it is the
visitor's."""
from __future__ import annotations

import json
import logging
import secrets
import time
from typing import Any
from urllib.parse import urlparse

import sqlalchemy as sa
from flask import request
from markupsafe import Markup
from sqlalchemy.dialects import postgresql, sqlite

from leadhub.metadata.labels import normalise_labels, pick
from leadhub.platform import tables as t
from leadhub.platform.db import UTCDateTime, utcnow
from leadhub.platform.errors import BadRequest, LeadhubError, NotFound, ValidationFailed
from leadhub.platform.permissions import Actor, require, require_admin
from leadhub.platform.tables import metadata

log = logging.getLogger(__name__)

OBJECT = "lead"
HONEYPOT = "lh_website"       # a name bots like to fill
UTM = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
RESERVED = {"source", "campaign", "owner", *UTM}   # set by the form and the page, not the visitor
RATE_LIMIT = 10               # submissions per client address per form per minute
MAX_BODY = 64 * 1024
DEFAULT_MESSAGE = {"zh_CN": "提交成功，我们会尽快与您联系。", "en": "Thank you, we will be in touch soon."}

forms_table = sa.Table(
    "lh_web_forms", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("fields", sa.JSON, nullable=False),          # [{field, required, label: {en, zh_CN}}]
    sa.Column("source", sa.String(100), nullable=False),
    sa.Column("campaign", sa.BigInteger),
    sa.Column("success_message", sa.Text),
    sa.Column("redirect_url", sa.String(500)),
    sa.Column("language", sa.String(8), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("public_key", sa.String(64), nullable=False, unique=True),
    sa.Column("owner", sa.Integer, sa.ForeignKey("lh_users.id")),
    sa.Column("submissions", sa.Integer, nullable=False),
    sa.Column("created_by", sa.Integer, sa.ForeignKey("lh_users.id")),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

hits_table = sa.Table(
    "lh_web_form_hits", metadata,
    sa.Column("form_id", sa.Integer, sa.ForeignKey("lh_web_forms.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("client", sa.String(64), primary_key=True),
    sa.Column("minute", sa.BigInteger, primary_key=True),
    sa.Column("hits", sa.Integer, nullable=False),
)


class TooManyRequests(LeadhubError):
    status = 429
    code = "too_many_requests"

    def __init__(self, retry_after: int):
        super().__init__(f"Too many submissions; try again in {retry_after} seconds.", {"form": "Rate limited."})
        self.retry_after = retry_after


# ---------------------------------------------------------------- definitions

PROPS = {"name", "fields", "source", "campaign", "success_message", "redirect_url", "language", "active", "owner"}


class WebForms:
    def __init__(self, runtime):
        self.runtime = runtime

    def _lead(self):
        return self.runtime.cache.current().get(OBJECT)

    def check(self, actor: Actor, data: Any, old: dict | None = None) -> dict:
        """A form definition from a payload (all of it on create, any part on
        update); 400 naming each bad property."""
        if not isinstance(data, dict):
            raise BadRequest("The body must be a JSON object.", {"body": "Must be an object."})
        unknown = set(data) - PROPS
        if unknown:
            raise BadRequest(f"Unknown property: {', '.join(sorted(unknown))}.", {k: "Unknown property." for k in unknown})
        merged = {**(old or {"source": "web_form", "language": "zh_CN", "active": True, "owner": actor.user_id}),
                  **data}
        errors: dict[str, str] = {}
        lead = self._lead()
        out: dict[str, Any] = {}
        name = merged.get("name")
        if not isinstance(name, str) or not name.strip() or len(name.strip()) > 100:
            errors["name"] = "1-100 characters."
        else:
            out["name"] = name.strip()
        out["fields"] = self._check_fields(lead, merged.get("fields"), errors)
        options = {o["value"] for o in lead.fields["source"].settings.get("options", []) if o["active"]} \
            if "source" in lead.fields else set()
        if merged.get("source") not in options:
            errors["source"] = f"Must be one of lead.source's options: {', '.join(sorted(options))}."
        out["source"] = merged.get("source")
        campaign = merged.get("campaign")
        if campaign is not None:
            if isinstance(campaign, bool) or not isinstance(campaign, int) or not 0 < campaign < 2**63:
                errors["campaign"] = "A campaign record id."
            else:
                try:
                    self.runtime.records.get(actor, "campaign", campaign, ["id"])
                except (NotFound, LeadhubError):
                    errors["campaign"] = f"No campaign {campaign}."
        out["campaign"] = campaign
        message = merged.get("success_message")
        if message is not None and (not isinstance(message, str) or len(message) > 1000):
            errors["success_message"] = "Text of at most 1000 characters."
        out["success_message"] = message or None
        url = merged.get("redirect_url")
        if url not in (None, ""):
            parsed = urlparse(url) if isinstance(url, str) else None
            if parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc or len(url) > 500:
                errors["redirect_url"] = "An http(s) URL of at most 500 characters."
        out["redirect_url"] = url or None
        if merged.get("language") not in ("zh_CN", "en"):
            errors["language"] = "zh_CN or en."
        out["language"] = merged.get("language")
        if not isinstance(merged.get("active"), bool):
            errors["active"] = "true or false."
        out["active"] = merged.get("active")
        owner = merged.get("owner")
        if owner is not None:
            with self.runtime.db.read() as conn:
                ok = isinstance(owner, int) and not isinstance(owner, bool) and 0 < owner < 2**31 and conn.execute(
                    sa.select(t.users.c.id).where(t.users.c.id == owner, t.users.c.active.is_(True))).first()
            if not ok:
                errors["owner"] = "An active user's id."
        out["owner"] = owner
        if errors:
            raise BadRequest("The web form definition is not valid.", errors)
        return out

    @staticmethod
    def _check_fields(lead, fields: Any, errors: dict) -> list[dict]:
        if not isinstance(fields, list) or not fields:
            errors["fields"] = "A non-empty list of {field, required, label}."
            return []
        out, seen = [], set()
        for i, item in enumerate(fields):
            key = f"fields.{i}"
            if isinstance(item, str):
                item = {"field": item}
            if not isinstance(item, dict) or set(item) - {"field", "required", "label"}:
                errors[key] = "An object with field, required, label."
                continue
            fname = item.get("field")
            fd = lead.fields.get(fname) if isinstance(fname, str) else None
            if fd is None or not fd.writable or fd.system or fname in RESERVED:
                errors[key] = f"{fname!r} is not a lead field a visitor may fill."
                continue
            if fname in seen:
                errors[key] = f"{fname} appears twice."
                continue
            seen.add(fname)
            required = item.get("required", fd.required)
            if not isinstance(required, bool):
                errors[f"{key}.required"] = "true or false."
                continue
            try:
                label = normalise_labels(item["label"]) if item.get("label") is not None else None
            except ValueError as exc:
                errors[f"{key}.label"] = str(exc)
                continue
            out.append({"field": fname, "required": required or fd.required, "label": label})
        missing = [f.api_name for f in lead.custom_fields()
                   if f.required and f.writable and f.default is None and f.api_name not in seen]
        if missing and "fields" not in errors:
            errors["fields"] = f"Leads require {', '.join(missing)}; add them to the form."
        return out

    def create(self, actor: Actor, data: Any) -> dict:
        require_admin(actor)
        values = self.check(actor, data)
        now = utcnow()
        with self.runtime.db.write() as conn:
            form_id = conn.execute(forms_table.insert().values(
                **values, public_key=secrets.token_urlsafe(24), submissions=0, created_by=actor.user_id,
                created_at=now, updated_at=now)).inserted_primary_key[0]
        return self.get(actor, form_id)

    def update(self, actor: Actor, form_id: int, data: Any) -> dict:
        require_admin(actor)
        old = self._load(form_id)
        values = self.check(actor, data, {k: old[k] for k in PROPS})
        with self.runtime.db.write() as conn:
            conn.execute(forms_table.update().where(forms_table.c.id == form_id).values(**values, updated_at=utcnow()))
        return self.get(actor, form_id)

    def delete(self, actor: Actor, form_id: int) -> None:
        require_admin(actor)
        self._load(form_id)
        with self.runtime.db.write() as conn:
            conn.execute(hits_table.delete().where(hits_table.c.form_id == form_id))
            conn.execute(forms_table.delete().where(forms_table.c.id == form_id))

    def _load(self, form_id: int) -> dict:
        with self.runtime.db.read() as conn:
            row = conn.execute(sa.select(forms_table).where(forms_table.c.id == form_id)).mappings().first()
        if row is None:
            raise NotFound(f"No web form {form_id}.")
        return dict(row)

    def by_key(self, key: str) -> dict | None:
        if not key or len(key) > 64:
            return None
        with self.runtime.db.read() as conn:
            row = conn.execute(sa.select(forms_table).where(forms_table.c.public_key == key)).mappings().first()
        return dict(row) if row is not None and row["active"] else None

    def get(self, actor: Actor, form_id: int, base_url: str = "") -> dict:
        require(actor, OBJECT, "read")
        form = self._load(form_id)
        return {**form, "post_url": f"{base_url}/forms/{form['public_key']}",
                "snippet": str(snippet(self._lead(), form, base_url))}

    def list(self, actor: Actor) -> list[dict]:
        require(actor, OBJECT, "read")
        with self.runtime.db.read() as conn:
            return [dict(r) for r in conn.execute(sa.select(forms_table).order_by(forms_table.c.id)).mappings()]

    # ---- submissions
    def throttle(self, form_id: int, client: str, now: float | None = None) -> None:
        """Count this submission in the client's current minute; 429 past the limit."""
        now = time.time() if now is None else now
        minute = int(now // 60)
        limit = int(self.runtime.config.extra.get("webform_rate_limit", RATE_LIMIT))
        with self.runtime.db.write() as conn:
            conn.execute(hits_table.delete().where(hits_table.c.form_id == form_id, hits_table.c.minute < minute - 1))
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            stmt = dialect.insert(hits_table).values(form_id=form_id, client=client[:64], minute=minute, hits=1)
            hits = conn.execute(stmt.on_conflict_do_update(
                index_elements=[hits_table.c.form_id, hits_table.c.client, hits_table.c.minute],
                set_={"hits": hits_table.c.hits + 1}).returning(hits_table.c.hits)).scalar_one()
        if hits > limit:
            raise TooManyRequests(max(1, int((minute + 1) * 60 - now) + 1))

    def submit(self, form: dict, data: dict) -> int | None:
        """The lead made from a submission (None for a bot caught by the honeypot)."""
        if str(data.get(HONEYPOT) or "").strip():
            log.warning("web form %s: honeypot filled from %s; nothing stored", form["id"], request.remote_addr)
            return None
        payload: dict[str, Any] = {}
        errors: dict[str, str] = {}
        lead = self._lead()
        for item in form["fields"]:
            fname = item["field"]
            value = data.get(fname)
            if isinstance(value, str):
                value = value.strip()
            if value in (None, "", []):
                if item["required"]:
                    errors[fname] = "This field is required."
                continue
            if lead.fields.get(fname) is not None and lead.fields[fname].type_name == "boolean" and value == "on":
                value = True
            payload[fname] = value
        if errors:
            raise ValidationFailed(errors)
        for name in UTM:
            value = data.get(name)
            if isinstance(value, str) and value.strip() and name in lead.fields:
                payload[name] = value.strip()[:100]
        payload["source"] = form["source"]
        if form["campaign"] is not None:
            payload["campaign"] = form["campaign"]
        if form["owner"] is not None:
            payload["owner"] = form["owner"]
        actor = Actor(user_id=None, login=f"web-form:{form['id']}", is_admin=True)
        with self.runtime.db.write() as conn:
            record = self.runtime.records.create(actor, OBJECT, payload)
            conn.execute(forms_table.update().where(forms_table.c.id == form["id"])
                         .values(submissions=forms_table.c.submissions + 1))
        return record["id"]


# ---------------------------------------------------------------- HTML

_INPUT_TYPES = {"email": "email", "phone": "tel", "integer": "number", "decimal": "number", "currency": "number",
                "percent": "number", "date": "date", "datetime": "datetime-local", "url": "url"}

# Copies utm_* from the host page's address into the form's hidden fields.
_UTM_SCRIPT = """<script>(function(){var f=document.getElementById(%s);if(!f)return;
var q=new URLSearchParams(window.location.search);
["utm_source","utm_medium","utm_campaign","utm_term","utm_content"].forEach(function(n){
var v=q.get(n);if(v&&f.elements[n])f.elements[n].value=v.slice(0,100);});})();</script>"""


def snippet(lead, form: dict, base_url: str = "") -> Markup:
    """A plain HTML form posting to the public endpoint: one input per field,
    hidden utm_* fields a small script fills from the page's URL, and the
    honeypot moved off screen by CSS (not type=hidden, which bots skip)."""
    lang = form["language"]
    form_id = f"lh-form-{form['public_key']}"
    parts = [Markup('<form id="{}" class="lh-web-form" method="post" action="{}" accept-charset="utf-8">')
             .format(form_id, f"{base_url}/forms/{form['public_key']}")]
    for item in form["fields"]:
        fd = lead.fields.get(item["field"])
        if fd is None:
            continue
        label = pick(item.get("label"), lang) or fd.label(lang)
        required = Markup(" required") if item["required"] else Markup("")
        star = Markup(" *") if item["required"] else Markup("")
        name = item["field"]
        parts.append(Markup('<p><label for="{}-{}">{}{}</label><br>').format(form_id, name, label, star))
        if "options" in fd.settings:
            opts = Markup("").join(Markup('<option value="{}">{}</option>').format(o["value"], pick(o["label"], lang))
                                   for o in fd.settings["options"] if o["active"])
            parts.append(Markup('<select id="{}-{}" name="{}"{}><option value=""></option>{}</select>')
                         .format(form_id, name, name, required, opts))
        elif fd.type_name == "long_text":
            parts.append(Markup('<textarea id="{}-{}" name="{}" rows="4"{}></textarea>').format(form_id, name, name, required))
        elif fd.type_name == "boolean":
            parts.append(Markup('<input type="checkbox" id="{}-{}" name="{}"{}>').format(form_id, name, name, required))
        else:
            parts.append(Markup('<input type="{}" id="{}-{}" name="{}"{}>')
                         .format(_INPUT_TYPES.get(fd.type_name, "text"), form_id, name, name, required))
        parts.append(Markup("</p>"))
    for name in UTM:
        parts.append(Markup('<input type="hidden" name="{}">').format(name))
    parts.append(Markup('<div style="position:absolute;left:-10000px;top:auto;width:1px;height:1px;overflow:hidden" '
                        'aria-hidden="true"><label>Website <input type="text" name="{}" tabindex="-1" '
                        'autocomplete="off"></label></div>').format(HONEYPOT))
    parts.append(Markup('<p><button type="submit">{}</button></p></form>').format("提交" if lang == "zh_CN" else "Submit"))
    parts.append(Markup(_UTM_SCRIPT % json.dumps(form_id)))
    return Markup("\n").join(parts)


def register(runtime) -> None:
    """Web forms need no event handlers (their endpoints: web/webforms_api.py)."""
