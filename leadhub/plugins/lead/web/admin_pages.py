"""The lead plugin's admin pages under /admin/leads/ (admins only), next to
the kernel's designer: duplicate rules (with the draft check and scans),
blacklists and sensitive words, scoring (rules, event types, settings,
rescoring), web forms (with the embeddable snippet) and follow-up deadline
rules (with the timeliness table).

Server-rendered forms, POST then redirect; every change goes through the
same function the plugin's REST endpoint calls, so the pages validate
nothing themselves: a LeadhubError's `fields` are shown beside the inputs
and nothing is saved. Form strings become the service's payload here
(numbers that look like numbers become ints, anything else is passed on for
the service to name).

The kernel's admin nav shows "Leads settings" through the runtime's
"admin_nav" slot ({endpoint, label, shown}), which this blueprint fills when
registered: shown once the plugin is installed."""
from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from leadhub.platform import permissions
from leadhub.platform.errors import LeadhubError, NotFound
from leadhub.plugins.lead import cleaning, dedupe, duplicate_rules as rules, duplicate_scan as scans
from leadhub.plugins.lead import scoring_config as scoring, scoring_jobs
from leadhub.web.pages.common import actor, render_error, render_http_error, require_admin, runtime, user_choices
from leadhub.web.pages.i18n import gettext as _

OBJECT = "lead"
MAX_CONDITIONS = 5
SCAN_GROUPS_SHOWN = 50
DRAFT_FIELDS = ("name", "company", "mobile", "email", "wechat", "province", "city")
NAV_LABEL = "Leads settings"
BLACKLIST = "blacklist"

bp = Blueprint("lead_admin", __name__, url_prefix="/admin/leads", template_folder="templates")
bp.register_error_handler(LeadhubError, render_error)
bp.register_error_handler(HTTPException, render_http_error)

# What the pages call things (the services' values stay as they are).
ACTION_LABELS = {"mark": "Mark as duplicate", "collect": "Collect into the existing record",
                 "route": "Route to the existing record's owner", "tag_only": "Tag only"}
NORMALISER_LABELS = {"e164": "Phone number (E.164)", "lower": "Text, ignoring case", "company_name": "Company name",
                     "exact": "Exact value"}
BLACKLIST_LABELS = {"phone": "Phone numbers", "email": "E-mail addresses", "email_domain": "E-mail domains",
                    "company": "Company names", "keyword": "Keywords", "sensitive": "Sensitive words"}
STRENGTH_LABELS = {"strong": "Strong", "medium": "Medium", "weak": "Weak"}
JOB_STATUS_LABELS = {"queued": "Queued", "running": "Running", "done": "Done", "finished": "Done", "failed": "Failed"}


def _installed() -> bool:
    return OBJECT in runtime().plugins.installed()


@bp.record_once
def _nav_entry(state) -> None:
    state.app.extensions["leadhub"].slots.add(
        "admin_nav", {"endpoint": "lead_admin.index", "label": NAV_LABEL, "shown": _installed})


@bp.context_processor
def _labels():
    return {"ACTION_LABELS": ACTION_LABELS, "NORMALISER_LABELS": NORMALISER_LABELS,
            "BLACKLIST_LABELS": BLACKLIST_LABELS, "STRENGTH_LABELS": STRENGTH_LABELS,
            "JOB_STATUS_LABELS": JOB_STATUS_LABELS, "tz": runtime().config.timezone, "msg": _msg}


def _msg(text) -> str:
    """A service's message in the page's language when the catalog has it, as
    plain text: Jinja's own _() marks its result safe, and these messages may
    quote what was typed."""
    return _(str(text))


@bp.before_request
def _admins_only():
    refused = require_admin()
    if refused is None and OBJECT not in runtime().cache.current().objects:
        raise NotFound("The lead plugin is not installed.")
    return refused


def _errors(exc: LeadhubError) -> dict:
    return {**exc.fields, "_": exc.message}


