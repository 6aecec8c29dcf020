"""REST endpoints of lead scoring, under /api/v1 like the kernel's: rules,
event types and settings (anyone signed in reads, admins write), rescoring
job progress, behaviour events on a lead and the score's explanation."""
from __future__ import annotations

from flask import Blueprint, g

from leadhub.platform import permissions
from leadhub.platform.errors import BadRequest
from leadhub.plugins.lead import scoring, scoring_config as config, scoring_jobs
from leadhub.web.api import authenticate, language, runtime
from leadhub.web.jsonio import body

bp = Blueprint("lead_scoring", __name__, url_prefix="/api/v1")
bp.before_request(authenticate)

EVENT_KEYS = {"type", "occurred_at", "note", "data"}


# --- attribute rules ---------------------------------------------------------------

@bp.get("/meta/scoring-rules")
def list_rules():
    return {"rules": config.list_rules(runtime())}


@bp.post("/meta/scoring-rules")
def create_rule():
    return config.create_rule(runtime(), g.actor, body()), 201


@bp.get("/meta/scoring-rules/<int:rule_id>")
def get_rule(rule_id):
    return config.get_rule(runtime(), rule_id)


@bp.patch("/meta/scoring-rules/<int:rule_id>")
def update_rule(rule_id):
    return config.update_rule(runtime(), g.actor, rule_id, body())


@bp.delete("/meta/scoring-rules/<int:rule_id>")
def delete_rule(rule_id):
    return {"rescore_job": config.delete_rule(runtime(), g.actor, rule_id)}


@bp.post("/meta/scoring-rules/rescore")
def start_rescore():
    """Rescore every lead now (e.g. after a bulk change made outside scoring)."""
    permissions.require_admin(g.actor)
    rt = runtime()
    with rt.db.write() as conn:
        job_id = scoring_jobs.request(rt, conn, g.actor, "rescore")
    return scoring_jobs.get_job(rt, job_id), 202


@bp.get("/meta/scoring-rules/rescore/<int:job_id>")
def rescore_progress(job_id):
    return scoring_jobs.get_job(runtime(), job_id)


# --- behaviour event types ------------------------------------------------------------

@bp.get("/meta/score-events")
def list_event_types():
    return {"event_types": config.list_event_types(runtime(), language())}


@bp.post("/meta/score-events")
def create_event_type():
    return config.create_event_type(runtime(), g.actor, body(), language()), 201


@bp.get("/meta/score-events/<key>")
def get_event_type(key):
    return config.get_event_type(runtime(), key, language())


@bp.patch("/meta/score-events/<key>")
def update_event_type(key):
    return config.update_event_type(runtime(), g.actor, key, body(), language())


@bp.delete("/meta/score-events/<key>")
def delete_event_type(key):
    config.delete_event_type(runtime(), g.actor, key)
    return "", 204


# --- settings -------------------------------------------------------------------------------

@bp.get("/meta/scoring-settings")
def get_settings():
    return config.get_settings(runtime())


@bp.put("/meta/scoring-settings")
def put_settings():
    return config.update_settings(runtime(), g.actor, body())


# --- a lead's events and score -------------------------------------------------------------

@bp.post("/objects/lead/records/<id:record_id>/events")
def post_event(record_id):
    payload = body()
    unknown = set(payload) - EVENT_KEYS
    if unknown:
        raise BadRequest(f"Unknown property: {', '.join(sorted(unknown))}.", {k: "Unknown property." for k in unknown})
    return scoring.record_event(runtime(), g.actor, record_id, payload.get("type"), payload.get("occurred_at"),
                                data=payload.get("data"), note=payload.get("note")), 201


@bp.get("/objects/lead/records/<id:record_id>/score")
def get_score(record_id):
    return scoring.explain(runtime(), g.actor, record_id, language())
