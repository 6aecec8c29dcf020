"""REST endpoints of the lead intake (under /api/v1): quarantine release,
the duplicate check and duplicate scans. Reads need a signed-in user;
every change needs an administrator."""
from __future__ import annotations

from flask import Blueprint, g, request

from leadhub.platform import permissions
from leadhub.platform.errors import BadRequest
from leadhub.plugins.lead import cleaning, dedupe, duplicate_scan as scans
from leadhub.web.api import authenticate, runtime
from leadhub.web.jsonio import body

bp = Blueprint("lead_intake", __name__, url_prefix="/api/v1")
bp.before_request(authenticate)

# Blacklists (/meta/blacklists) and duplicate rules (/meta/duplicate-rules)
# are metadata kinds served by the kernel's generic REST (web/api/kinds.py).


# ---------------------------------------------------------------- quarantine
@bp.post("/objects/lead/records/<id:record_id>/release")
def release_lead(record_id):
    payload = body() if request.get_data() else {}
    if not isinstance(payload, dict) or set(payload) - {"force"} or not isinstance(payload.get("force", False), bool):
        raise BadRequest("The body is {\"force\": true|false} or empty.", {"force": "Must be true or false."})
    return cleaning.release(runtime(), g.actor, record_id, force=payload.get("force", False))


# ---------------------------------------------------------------- duplicate rules
# Duplicate rules are a metadata kind: /meta/duplicate-rules[/<name>] is the
# kernel's generic REST (web/api/kinds.py). Scans are the plugin's own.
@bp.post("/meta/duplicate-rules/<rule>/scan")
def start_scan(rule):
    return scans.start_scan(runtime(), g.actor, rule), 202


@bp.get("/meta/duplicate-rules/<rule>/scan")
def latest_scan(rule):
    permissions.require_admin(g.actor)
    return scans.get_scan(runtime(), rule)


@bp.get("/meta/duplicate-rules/<rule>/scans/<id:scan_id>")
def get_scan(rule, scan_id):
    permissions.require_admin(g.actor)
    return scans.get_scan(runtime(), rule, scan_id)


@bp.post("/objects/<name>/duplicates/check")
def check_duplicates(name):
    """{"record": {draft fields}, "rule": optional rule name}, or the draft itself."""
    payload = body()
    if isinstance(payload, dict) and "record" in payload:
        unknown = set(payload) - {"record", "rule"}
        if unknown:
            raise BadRequest(f"Unknown property: {', '.join(sorted(unknown))}.", {k: "Unknown property." for k in unknown})
        rule = payload.get("rule")
        if rule is not None and not isinstance(rule, str):
            raise BadRequest("rule must be a rule's name.", {"rule": "Must be text."})
        return dedupe.check_draft(runtime(), g.actor, name, payload["record"], rule)
    return dedupe.check_draft(runtime(), g.actor, name, payload)
