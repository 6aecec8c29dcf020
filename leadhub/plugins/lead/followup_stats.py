"""Follow-up timeliness per rep: for leads whose deadline fell in [from, to),
how many were followed up in time, late, or are still pending, the average
hours from owner change to the first follow-up, and the violations
recorded. Compiled by the query compiler with the caller's scope, so a
manager sees their reps and a rep sees only themselves."""
from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import sqlalchemy as sa

from leadhub.data.query import QueryCompiler
from leadhub.platform import permissions
from leadhub.platform.permissions import Actor

if TYPE_CHECKING:
    from leadhub.runtime import Runtime


def _hours(later, earlier, dialect: str):
    if dialect == "postgresql":
        return sa.extract("epoch", later - earlier) / 3600.0
    return (sa.func.julianday(later) - sa.func.julianday(earlier)) * 24.0


def _count_if(cond):
    return sa.func.sum(sa.case((cond, 1), else_=0))


def timeliness(runtime: "Runtime", actor: Actor, start: dt.datetime, end: dt.datetime,
               now: dt.datetime) -> list[dict]:
    permissions.require(actor, "lead", "read")
    permissions.require(actor, "violation", "read")
    reg = runtime.cache.current()
    tz = runtime.config.timezone
    reps: dict[int | None, dict] = {}

    def rep(owner, name) -> dict:
        return reps.setdefault(owner, {"owner": owner, "owner_name": name, "leads_due": 0, "in_time": 0, "late": 0,
                                       "pending": 0, "violations": 0, "avg_hours_to_first_follow_up": None})

    qc = QueryCompiler(reg, "lead", actor, tz)
    owner, _ = qc.resolve("owner")
    owner_name, _ = qc.resolve("owner.name")
    t0, _ = qc.resolve("owner_changed_at")
    due, _ = qc.resolve("follow_up_due_at")
    first, _ = qc.resolve("first_follow_up_at")
    hours = _hours(first, t0, runtime.db.dialect)
    stmt = (sa.select(owner, owner_name, sa.func.count(),
                      _count_if(sa.and_(first.is_not(None), first <= due)),
                      _count_if(sa.or_(first > due, sa.and_(first.is_(None), due < now))),
                      _count_if(sa.and_(first.is_(None), due >= now)),
                      sa.func.avg(sa.case((first.is_not(None), hours), else_=None)))
            .select_from(qc.from_clause())
            .where(qc.base_where(), due >= start, due < end)
            .group_by(owner, owner_name))

    vc = QueryCompiler(reg, "violation", actor, tz)
    v_owner, _ = vc.resolve("owner")
    v_name, _ = vc.resolve("owner.name")
    detected, _ = vc.resolve("detected_at")
    v_stmt = (sa.select(v_owner, v_name, sa.func.count()).select_from(vc.from_clause())
              .where(vc.base_where(), detected >= start, detected < end).group_by(v_owner, v_name))

    with runtime.db.read() as conn:
        for o, name, n, in_time, late, pending, avg in conn.execute(stmt):
            r = rep(o, name)
            r.update(leads_due=n, in_time=int(in_time or 0), late=int(late or 0), pending=int(pending or 0),
                     avg_hours_to_first_follow_up=round(float(avg), 2) if avg is not None else None)
        for o, name, n in conn.execute(v_stmt):
            rep(o, name)["violations"] = n
    return sorted(reps.values(), key=lambda r: (r["owner_name"] or "", r["owner"] or 0))
