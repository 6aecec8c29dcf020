"""Follow-up deadlines (issue 7, point 6).

T is the moment a lead's owner last changed (owner_changed_at). The rule
for the lead's status says the owner must follow it up within N hours, so
the lead carries follow_up_deadline = T + N as an indexed column until a
follow-up after T clears it; overdue leads are then a range query.
follow_up_due_at keeps T + N after that, for the statistics. Every
lead write works the deadline out again in its before-handler (owner or
status changes move it), and a follow-up's after-handler updates its lead
in the same transaction.

The periodic `sweep` sends one reminder before the deadline and, once it
has passed, writes one violation with evidence and notifies the owner and
their manager. The lead remembers both for the current T
(follow_up_reminded_at, follow_up_violation), so the sweep is idempotent,
and carries the next moment the sweep must look at it (follow_up_alert_at:
the reminder time, then the deadline, then NULL), so the sweep is one
index range over what is due, however many leads stay overdue."""
from __future__ import annotations

import datetime as dt
import json
import logging
import zoneinfo
from typing import TYPE_CHECKING, Any, Callable

import sqlalchemy as sa

from leadhub.data.query import QuerySpec
from leadhub.platform import tables as t
from leadhub.platform.db import utcnow
from leadhub.platform.errors import Forbidden, ValidationFailed
from leadhub.platform.events import RecordEvent
from leadhub.platform.jobs import current_runtime
from leadhub.platform.permissions import Actor
from leadhub.plugins.lead import followup_rules
from leadhub.plugins.lead.followup_rules import Rule

if TYPE_CHECKING:
    from leadhub.runtime import Runtime

log = logging.getLogger(__name__)
SWEEP_EVERY = 300          # seconds
BATCH = 200                # leads per page of the sweep and the recomputation
SYSTEM = Actor.system()

class _Stale(Exception):
    """The lead changed between the sweep's query and its locked re-read."""


class FollowUps:
    """Per runtime: the rules, the clock (tests pass their own) and the handlers."""

    def __init__(self, runtime: "Runtime"):
        self.runtime = runtime
        self.clock: Callable[[], dt.datetime] = utcnow

    # ------------------------------------------------------------ deadlines
    def deadline(self, values: dict, reg=None) -> tuple[dt.datetime | None, Rule | None]:
        """(deadline, rule) for a lead as it will be stored, under the rules
        of `reg` (the write's metadata snapshot; the current one if none)."""
        rule = followup_rules.active(reg or self.runtime.cache.current()).get(values.get("status"))
        t0 = values.get("owner_changed_at")
        if rule is None or t0 is None or values.get("owner") is None:
            return None, rule
        return t0 + dt.timedelta(hours=rule.hours), rule

    def _settle(self, values: dict, reg) -> None:
        due, rule = self.deadline(values, reg)
        values["follow_up_due_at"] = due
        # a follow-up since T meets the deadline; a violation does not (the
        # lead stays overdue, in the "Overdue follow-up" view, until someone calls)
        deadline = None if values.get("first_follow_up_at") else due
        values["follow_up_deadline"] = deadline
        # the sweep's own column: the next moment it must act (remind, then
        # record the violation), NULL once both are done, so its one query
        # is an index range over what is due and nothing else
        alert = None
        if deadline is not None and values.get("follow_up_violation") is None:
            alert = deadline
            if rule.remind_before_hours and values.get("follow_up_reminded_at") is None:
                alert = deadline - dt.timedelta(hours=rule.remind_before_hours)
        values["follow_up_alert_at"] = alert

    def before_insert(self, ev: RecordEvent) -> None:
        v = ev.values
        owner = v.get("owner") if v.get("owner") is not None else ev.actor.user_id  # as the service will store it
        v.update(owner_changed_at=self.clock() if owner is not None else None,
                 first_follow_up_at=None, follow_up_reminded_at=None, follow_up_violation=None)
        settled = {**v, "owner": owner}
        self._settle(settled, ev.registry)
        for name in ("follow_up_due_at", "follow_up_deadline", "follow_up_alert_at"):
            v[name] = settled[name]

    def before_update(self, ev: RecordEvent) -> None:
        v, old = ev.values, ev.old or {}
        if v.get("owner") != old.get("owner"):  # a new T: the new owner's clock starts
            v.update(owner_changed_at=self.clock() if v.get("owner") is not None else None,
                     first_follow_up_at=None, follow_up_reminded_at=None, follow_up_violation=None)
        self._settle(v, ev.registry)

    def after_follow_up(self, ev: RecordEvent) -> None:
        """A follow-up moves its lead's dates, in the same transaction."""
        lead_id = ev.values.get("lead")
        if lead_id is None:
            return
        changes = {}
        if ev.values.get("next_follow_up_at") is not None:
            changes["next_follow_up_at"] = ev.values["next_follow_up_at"]
        self.update_lead(lead_id, changes, {"followed_up_at": self.clock()})

    def update_lead(self, lead_id: int, changes: dict, values: dict) -> dict:
        """Write the lead's follow-up fields (read-only to everyone) through
        the record service's system values, worked out under the lead's row
        lock: `_check` may refuse (the lead moved on since it was queried),
        `followed_up_at` moves the last and first follow-up times."""
        def system(old: dict) -> dict:
            check = values.get("_check")
            if check is not None:
                check(old, None)
            out = {k: v for k, v in values.items() if not k.startswith("_") and k != "followed_up_at"}
            at = values.get("followed_up_at")
            if at is not None:
                out["last_follow_up_at"] = max(at, old.get("last_follow_up_at") or at)
                t0 = out.get("owner_changed_at", old.get("owner_changed_at"))
                owner_moves = "owner" in changes and changes["owner"] != old.get("owner")
                if old.get("first_follow_up_at") is None and not owner_moves and t0 is not None and at >= t0:
                    out["first_follow_up_at"] = at
            return out
        return self.runtime.records.update(SYSTEM, "lead", lead_id, changes, system=system)