def _number(raw: str | None, cast=int) -> Any:
    """A form string as the payload's number: empty is None, a number its value,
    anything else the text itself (the service says what is wrong with it)."""
    text = (raw or "").strip()
    if not text:
        return None
    try:
        return cast(text)
    except ValueError:
        return text


def _lead():
    return runtime().cache.current().get(OBJECT)


# ------------------------------------------------------------------ overview
@bp.get("/")
def index():
    rt = runtime()
    dup_rules = rules.load_rules(rt.cache.current(), OBJECT, active_only=False)
    from leadhub.plugins.lead.webforms import WebForms
    counts = {"duplicate_rules": len(dup_rules), "blacklists": len(rt.kinds.items(BLACKLIST)),
              "scoring_rules": len(rt.kinds.items(scoring.RULE_KIND.name)), "web_forms": len(WebForms(rt).list(actor())),
              "follow_up_rules": len(rt.kinds.items("follow_up_rule"))}
    return render_template("lead_admin/index.html", counts=counts, quarantine_url=_quarantine_url())


def _quarantine_url() -> str:
    """The shared list view of quarantined leads, or the same filter when an admin removed it."""
    wanted = {"field": "status", "op": "eq", "value": "invalid"}
    for view in runtime().layouts.list_views(actor(), OBJECT):
        if view.get("filter") == wanted and not view.get("filter_error"):
            return url_for("pages.list_records", name=OBJECT, view=view["id"])
    import json
    return url_for("pages.list_records", name=OBJECT, filter=json.dumps(wanted))


# ------------------------------------------------------------------ duplicate rules
@bp.get("/duplicate-rules")
def duplicate_rules():
    items = rules.load_rules(runtime().cache.current(), OBJECT, active_only=False)
    draft, result, errors = {}, None, {}
    if request.args.get("check"):
        draft = {k: request.args.get(k, "").strip() for k in DRAFT_FIELDS if request.args.get(k, "").strip()}
        try:
            result = dedupe.check_draft(runtime(), actor(), OBJECT, draft)
        except LeadhubError as exc:
            errors = _errors(exc)
    return render_template("lead_admin/duplicate_rules.html", items=items, lead=_lead(), draft=draft,
                           draft_fields=DRAFT_FIELDS, result=result, errors=errors), 400 if errors else 200


@bp.get("/duplicate-rules/new")
def new_duplicate_rule():
    values = {"active": True, "action": "mark", "match_objects": [OBJECT],
              "conditions": [{"field": "company", "normaliser": "company_name", "threshold": 85},
                             {"field": "city", "normaliser": "exact"}]}
    return _rule_editor(None, values, {})


@bp.post("/duplicate-rules/new")
def create_duplicate_rule():
    payload = _rule_payload()
    try:
        rule = runtime().kinds.create(actor(), rules.KIND.name, payload)
    except LeadhubError as exc:
        return _rule_editor(None, payload, _errors(exc)), exc.status
    flash(_("Duplicate rule saved."), "ok")
    return redirect(url_for("lead_admin.edit_duplicate_rule", name=rule["name"]))


@bp.get("/duplicate-rules/<name>")
def edit_duplicate_rule(name):
    rule = rules.get_rule(runtime().cache.current(), name)
    return _rule_editor(rule, rule.to_api(), {})


@bp.post("/duplicate-rules/<name>")
def update_duplicate_rule(name):
    rule = rules.get_rule(runtime().cache.current(), name)
    payload = _rule_payload()
    payload.pop("name", None)
    try:
        runtime().kinds.update(actor(), rules.KIND.name, name, payload)
    except LeadhubError as exc:
        return _rule_editor(rule, {**payload, "name": name}, _errors(exc)), exc.status
    flash(_("Duplicate rule saved."), "ok")
    return redirect(url_for("lead_admin.edit_duplicate_rule", name=name))


@bp.post("/duplicate-rules/<name>/delete")
def delete_duplicate_rule(name):
    runtime().kinds.delete(actor(), rules.KIND.name, name)
    flash(_("Duplicate rule deleted."), "ok")
    return redirect(url_for("lead_admin.duplicate_rules"))


