"""Follow-up deadline rules ("T+N"): for leads in `status`, within `hours` of
the owner changing (T) the lead must have a follow-up; a reminder goes out
`remind_before_hours` before that. One rule per status: a metadata kind
keyed by the status, edited by admins at /api/v1/meta/follow-up-rules."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import marshmallow as mm

from leadhub.data.query import QuerySpec
from leadhub.metadata.kinds import Context, Kind, Ref
from leadhub.platform.errors import BadRequest
from leadhub.platform.jobs import current_runtime
from leadhub.platform.permissions import Actor

if TYPE_CHECKING:
    from leadhub.runtime import Runtime

log = logging.getLogger(__name__)
MAX_HOURS = 24 * 365
BATCH = 200                # leads per page of the recomputation
SYSTEM = Actor.system()


@dataclass(frozen=True)
class Rule:
    id: int
    status: str
    hours: int
    remind_before_hours: int
    active: bool

    @property
    def label(self) -> str:
        return f"{self.status}: T+{self.hours}h"

    def to_api(self) -> dict:
        return {"id": self.id, "status": self.status, "hours": self.hours,
                "remind_before_hours": self.remind_before_hours, "active": self.active}


class RuleSchema(mm.Schema):
    class Meta:
        unknown = mm.RAISE
    status = mm.fields.String(required=True)
    hours = mm.fields.Integer(required=True, strict=True, validate=mm.validate.Range(1, MAX_HOURS))
    remind_before_hours = mm.fields.Integer(load_default=0, strict=True, validate=mm.validate.Range(0, MAX_HOURS))
    active = mm.fields.Boolean(load_default=True)


def check(ctx: Context, data: dict, old) -> dict:
    statuses = [o["value"] for o in ctx.registry.get("lead").fields["status"].settings["options"]]
    if data["status"] not in statuses:
        raise BadRequest(f"status must be a lead status: {', '.join(statuses)}.",
                         {"status": f"Not a lead status: {data['status']!r}."})
    if data["remind_before_hours"] >= data["hours"]:
        raise BadRequest("remind_before_hours must be less than hours.",
                         {"remind_before_hours": "Must be less than hours."})
    return data


def on_change(ctx: Context, old, new) -> None:
    """Leads in the rule's status get their deadlines worked out again: a
    durable job written with the rule, run after the commit."""
    ctx.runtime.jobs.enqueue(recompute_deadlines, [(new or old).key])


KIND = Kind(name="follow_up_rule", url="follow-up-rules", plugin="lead", schema=RuleSchema, key="status",
            title="status", labels={"en": "Follow-up rules", "zh_CN": "跟进时限规则"},
            references=lambda d: [Ref("field", "lead.status", "status")], check=check, on_change=on_change,
            editor="lead_admin.follow_up", properties={
                "status": {"en": "Lead status", "zh_CN": "线索状态"},
                "hours": {"en": "Follow up within (hours)", "zh_CN": "跟进时限（小时）"},
                "remind_before_hours": {"en": "Remind before (hours)", "zh_CN": "提前提醒（小时）"},
                "active": {"en": "Active", "zh_CN": "启用"}})
CACHE = "leadhub_follow_up_rules"


def recompute_deadlines(statuses: list[str]) -> int:
    """Job: after a rule changed, work out the deadline of every lead in
    these statuses still waiting for its first follow-up since T (an update
    without changes: the lead's before-handler settles the deadline)."""
    runtime = current_runtime()
    conditions = [{"field": "status", "op": "in", "value": statuses},
                  {"field": "owner_changed_at", "op": "is_null", "value": False},
                  {"field": "first_follow_up_at", "op": "is_null", "value": True}]
    ids, last = [], 0
    while True:
        page = runtime.records.query(SYSTEM, "lead", QuerySpec(
            filter=conditions + [{"field": "id", "op": "gt", "value": last}], sort=["id"], page_size=BATCH,
            fields=["id"]))
        ids += [lead["id"] for lead in page["records"]]
        if not page["has_more"]:
            break
        last = page["records"][-1]["id"]
    for start in range(0, len(ids), BATCH):
        runtime.records.bulk_update(SYSTEM, "lead", [{"id": i} for i in ids[start:start + BATCH]])
    return len(ids)


recompute_deadlines.job_label = "Follow-up deadlines"


def active(reg) -> dict[str, Rule]:
    """Active rules by status, from the registry snapshot (every lead write asks)."""
    return reg.memo(CACHE, lambda: {
        key: Rule(id=item.id, status=key, hours=item.data["hours"],
                  remind_before_hours=item.data["remind_before_hours"], active=True)
        for key, item in reg.items.get(KIND.name, {}).items() if item.data["active"]})


def lead_statuses(runtime: "Runtime") -> list[str]:
    """The lead status picklist as it is now (admins extend it)."""
    field = runtime.cache.current().get("lead").fields["status"]
    return [o["value"] for o in field.settings["options"]]