def service(runtime: "Runtime") -> FollowUps:
    return runtime.slots.one("lead.follow_ups", lambda: FollowUps(runtime))


def _refuse_manual_violations(ev: RecordEvent) -> None:
    if ev.actor.user_id is not None:
        raise Forbidden("Violations are recorded by the follow-up sweep only.", {"violation": "Written by the sweep."})


def _violation_edit(ev: RecordEvent) -> None:
    """People may acknowledge a violation; its evidence stays as recorded."""
    if ev.actor.user_id is None:
        return
    changed = {k: "The sweep's record cannot change; only status can." for k in ev.values
               if k not in ("status", "updated_at", "updated_by") and ev.changed(k)}
    if changed:
        raise ValidationFailed(changed)


def register(runtime: "Runtime") -> None:
    """Subscribe the deadline handlers and schedule the sweep."""
    svc = service(runtime)
    runtime.events.subscribe("before_insert", svc.before_insert, object="lead")
    runtime.events.subscribe("before_update", svc.before_update, object="lead")
    runtime.events.subscribe("after_insert", svc.after_follow_up, object="follow_up")
    runtime.events.subscribe("before_insert", _refuse_manual_violations, object="violation")
    runtime.events.subscribe("before_update", _violation_edit, object="violation")
    runtime.slots.add("timeline", timeline, object="lead")
    runtime.slots.add("handover", "keep", object="violation")   # evidence stays with who let the deadline pass
    if hasattr(runtime, "scheduler"):
        runtime.scheduler.every("lead.follow_up_sweep", seconds=SWEEP_EVERY, fn=sweep)


def timeline(runtime: "Runtime", actor: Actor, _obj: str, lead_id: int) -> list[dict]:
    """The lead page's timeline: its follow-ups and violations the viewer may read."""
    items = []
    for obj, at in (("follow_up", "created_at"), ("violation", "detected_at")):
        if "read" not in actor.rights(obj).actions:
            continue
        records = runtime.records.query(actor, obj, QuerySpec(
            filter=[{"field": "lead", "op": "eq", "value": lead_id}], sort=[f"-{at}"], page_size=50))["records"]
        for r in records:
            if obj == "follow_up":
                items.append({"at": r.get(at), "kind": "follow_up", "url": f"/o/follow_up/{r['id']}",
                              "title": f"{r.get('method') or ''}: {r.get('content') or ''}",
                              "body": " / ".join(x for x in (r.get("result"), r.get("next_step")) if x) or None})
            else:
                items.append({"at": r.get(at), "kind": "violation", "url": f"/o/violation/{r['id']}",
                              "title": r.get("title") or "", "body": r.get("rule")})
    return items