@bp.post("/duplicate-rules/<name>/scan")
def scan_duplicate_rule(name):
    scans.start_scan(runtime(), actor(), name)
    flash(_("Scan started."), "ok")
    return redirect(url_for("lead_admin.edit_duplicate_rule", name=name) + "#scan")


def _rule_payload() -> dict:
    form = request.form
    conditions = []
    for i in range(MAX_CONDITIONS):
        field = form.get(f"cond-{i}-field", "").strip()
        threshold = form.get(f"cond-{i}-threshold", "").strip()
        if not field and not threshold:
            continue                   # an untouched row; the rows left are renumbered on re-render
        cond = {"field": field, "normaliser": form.get(f"cond-{i}-normaliser", "")}
        if threshold:
            cond["threshold"] = _number(threshold)
        conditions.append(cond)
    return {"name": form.get("name", "").strip(), "label": form.get("label", "").strip() or None,
            "active": form.get("active") == "on", "action": form.get("action", "mark"),
            "match_objects": form.getlist("match_objects") or None,
            "window_months": _number(form.get("window_months")), "conditions": conditions}


def _rule_editor(rule, values: dict, errors: dict):
    reg = runtime().cache.current()
    lead = reg.get(OBJECT)
    fields = [f for f in lead.fields.values() if not f.system and not f.type.computed]
    conditions = list(values.get("conditions") or [])
    rows = conditions + [{}] * max(0, min(MAX_CONDITIONS, max(len(conditions) + 1, 2)) - len(conditions))
    objects = sorted(reg.objects.values(), key=lambda o: o.api_name)
    scan, groups = None, []
    if rule is not None:
        try:
            scan = scans.get_scan(runtime(), rule.name)
        except NotFound:
            scan = None
        if scan:
            groups = _scan_groups(scan)
    return render_template("lead_admin/duplicate_rule.html", rule=rule, values=values, errors=errors, rows=rows,
                           fields=fields, objects=objects, actions=rules.ACTIONS, normalisers=rules.NORMALISERS,
                           scan=scan, groups=groups)


def _scan_groups(scan: dict) -> list[dict]:
    """The first groups of a scan, each record with its name (read as this admin)."""
    shown = scan["groups"][:SCAN_GROUPS_SHOWN]
    wanted: dict[str, set[int]] = {}
    for group in shown:
        for rec in group["records"]:
            wanted.setdefault(rec["object"], set()).add(rec["id"])
    names: dict[tuple[str, int], str] = {}
    reg = runtime().cache.current()
    from leadhub.data.query import QuerySpec
    for obj_name, ids in wanted.items():
        obj = reg.objects.get(obj_name)
        if obj is None or "read" not in actor().rights(obj_name).actions:
            continue
        name_field = obj.name_field or "id"
        fields = list(dict.fromkeys(["id", name_field] + (["company"] if "company" in obj.fields else [])))
        spec = QuerySpec(filter={"field": "id", "op": "in", "value": sorted(ids)}, fields=fields, page_size=len(ids))
        for rec in runtime().records.query(actor(), obj_name, spec)["records"]:
            text = " · ".join(str(rec[f]) for f in fields[1:] if rec.get(f) not in (None, ""))
            names[(obj_name, rec["id"])] = text or f"#{rec['id']}"
    return [{"key": g["key"], "size": g["size"],
             "records": [{**r, "name": names.get((r["object"], r["id"]), f"#{r['id']}")} for r in g["records"]]}
            for g in shown]


# ------------------------------------------------------------------ blacklists
@bp.get("/blacklists")
def blacklists():
    return _blacklist_page({}, {})


@bp.post("/blacklists")
def add_blacklist_entry():
    payload = {"type": request.form.get("type", ""), "value": request.form.get("value", ""),
               "note": request.form.get("note", "").strip() or None}
    try:
        runtime().kinds.create(actor(), BLACKLIST, payload)
    except LeadhubError as exc:
        return _blacklist_page(payload, _errors(exc)), exc.status
    flash(_("Entry added."), "ok")
    return redirect(url_for("lead_admin.blacklists", type=payload["type"]))


