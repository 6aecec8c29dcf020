"""Web-to-lead: forms an admin defines (which lead fields, required flags,
labels, the source and campaign leads get) and the public endpoint pages
post to.

- Metadata: items of the web_form kind, so /api/v1/meta/web-forms[/<api
  name or id>] with versions, diff and rollback like every kind (admins
  write; reading one shows its public key, submissions and embeddable HTML
  snippet). The public key and the count are state, kept in lh_web_form_keys.
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
import marshmallow as mm
from flask import has_request_context, request
from markupsafe import Markup
from sqlalchemy.dialects import postgresql, sqlite

from leadhub.metadata.kinds import Context, Item, Kind, Ref
from leadhub.platform import tables as t
from leadhub.platform.apinames import check_api_name
from leadhub.platform.errors import BadRequest, LeadhubError, NotFound, ValidationFailed
from leadhub.platform.labels import normalise_labels, pick
from leadhub.platform.permissions import Actor, require
from leadhub.platform.tables import metadata

log = logging.getLogger(__name__)

OBJECT = "lead"
HONEYPOT = "lh_website"       # a name bots like to fill
UTM = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
RESERVED = {"source", "campaign", "owner", *UTM}   # set by the form and the page, not the visitor
RATE_LIMIT = 10               # submissions per client address per form per minute
MAX_BODY = 64 * 1024
DEFAULT_MESSAGE = {"zh_CN": "提交成功，我们会尽快与您联系。", "en": "Thank you, we will be in touch soon."}

# what a form is (its definition) is an item of the web_form kind; these
# are its state: the public key its URL carries, how often it was submitted
form_keys = sa.Table(
    "lh_web_form_keys", metadata,
    sa.Column("form", sa.String(40), primary_key=True),           # the form's api name
    sa.Column("public_key", sa.String(64), nullable=False, unique=True),
    sa.Column("submissions", sa.Integer, nullable=False, default=0),
    info={"plugin": "lead"},       # made by the plugin's own migrations
)

hits_table = sa.Table(
    "lh_web_form_hits", metadata,
    sa.Column("form", sa.String(40), primary_key=True),
    sa.Column("client", sa.String(64), primary_key=True),
    sa.Column("minute", sa.BigInteger, primary_key=True),
    sa.Column("hits", sa.Integer, nullable=False),
    info={"plugin": "lead"},       # made by the plugin's own migrations
)


class TooManyRequests(LeadhubError):
    status = 429
    code = "too_many_requests"

    def __init__(self, retry_after: int):
        super().__init__(f"Too many submissions; try again in {retry_after} seconds.", {"form": "Rate limited."})
        self.retry_after = retry_after


# ---------------------------------------------------------------- definitions

PROPS = ("api_name", "name", "fields", "source", "campaign", "success_message", "redirect_url", "language",
         "active", "owner")


class FormSchema(mm.Schema):
    # the types here; what they must name (fields, a source option, a campaign, a user) in check_form
    class Meta:
        unknown = mm.RAISE
    api_name = mm.fields.String()
    name = mm.fields.String(required=True)
    fields = mm.fields.Raw(required=True)
    source = mm.fields.String(load_default="web_form")
    campaign = mm.fields.Integer(load_default=None, allow_none=True, strict=True)
    success_message = mm.fields.String(load_default=None, allow_none=True)
    redirect_url = mm.fields.String(load_default=None, allow_none=True)
    language = mm.fields.String(load_default="zh_CN", validate=mm.validate.OneOf(("zh_CN", "en")))
    active = mm.fields.Boolean(load_default=True, truthy={True}, falsy={False})
    owner = mm.fields.Raw(load_default=None)           # a user's id or login


def check_form(ctx: Context, data: dict, old: Item | None) -> dict:
    """A whole form definition; 400 naming each bad property. The owner is
    kept by login (a form moves between instances in a bundle); the API
    also takes a user id."""
    errors: dict[str, str] = {}
    lead = ctx.registry.get(OBJECT)
    out: dict[str, Any] = {}
    api_name = data.get("api_name")
    if api_name is None:
        api_name = old.key if old else _next_name(ctx)
    if (msg := check_api_name(api_name, kind="web form")):
        errors["api_name"] = msg
    out["api_name"] = api_name
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 100:
        errors["name"] = "1-100 characters."
    else:
        out["name"] = name.strip()
    out["fields"] = _check_fields(lead, data.get("fields"), errors)
    options = {o["value"] for o in lead.fields["source"].settings.get("options", []) if o["active"]} \
        if "source" in lead.fields else set()
    if data.get("source") not in options:
        errors["source"] = f"Must be one of lead.source's options: {', '.join(sorted(options))}."
    out["source"] = data.get("source")
    campaign = data.get("campaign")
    if campaign is not None:
        if isinstance(campaign, bool) or not isinstance(campaign, int) or not 0 < campaign < 2**63:
            errors["campaign"] = "A campaign record id."
        else:
            try:
                ctx.runtime.records.get(ctx.actor, "campaign", campaign, ["id"])
            except (NotFound, LeadhubError):
                errors["campaign"] = f"No campaign {campaign}."
    out["campaign"] = campaign
    message = data.get("success_message")
    if message is not None and (not isinstance(message, str) or len(message) > 1000):
        errors["success_message"] = "Text of at most 1000 characters."
    out["success_message"] = message or None
    url = data.get("redirect_url")
    if url not in (None, ""):
        parsed = urlparse(url) if isinstance(url, str) else None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc or len(url) > 500:
            errors["redirect_url"] = "An http(s) URL of at most 500 characters."
    out["redirect_url"] = url or None
    if data.get("language") not in ("zh_CN", "en"):
        errors["language"] = "zh_CN or en."
    out["language"] = data.get("language")
    if not isinstance(data.get("active"), bool):
        errors["active"] = "true or false."
    out["active"] = data.get("active")
    owner = data.get("owner")
    if owner is None and old is None and ctx.actor.user_id is not None:
        owner = ctx.actor.user_id          # a new form's leads are its author's, unless told otherwise
    if owner is not None:
        col = t.users.c.login if isinstance(owner, str) else t.users.c.id
        ok = isinstance(owner, str) or (isinstance(owner, int) and not isinstance(owner, bool) and 0 < owner < 2**31)
        login = ctx.conn.execute(sa.select(t.users.c.login).where(col == owner, t.users.c.active.is_(True))
                                 ).scalar() if ok else None
        if login is None:
            errors["owner"] = "An active user's id or login."
        owner = login
    out["owner"] = owner
    if errors:
        raise BadRequest("The web form definition is not valid.", errors)
    return out


def _next_name(ctx: Context) -> str:
    taken = set(ctx.registry.items.get("web_form", {}))
    n = len(taken) + 1
    while f"form_{n}" in taken:
        n += 1
    return f"form_{n}"


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


def form_changed(ctx: Context, old: Item | None, new: Item | None) -> None:
    """A new form gets its public key; a deleted one's key and counts go."""
    if new is not None and old is None:
        if not ctx.conn.execute(sa.select(form_keys.c.form).where(form_keys.c.form == new.key)).first():
            ctx.conn.execute(form_keys.insert().values(form=new.key, public_key=secrets.token_urlsafe(24),
                                                       submissions=0))
    elif new is None:
        ctx.conn.execute(hits_table.delete().where(hits_table.c.form == old.key))
        ctx.conn.execute(form_keys.delete().where(form_keys.c.form == old.key))