# ---------------------------------------------------------------- the sweep
def sweep(runtime: "Runtime", now: dt.datetime | None = None) -> dict:
    """Remind before, and record violations after, follow-up deadlines. Safe
    to run twice, or in two processes at once: each lead is re-checked under
    its write lock, so it yields one reminder and one violation per T."""
    svc = service(runtime)
    now = now or svc.clock()
    rules = followup_rules.active(runtime.cache.current())
    reminded = violated = 0
    for lead in _leads(runtime, now):
        rule = rules.get(lead["status"])
        if lead["follow_up_deadline"] <= now:
            violated += _violate(svc, lead, rule, now)
        elif rule is not None and lead["follow_up_reminded_at"] is None:
            reminded += _remind(svc, lead, rule, now)
    return {"reminders": reminded, "violations": violated, "at": now}


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).isoformat()


def _leads(runtime: "Runtime", now: dt.datetime):
    """Leads the sweep must act on (follow_up_alert_at <= now), in pages kept
    by (alert, id), through the query compiler."""
    due = [{"field": "follow_up_alert_at", "op": "lte", "value": _iso(now)}]
    after: list = []
    while True:
        page = runtime.records.query(SYSTEM, "lead", QuerySpec(
            filter=due + after, sort=["follow_up_alert_at", "id"], page_size=BATCH))
        yield from page["records"]
        if not page["has_more"]:
            return
        last = page["records"][-1]
        at = _iso(last["follow_up_alert_at"])
        after = [{"or": [{"field": "follow_up_alert_at", "op": "gt", "value": at},
                         {"and": [{"field": "follow_up_alert_at", "op": "eq", "value": at},
                                  {"field": "id", "op": "gt", "value": last["id"]}]}]}]


def _managers(runtime: "Runtime", user_ids: list[int]) -> dict[int, int | None]:
    with runtime.db.read() as conn:
        return dict(conn.execute(sa.select(t.users.c.id, t.users.c.manager_id)
                                 .where(t.users.c.id.in_(user_ids))).all())


def _name(lead: dict) -> str:
    return " / ".join(str(x) for x in (lead.get("name"), lead.get("company")) if x) or f"#{lead['id']}"


def _still(t0, field: str, want=None):
    """A check run on the locked lead: same T, and `field` still as the query saw it."""
    def check(old: dict, _new: dict) -> None:
        if old.get("owner_changed_at") != t0 or old.get(field) != want or old.get("follow_up_deadline") is None:
            raise _Stale()
    return check


# notification texts in the recipient's language; times in their time zone
TEXTS = {
    "reminder_title": {"en": "Follow up {lead} within {hours} h", "zh_CN": "请在 {hours} 小时内跟进 {lead}"},
    "reminder_body": {"en": "Lead {lead} must be followed up by {deadline} ({rule}).",
                      "zh_CN": "线索 {lead} 须在 {deadline} 前跟进（{rule}）。"},
    "violation_title": {"en": "Not followed up in time: {lead}", "zh_CN": "跟进超时：{lead}"},
    "violation_body": {"en": "The follow-up deadline {deadline} passed without a follow-up ({rule}).",
                       "zh_CN": "跟进截止时间 {deadline} 已过，仍未跟进（{rule}）。"},
}


def _recipients(runtime: "Runtime", user_ids: list) -> dict[tuple[str, str], list[int]]:
    """Recipients grouped by (language, time zone)."""
    ids = [u for u in user_ids if u is not None]
    groups: dict[tuple[str, str], list[int]] = {}
    if ids:
        with runtime.db.read() as conn:
            for uid, lang, tz in conn.execute(sa.select(t.users.c.id, t.users.c.language, t.users.c.timezone)
                                              .where(t.users.c.id.in_(ids))):
                groups.setdefault((lang if lang in ("en", "zh_CN") else "zh_CN", tz or "UTC"), []).append(uid)
    return groups


def _local(value: dt.datetime, tz: str) -> str:
    try:
        zone = zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = dt.timezone.utc
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def _notify(runtime: "Runtime", user_ids: list, kind: str, key: str, deadline: dt.datetime, *,
            link: str, data: dict, **values) -> None:
    for (lang, tz), ids in _recipients(runtime, user_ids).items():
        fmt = {**values, "deadline": _local(deadline, tz)}
        runtime.notifications.send(ids, kind, TEXTS[f"{key}_title"][lang].format(**fmt)[:200],
                                   TEXTS[f"{key}_body"][lang].format(**fmt), link=link, data=data)


