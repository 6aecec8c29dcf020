"""REST endpoints of lead scoring, under /api/v1 like the kernel's:
rescoring job progress, behaviour events on a lead and the score's
explanation."""
from __future__ import annotations

from flask import Blueprint, g

from leadhub.platform import permissions
from leadhub.platform.errors import BadRequest
from leadhub.plugins.lead import scoring, scoring_jobs
from leadhub.web.api import authenticate, language, runtime
from leadhub.web.jsonio import body

bp = Blueprint("lead_scoring", __name__, url_prefix="/api/v1")
bp.before_request(authenticate)

EVENT_KEYS = {"type", "occurred_at", "note", "data"}


# Rules (/meta/scoring-rules), event types (/meta/score-events) and the
# settings (/meta/scoring-settings) are metadata kinds served by the kernel's
# generic REST (web/api/kinds.py); rescoring is the plugin's own.
@bp.post("/meta/scoring-rules/rescore")
def start_rescore():
    """Rescore every lead now (e.g. after a bulk change made outside scoring)."""
    permissions.require_admin(g.actor)
    rt = runtime()
    with rt.db.write() as conn:
        job_id = scoring_jobs.request(rt, conn, g.actor, "rescore")
    return scoring_jobs.get_job(rt, job_id), 202


@bp.get("/meta/scoring-rules/rescore/<id:job_id>")
def rescore_progress(job_id):
    return scoring_jobs.get_job(runtime(), job_id)


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