def present_form(runtime, item: Item) -> dict:
    """What the API shows beside the definition: the public URL and key, the
    embeddable HTML, the submissions so far, the owner's user id."""
    with runtime.db.read() as conn:
        state = conn.execute(sa.select(form_keys).where(form_keys.c.form == item.key)).mappings().first()
        owner = conn.execute(sa.select(t.users.c.id).where(t.users.c.login == item.data["owner"])).scalar() \
            if item.data.get("owner") else None
    if state is None:
        return {"owner": owner}
    form = {**item.data, "id": item.id, "public_key": state["public_key"]}
    base = request.host_url.rstrip("/") if has_request_context() else ""
    lead = runtime.cache.current().objects.get(OBJECT)
    return {"owner": owner, "owner_login": item.data.get("owner"), "public_key": state["public_key"],
            "submissions": state["submissions"], "post_url": f"{base}/forms/{state['public_key']}",
            "snippet": str(snippet(lead, form, base)) if lead else None}


KIND = Kind(
    name="web_form", url="web-forms", labels={"en": "Web forms", "zh_CN": "网页表单"}, schema=FormSchema,
    key="api_name", title="name", check=check_form, on_change=form_changed, present=present_form, plugin="lead",
    presented=("owner_login", "public_key", "submissions", "post_url", "snippet"),
    references=lambda d: [Ref("object", OBJECT, "fields")] + [
        Ref("field", f"{OBJECT}.{f['field']}", f"fields.{i}") for i, f in enumerate(d.get("fields") or [])
        if isinstance(f, dict) and isinstance(f.get("field"), str)]
    + ([Ref("user", d["owner"], "owner")] if isinstance(d.get("owner"), str) else []),
    order=lambda i: i.id, editor="lead_admin.web_forms",
    properties={"api_name": {"en": "API name", "zh_CN": "API 名称"}, "name": {"en": "Name", "zh_CN": "名称"},
                "fields": {"en": "Fields", "zh_CN": "字段"}, "source": {"en": "Lead source", "zh_CN": "线索来源"},
                "campaign": {"en": "Campaign", "zh_CN": "市场活动"},
                "success_message": {"en": "Message after sending", "zh_CN": "提交后提示"},
                "redirect_url": {"en": "Page after sending", "zh_CN": "提交后跳转"},
                "language": {"en": "Language", "zh_CN": "语言"}, "active": {"en": "Active", "zh_CN": "启用"},
                "owner": {"en": "Owner of its leads", "zh_CN": "线索负责人"}},
)