@bp.post("/blacklists/<id:entry_id>/delete")
def delete_blacklist_entry(entry_id):
    runtime().kinds.delete(actor(), BLACKLIST, str(entry_id))
    flash(_("Entry deleted."), "ok")
    return redirect(url_for("lead_admin.blacklists", type=request.form.get("back_type") or None))


def _blacklist_page(values: dict, errors: dict):
    kind = request.args.get("type") or values.get("type") or ""
    if kind not in cleaning.BLACKLIST_TYPES:
        kind = ""
    entries = runtime().kinds.list(actor(), BLACKLIST, {"type": kind} if kind else None)
    return render_template("lead_admin/blacklists.html", entries=entries, kind=kind, kinds=cleaning.BLACKLIST_TYPES,
                           values=values, errors=errors, quarantine_url=_quarantine_url())


# ------------------------------------------------------------------ scoring
@bp.get("/scoring")
def scoring_page():
    return _scoring_page(None, {})


def _latest_job() -> dict | None:
    from leadhub.plugins.lead.scoring_tables import score_jobs
    jobs = score_jobs
    with runtime().db.read() as conn:
        row = conn.execute(sa.select(jobs).where(jobs.c.kind == "rescore").order_by(jobs.c.id.desc()).limit(1)
                           ).mappings().first()
    return scoring_jobs.job_out(row) if row is not None else None


def _scoring_page(settings_values: dict | None, errors: dict, status: int = 200):
    rt = runtime()
    settings = rt.kinds.get(actor(), scoring.SETTINGS_KIND.name, "default")
    values = settings_values if settings_values is not None else {
        "half_life_days": settings["half_life_days"], "mql_threshold": settings["mql_threshold"],
        **{f"grade_{g}": settings["grades"].get(g) for g in scoring.GRADES}}
    return render_template("lead_admin/scoring.html", rules=rt.kinds.list(actor(), scoring.RULE_KIND.name),
                           event_types=rt.kinds.list(actor(), scoring.EVENT_TYPE_KIND.name), settings=settings,
                           values=values,
                           errors=errors, job=_latest_job(), grades=scoring.GRADES), status


@bp.post("/scoring/settings")
def save_scoring_settings():
    form = request.form
    values = {"half_life_days": form.get("half_life_days", ""), "mql_threshold": form.get("mql_threshold", ""),
              **{f"grade_{g}": form.get(f"grade_{g}", "") for g in scoring.GRADES}}
    half_life = _number(values["half_life_days"], float)
    payload = {"half_life_days": half_life if half_life is not None else "",
               "grades": {g: _number(values[f"grade_{g}"]) for g in scoring.GRADES},
               "mql_threshold": _number(values["mql_threshold"])}
    try:
        out = runtime().kinds.update(actor(), scoring.SETTINGS_KIND.name, "default", payload)
    except LeadhubError as exc:
        return _scoring_page(values, _errors(exc), exc.status)
    _flash_job(_("Settings saved."), out.get("rescore_job"))
    return redirect(url_for("lead_admin.scoring_page"))


@bp.post("/scoring/rescore")
def rescore():
    rt = runtime()
    permissions.require_admin(actor())
    with rt.db.write() as conn:
        scoring_jobs.request(rt, conn, actor(), "rescore")
    flash(_("Rescoring started."), "ok")
    return redirect(url_for("lead_admin.scoring_page") + "#rescore")


def _flash_job(message: str, job_id: int | None) -> None:
    if job_id:
        message += " " + _("Every lead is being rescored (job %(id)s).") % {"id": job_id}
    flash(message, "ok")


@bp.get("/scoring/rules/new")
def new_scoring_rule():
    return _scoring_rule_editor(None, {"active": True, "points": 10}, {})


@bp.post("/scoring/rules/new")
def create_scoring_rule():
    payload = _scoring_rule_payload()
    try:
        out = runtime().kinds.create(actor(), scoring.RULE_KIND.name, payload)
    except LeadhubError as exc:
        return _scoring_rule_editor(None, payload, _errors(exc)), exc.status
    _flash_job(_("Scoring rule saved."), out.get("rescore_job"))
    return redirect(url_for("lead_admin.scoring_page"))


