"""Follow-up endpoints: the sweep on demand (admins) and timeliness
statistics per rep (scoped)."""
from __future__ import annotations

import datetime as dt

from flask import Blueprint, g, request

from leadhub.platform.errors import BadRequest
from leadhub.platform.permissions import require_admin
from leadhub.plugins.lead.followup import service, sweep
from leadhub.plugins.lead.followup_stats import timeliness
from leadhub.web.api import authenticate, runtime

bp = Blueprint("lead_followup", __name__, url_prefix="/api/v1")
bp.before_request(authenticate)
DEFAULT_DAYS = 30


# Rules are a metadata kind: /meta/follow-up-rules[/<status>] is the
# kernel's generic REST (web/api/kinds.py).


@bp.post("/follow-up/sweep")
def run_sweep_now():
    require_admin(g.actor)
    return sweep(runtime())


def _when(name: str, default: dt.datetime) -> dt.datetime:
    """An ISO 8601 date or datetime; dates and naive times are UTC."""
    raw = request.args.get(name, "").strip()
    if not raw:
        return default
    try:
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name} must be an ISO 8601 date or date-time.", {name: "Not a date."}) from None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


@bp.get("/follow-up/stats")
def follow_up_stats():
    now = service(runtime()).clock()
    end = _when("to", now)
    start = _when("from", end - dt.timedelta(days=DEFAULT_DAYS))
    if start >= end:
        raise BadRequest("from must be before to.", {"to": "Must be after from."})
    return {"from": start, "to": end, "reps": timeliness(runtime(), g.actor, start, end, now)}