class WebForms:
    """The forms by the ids the admin pages use, and their submissions."""

    def __init__(self, runtime):
        self.runtime = runtime

    def _lead(self):
        return self.runtime.cache.current().get(OBJECT)

    def _item(self, form_id: Any) -> Item:
        return self.runtime.kinds.find(KIND.name, str(form_id))

    def create(self, actor: Actor, data: Any) -> dict:
        return self.runtime.kinds.create(actor, KIND.name, data)

    def update(self, actor: Actor, form_id: int, data: Any) -> dict:
        return self.runtime.kinds.update(actor, KIND.name, self._item(form_id).key, data)

    def delete(self, actor: Actor, form_id: int) -> None:
        self.runtime.kinds.delete(actor, KIND.name, self._item(form_id).key)

    def get(self, actor: Actor, form_id: int) -> dict:
        require(actor, OBJECT, "read")
        return self.runtime.kinds.view(self._item(form_id))

    def list(self, actor: Actor) -> list[dict]:
        require(actor, OBJECT, "read")
        return self.runtime.kinds.list(actor, KIND.name)

    def by_key(self, key: str) -> dict | None:
        """An active form by its public key, with its owner's user id."""
        if not key or len(key) > 64:
            return None
        with self.runtime.db.read() as conn:
            name = conn.execute(sa.select(form_keys.c.form).where(form_keys.c.public_key == key)).scalar()
        item = self.runtime.kinds.items(KIND.name).get(name) if name else None
        if item is None or not item.data["active"]:
            return None
        return {**self.runtime.kinds.view(item), "api_name": item.key}

    # ---- submissions
    def throttle(self, form: str, client: str, now: float | None = None) -> None:
        """Count this submission in the client's current minute; 429 past the limit."""
        now = time.time() if now is None else now
        minute = int(now // 60)
        limit = int(self.runtime.config.extra.get("webform_rate_limit", RATE_LIMIT))
        with self.runtime.db.write() as conn:
            conn.execute(hits_table.delete().where(hits_table.c.form == form, hits_table.c.minute < minute - 1))
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            stmt = dialect.insert(hits_table).values(form=form, client=client[:64], minute=minute, hits=1)
            hits = conn.execute(stmt.on_conflict_do_update(
                index_elements=[hits_table.c.form, hits_table.c.client, hits_table.c.minute],
                set_={"hits": hits_table.c.hits + 1}).returning(hits_table.c.hits)).scalar_one()
        if hits > limit:
            raise TooManyRequests(max(1, int((minute + 1) * 60 - now) + 1))

    def submit(self, form: dict, data: dict) -> int | None:
        """The lead made from a submission (None for a bot caught by the honeypot)."""
        if str(data.get(HONEYPOT) or "").strip():
            log.warning("web form %s: honeypot filled from %s; nothing stored", form["api_name"], request.remote_addr)
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
            fd = lead.fields.get(fname)
            if fd is not None and isinstance(value, str):
                value = fd.type.parse_text(fd, value)       # a checkbox's "on", 1,000, an option's label
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
        actor = Actor(user_id=None, login=f"web-form:{form['api_name']}", is_admin=True)
        with self.runtime.db.write() as conn:
            record = self.runtime.records.create(actor, OBJECT, payload)
            conn.execute(form_keys.update().where(form_keys.c.form == form["api_name"])
                         .values(submissions=form_keys.c.submissions + 1))
        return record["id"]


# ---------------------------------------------------------------- HTML

# the <input> type of each field type's widget (others are text)
_INPUT_TYPES = {"email": "email", "tel": "tel", "integer": "number", "decimal": "number", "date": "date",
                "datetime": "datetime-local", "url": "url"}

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
        elif fd.type.widget == "textarea":
            parts.append(Markup('<textarea id="{}-{}" name="{}" rows="4"{}></textarea>').format(form_id, name, name, required))
        elif fd.type.widget == "checkbox":
            parts.append(Markup('<input type="checkbox" id="{}-{}" name="{}"{}>').format(form_id, name, name, required))
        else:
            parts.append(Markup('<input type="{}" id="{}-{}" name="{}"{}>')
                         .format(_INPUT_TYPES.get(fd.type.widget, "text"), form_id, name, name, required))
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
    """Web forms need no event handlers (the public endpoints: web/webforms_api.py)."""
