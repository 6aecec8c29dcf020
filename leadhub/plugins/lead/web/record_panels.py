"""The lead page's follow-up panel, through the kernel's "record_panel" slot:
where the lead stands against its follow-up deadline, and a quick composer
that logs a call, visit or WeChat chat without leaving the page. The
composer posts to the kernel's own record form for follow-ups (rights,
validation and the deadline handlers apply as for any follow-up) and comes
back to the lead."""
from __future__ import annotations

from flask import Blueprint

from leadhub.plugins.lead import followup

bp = Blueprint("lead_panels", __name__, template_folder="templates")
TITLE = "Follow-up"


def follow_up_panel(runtime, actor, _obj: str, lead: dict) -> dict | None:
    may_log = "create" in actor.rights("follow_up").actions
    deadline, last = lead.get("follow_up_deadline"), lead.get("last_follow_up_at")
    if not may_log and deadline is None and last is None:
        return None
    reg = runtime.cache.current()
    return {"name": "follow_up", "title": TITLE, "template": "lead_panels/follow_up.html",
            "context": {"lead": lead, "deadline": deadline, "overdue": deadline is not None and deadline < followup.service(runtime).clock(),
                        "last": last, "may_log": may_log, "method": reg.objects["follow_up"].fields["method"]}}


@bp.record_once
def _register(state) -> None:
    state.app.extensions["leadhub"].slots.add("record_panel", follow_up_panel, object="lead", order=10)