@bp.get("/scoring/rules/<id:rule_id>")
def edit_scoring_rule(rule_id):
    rule = runtime().kinds.get(actor(), scoring.RULE_KIND.name, str(rule_id))
    return _scoring_rule_editor(rule, rule, {})


@bp.post("/scoring/rules/<id:rule_id>")
def update_scoring_rule(rule_id):
    rule = runtime().kinds.get(actor(), scoring.RULE_KIND.name, str(rule_id))
    payload = _scoring_rule_payload()
    try:
        out = runtime().kinds.update(actor(), scoring.RULE_KIND.name, rule["key"], payload)
    except LeadhubError as exc:
        return _scoring_rule_editor(rule, payload, _errors(exc)), exc.status
    _flash_job(_("Scoring rule saved."), out.get("rescore_job"))
    return redirect(url_for("lead_admin.scoring_page"))


@bp.post("/scoring/rules/<id:rule_id>/delete")
def delete_scoring_rule(rule_id):
    out = runtime().kinds.delete(actor(), scoring.RULE_KIND.name, str(rule_id))
    _flash_job(_("Scoring rule deleted."), out.get("rescore_job"))
    return redirect(url_for("lead_admin.scoring_page"))


def _scoring_rule_payload() -> dict:
    form = request.form
    return {"label": form.get("label", "").strip(), "condition": form.get("condition", "").replace("\r\n", "\n"),
            "points": _number(form.get("points")), "active": form.get("active") == "on"}


def _scoring_rule_editor(rule, values: dict, errors: dict):
    fields = sorted(f.api_name for f in _lead().fields.values())
    return render_template("lead_admin/scoring_rule.html", rule=rule, values=values, errors=errors, fields=fields)


@bp.get("/scoring/events/new")
def new_event_type():
    return _event_type_editor(None, {"active": True, "strength": "medium", "points": 10}, {})


@bp.post("/scoring/events/new")
def create_event_type():
    payload = _event_type_payload()
    try:
        runtime().kinds.create(actor(), scoring.EVENT_TYPE_KIND.name, payload)
    except LeadhubError as exc:
        return _event_type_editor(None, payload, _errors(exc)), exc.status
    flash(_("Event type saved."), "ok")
    return redirect(url_for("lead_admin.scoring_page") + "#events")


@bp.get("/scoring/events/<key>")
def edit_event_type(key):
    event = runtime().kinds.get(actor(), scoring.EVENT_TYPE_KIND.name, key)
    return _event_type_editor(event, event, {})


@bp.post("/scoring/events/<key>")
def update_event_type(key):
    event = runtime().kinds.get(actor(), scoring.EVENT_TYPE_KIND.name, key)
    payload = _event_type_payload()
    payload.pop("key", None)
    try:
        runtime().kinds.update(actor(), scoring.EVENT_TYPE_KIND.name, key, payload)
    except LeadhubError as exc:
        return _event_type_editor(event, {**payload, "key": key}, _errors(exc)), exc.status
    flash(_("Event type saved."), "ok")
    return redirect(url_for("lead_admin.scoring_page") + "#events")


@bp.post("/scoring/events/<key>/delete")
def delete_event_type(key):
    try:
        runtime().kinds.delete(actor(), scoring.EVENT_TYPE_KIND.name, key)
    except LeadhubError as exc:
        if exc.status != 409:
            raise
        flash(_("Events of this type were recorded: deactivate it instead."), "error")
        return redirect(url_for("lead_admin.edit_event_type", key=key))
    flash(_("Event type deleted."), "ok")
    return redirect(url_for("lead_admin.scoring_page") + "#events")


def _event_type_payload() -> dict:
    form = request.form
    label = {k: v for k, v in (("en", form.get("label_en", "").strip()), ("zh_CN", form.get("label_zh", "").strip()))
             if v}
    return {"key": form.get("key", "").strip(), "label": label, "points": _number(form.get("points")),
            "strength": form.get("strength", ""), "active": form.get("active") == "on"}