def _remind(svc: FollowUps, lead: dict, rule: Rule, now: dt.datetime) -> int:
    runtime = svc.runtime
    deadline = lead["follow_up_deadline"]
    try:
        with runtime.db.write():
            svc.update_lead(lead["id"], {}, {"_check": _still(lead["owner_changed_at"], "follow_up_reminded_at"),
                                             "follow_up_reminded_at": now})
            hours = max(0.0, (deadline - now).total_seconds() / 3600)
            _notify(runtime, [lead["owner"]], "lead.follow_up_reminder", "reminder", deadline,
                    link=f"/o/lead/{lead['id']}", data={"lead": lead["id"], "deadline": _iso(deadline)},
                    lead=_name(lead), hours=f"{hours:.0f}", rule=rule.label)
    except _Stale:
        return 0
    return 1


def _violate(svc: FollowUps, lead: dict, rule: Rule | None, now: dt.datetime) -> int:
    runtime = svc.runtime
    owner = lead["owner"]
    manager = _managers(runtime, [owner]).get(owner) if owner is not None else None
    deadline = lead["follow_up_deadline"]
    label = rule.label if rule else "-"
    evidence = {"lead": {k: _jsonable(v) for k, v in lead.items()}, "owner": owner, "manager": manager,
                "rule": rule.to_api() if rule else None, "owner_changed_at": _jsonable(lead["owner_changed_at"]),
                "deadline": _jsonable(deadline), "detected_at": _jsonable(now)}
    owner_lang = next(iter(_recipients(runtime, [owner])), ("zh_CN", ""))[0]
    title = TEXTS["violation_title"][owner_lang].format(lead=_name(lead))
    try:
        with runtime.db.write():
            violation = runtime.records.create(SYSTEM, "violation", {
                "title": title[:300], "lead": lead["id"], "rule": rule.label if rule else None,
                "owner": owner, "owner_changed_at": _iso(lead["owner_changed_at"]), "deadline": _iso(deadline),
                "detected_at": _iso(now), "manager": manager, "status": "open",
                "evidence": json.dumps(evidence, ensure_ascii=False, sort_keys=True)})
            svc.update_lead(lead["id"], {}, {"_check": _still(lead["owner_changed_at"], "follow_up_violation"),
                                             "follow_up_violation": violation["id"]})
            _notify(runtime, [owner, manager], "lead.follow_up_violation", "violation", deadline,
                    link=f"/o/violation/{violation['id']}",
                    data={"lead": lead["id"], "violation": violation["id"], "owner": owner},
                    lead=_name(lead), rule=label)
    except _Stale:
        return 0
    return 1


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return _iso(value)
    if isinstance(value, (dt.date,)):
        return value.isoformat()
    if hasattr(value, "as_tuple"):
        return str(value)
    return value


def run_sweep() -> dict:
    """Job entry point (RQ or inline): the sweep on the job's runtime."""
    return sweep(current_runtime())


def seed_demo(runtime: "Runtime", leads: int = 6) -> dict:
    """Demo data: a "new: T+24h, remind 4h before" rule when there is none,
    and a few owned new leads whose owner changed 21 h ago (the next sweep
    reminds) or 30 h ago (the next sweep writes a violation), so a demo user
    sees both without waiting a day."""
    svc = service(runtime)
    if not runtime.kinds.items(followup_rules.KIND.name):
        runtime.kinds.create(SYSTEM, followup_rules.KIND.name, {"status": "new", "hours": 24, "remind_before_hours": 4})
    now = svc.clock()
    picked = runtime.records.query(SYSTEM, "lead", QuerySpec(
        filter=[{"field": "status", "op": "eq", "value": "new"},
                {"field": "owner", "op": "is_null", "value": False},
                {"field": "first_follow_up_at", "op": "is_null", "value": True}],
        sort=["id"], page_size=leads, fields=["id"]))["records"]
    out = {"reminder_soon": [], "overdue": []}
    with runtime.db.write():
        for i, lead in enumerate(picked):
            hours, key = (21, "reminder_soon") if i % 2 == 0 else (30, "overdue")
            svc.update_lead(lead["id"], {}, {"owner_changed_at": now - dt.timedelta(hours=hours),
                                             "follow_up_reminded_at": None, "follow_up_violation": None})
            out[key].append(lead["id"])
    return out