def _event_type_editor(event, values: dict, errors: dict):
    return render_template("lead_admin/event_type.html", event=event, values=values, errors=errors,
                           strengths=scoring.STRENGTHS)


# ------------------------------------------------------------------ web forms
def _forms():
    from leadhub.plugins.lead.webforms import WebForms
    return WebForms(runtime())


@bp.get("/web-forms")
def web_forms():
    return render_template("lead_admin/web_forms.html", items=_forms().list(actor()))


@bp.get("/web-forms/new")
def new_web_form():
    values = {"fields": [{"field": "name", "required": True}, {"field": "mobile", "required": True},
                         {"field": "company", "required": False}],
              "source": "web_form", "language": "zh_CN", "active": True, "owner": actor().user_id}
    return _form_editor(None, values, {})


@bp.post("/web-forms/new")
def create_web_form():
    payload = _form_payload(None)
    try:
        form = _forms().create(actor(), payload)
    except LeadhubError as exc:
        return _form_editor(None, payload, _form_errors(exc, payload)), exc.status
    flash(_("Web form saved."), "ok")
    return redirect(url_for("lead_admin.edit_web_form", form_id=form["id"]))


@bp.get("/web-forms/<id:form_id>")
def edit_web_form(form_id):
    form = _forms().get(actor(), form_id)
    return _form_editor(form, form, {})


@bp.post("/web-forms/<id:form_id>")
def update_web_form(form_id):
    form = _forms().get(actor(), form_id)
    payload = _form_payload(form)
    try:
        _forms().update(actor(), form_id, payload)
    except LeadhubError as exc:
        return _form_editor(form, payload, _form_errors(exc, payload)), exc.status
    flash(_("Web form saved."), "ok")
    return redirect(url_for("lead_admin.edit_web_form", form_id=form_id))


@bp.post("/web-forms/<id:form_id>/delete")
def delete_web_form(form_id):
    _forms().delete(actor(), form_id)
    flash(_("Web form deleted."), "ok")
    return redirect(url_for("lead_admin.web_forms"))


def _form_fields(current: list[dict]) -> list:
    """The lead fields a visitor may fill: the form's own first, in its order."""
    from leadhub.plugins.lead.webforms import RESERVED
    lead = _lead()
    eligible = [f for f in lead.fields.values() if f.writable and not f.system and f.api_name not in RESERVED]
    chosen = [c["field"] for c in current if c.get("field") in lead.fields]
    by_name = {f.api_name: f for f in eligible}
    return [by_name[n] for n in chosen if n in by_name] + [f for f in eligible if f.api_name not in chosen]


def _form_payload(form: dict | None) -> dict:
    f = request.form
    old_labels = {c["field"]: c.get("label") for c in (form or {}).get("fields", [])}
    fields = []
    for fd in _form_fields((form or {}).get("fields", [])):
        name = fd.api_name
        if f.get(f"field-{name}") == "on":
            item = {"field": name, "required": f.get(f"required-{name}") == "on"}
            if old_labels.get(name):
                item["label"] = old_labels[name]
            fields.append(item)
    return {"name": f.get("name", ""), "fields": fields, "source": f.get("source", ""),
            "campaign": _number(f.get("campaign")), "success_message": f.get("success_message", "").strip() or None,
            "redirect_url": f.get("redirect_url", "").strip() or None, "language": f.get("language", ""),
            "active": f.get("active") == "on", "owner": _number(f.get("owner"))}


def _form_errors(exc: LeadhubError, payload: dict) -> dict:
    """`fields.N` names the Nth chosen field: shown beside that field's row."""
    errors = _errors(exc)
    for key, message in exc.fields.items():
        m = re.fullmatch(r"fields\.(\d+)(?:\.\w+)?", key)
        if m and int(m.group(1)) < len(payload["fields"]):
            errors[f"field:{payload['fields'][int(m.group(1))]['field']}"] = message
    return errors


def _form_editor(form: dict | None, values: dict, errors: dict):
    lead = _lead()
    chosen = {c["field"]: c for c in values.get("fields") or []}
    source = lead.fields.get("source")
    sources = [(o["value"], o["label"]) for o in source.settings.get("options", []) if o["active"]] if source else []
    campaigns = []
    if "campaign" in runtime().cache.current().objects and "read" in actor().rights("campaign").actions:
        from leadhub.data.query import QuerySpec
        campaigns = runtime().records.query(actor(), "campaign", QuerySpec(fields=["id", "name"], sort=["-id"],
                                                                           page_size=200))["records"]
    return render_template("lead_admin/web_form.html", form=form, values=values, errors=errors,
                           fields=_form_fields(values.get("fields") or []), chosen=chosen, sources=sources,
                           campaigns=campaigns, users=user_choices())


# ------------------------------------------------------------------ follow-up rules
FOLLOW_UP = "follow_up_rule"


@bp.get("/follow-up")
def follow_up():
    return _follow_up_page(None, {}, {})


@bp.post("/follow-up/rules")
def save_follow_up_rule():
    """Creates the rule of a status, or updates it when `rule_id` is given."""
    form = request.form
    status = form.get("status", "")
    payload = {"hours": _number(form.get("hours")) if form.get("hours", "").strip() else "",
               "remind_before_hours": _number(form.get("remind_before_hours")) or 0,
               "active": form.get("active") == "on"}
    try:
        if status in runtime().kinds.items(FOLLOW_UP):
            runtime().kinds.update(actor(), FOLLOW_UP, status, payload)
        else:
            runtime().kinds.create(actor(), FOLLOW_UP, {"status": status, **payload})
    except LeadhubError as exc:
        return _follow_up_page(status, {**payload, "hours": form.get("hours", ""),
                                        "remind_before_hours": form.get("remind_before_hours", "")},
                               _errors(exc), exc.status)
    flash(_("Follow-up rule saved."), "ok")
    return redirect(url_for("lead_admin.follow_up"))


@bp.post("/follow-up/rules/<status>/delete")
def delete_follow_up_rule(status):
    runtime().kinds.delete(actor(), FOLLOW_UP, status)
    flash(_("Follow-up rule deleted."), "ok")
    return redirect(url_for("lead_admin.follow_up"))


def _follow_up_page(failed_status: str | None, values: dict, errors: dict, status: int = 200):
    existing = {r["status"]: r for r in runtime().kinds.list(actor(), FOLLOW_UP)}
    status_field = _lead().fields["status"]
    rows = []
    for option in status_field.settings["options"]:
        rule = existing.get(option["value"])
        row = {"status": option["value"], "label": option["label"], "rule": rule,
               "values": rule or {"hours": "", "remind_before_hours": 0, "active": True}, "errors": {}}
        if option["value"] == failed_status:
            row["values"], row["errors"] = values, errors
        rows.append(row)
    return render_template("lead_admin/follow_up.html", rows=rows), status


@bp.get("/follow-up/stats")
def follow_up_stats():
    import datetime as dt
    from leadhub.plugins.lead.followup import service
    from leadhub.plugins.lead.followup_stats import timeliness
    from leadhub.plugins.lead.web.followup_api import DEFAULT_DAYS, _when
    now = service(runtime()).clock()
    errors, reps = {}, []
    try:
        end = _when("to", now)
        start = _when("from", end - dt.timedelta(days=DEFAULT_DAYS))
        if start >= end:
            errors = {"to": "Must be after from."}
        else:
            reps = timeliness(runtime(), actor(), start, end, now)
    except LeadhubError as exc:
        errors, start, end = _errors(exc), now - dt.timedelta(days=DEFAULT_DAYS), now
    for rep in reps:
        rep["rate"] = round(100 * rep["in_time"] / rep["leads_due"]) if rep["leads_due"] else None
    return render_template("lead_admin/follow_up_stats.html", reps=reps, errors=errors,
                           start=request.args.get("from") or start.date().isoformat(),
                           end=request.args.get("to") or end.date().isoformat()), 400 if errors else 200
