"""Rescoring in the background: the runs of the jobs scoring_jobs.py queues.
A job walks every live lead in id order, in batches, through the record
service as the system actor (so history, events and other handlers see
ordinary updates), the engine's new scores given as system values, and
writes its progress to the job row after each batch. The decay sweep does
the same for the leads that have behaviour events, as time alone moves
their scores."""
from __future__ import annotations

import datetime as dt
import logging

import sqlalchemy as sa

from leadhub.data.query import QuerySpec
from leadhub.platform.db import utcnow
from leadhub.platform.errors import NotFound
from leadhub.platform.jobs import current_runtime
from leadhub.platform.permissions import Actor
from leadhub.plugins.lead.scoring import rescore_values
from leadhub.plugins.lead.scoring_jobs import get_job, job_out
from leadhub.plugins.lead.scoring_tables import score_events, score_jobs

log = logging.getLogger(__name__)
BATCH = 500


def run_rescore(job_id: int) -> dict:
    """The job function (importable by path for RQ)."""
    return rescore(current_runtime(), job_id)


def _rescore_given_up(reason: str, job_id: int) -> None:
    _set(current_runtime(), job_id, status="failed", error=reason[:2000], finished_at=utcnow())


run_rescore.give_up = _rescore_given_up
run_rescore.job_label = "Lead rescoring"


def _set(runtime, job_id: int, **values) -> None:
    with runtime.db.write() as conn:
        conn.execute(sa.update(score_jobs).where(score_jobs.c.id == job_id).values(**values))


def rescore(runtime, job_id: int, now: dt.datetime | None = None) -> dict:
    """Rescore the job's leads (all of them, or for "decay" those with events)."""
    with runtime.db.write() as conn:
        # claim it with a conditional update: a job enqueued twice runs once. A
        # run its worker left ("running") is taken up again: the job layer
        # lets one runner at a time hold it, and rescoring is idempotent
        claimed = conn.execute(sa.update(score_jobs).where(score_jobs.c.id == job_id,
                                                           score_jobs.c.status.in_(("queued", "running")))
                               .values(status="running", started_at=utcnow())).rowcount
        row = conn.execute(sa.select(score_jobs).where(score_jobs.c.id == job_id)).mappings().first()
        if not claimed:
            return job_out(row) if row else {}
    system = Actor.system()
    decay = row["kind"] == "decay"
    try:
        total = _count_with_events(runtime) if decay else \
            runtime.records.query(system, "lead", QuerySpec(fields=["id"], count=True, page_size=1))["total"]
        _set(runtime, job_id, total=total)
        done = changed = 0
        last = 0
        while True:
            ids = _next_batch(runtime, system, last, decay)
            if not ids:
                break
            n_changed = _rescore_batch(runtime, system, ids, now)
            done, changed, last = done + len(ids), changed + n_changed, ids[-1]
            _set(runtime, job_id, done=done, changed=changed)
        _set(runtime, job_id, status="finished", finished_at=utcnow())
    except Exception as exc:   # the row tells the admin; the worker log gets the trace
        log.exception("scoring job %s failed", job_id)
        _set(runtime, job_id, status="failed", error=f"{type(exc).__name__}: {exc}"[:2000], finished_at=utcnow())
    return get_job(runtime, job_id)


def _count_with_events(runtime) -> int:
    with runtime.db.read() as conn:
        return conn.execute(sa.select(sa.func.count(sa.distinct(score_events.c.lead_id)))).scalar_one()


def _next_batch(runtime, system: Actor, after: int, decay: bool) -> list[int]:
    """The next live lead ids after `after`, in id order."""
    if not decay:
        spec = QuerySpec(filter={"field": "id", "op": "gt", "value": after}, fields=["id"], sort=["id"],
                         page_size=BATCH)
        return [r["id"] for r in runtime.records.query(system, "lead", spec)["records"]]
    while True:
        with runtime.db.read() as conn:
            candidates = list(conn.execute(
                sa.select(score_events.c.lead_id).where(score_events.c.lead_id > after).distinct()
                .order_by(score_events.c.lead_id).limit(BATCH)).scalars())
        if not candidates:
            return []
        spec = QuerySpec(filter={"field": "id", "op": "in", "value": candidates}, fields=["id"], sort=["id"],
                         page_size=BATCH)
        live = [r["id"] for r in runtime.records.query(system, "lead", spec)["records"]]
        if live:
            return live
        after = candidates[-1]   # all of these were deleted: look further


def _rescore_batch(runtime, system: Actor, ids: list[int], now) -> int:
    for attempt in range(3):
        try:
            values, changed = rescore_values(runtime, ids, now=now, batch=True)
            runtime.records.bulk_update(system, "lead", [{"id": i} for i in ids], system=values)
            return len(changed)
        except NotFound:
            # a lead of the batch was deleted meanwhile: drop the missing ones and retry
            spec = QuerySpec(filter={"field": "id", "op": "in", "value": ids}, fields=["id"], page_size=len(ids))
            ids = [r["id"] for r in runtime.records.query(system, "lead", spec)["records"]]
            if not ids:
                return 0
    raise RuntimeError("leads kept disappearing under the rescoring batch")


def decay_sweep(runtime, now: dt.datetime | None = None) -> dict | None:
    """Periodic: rescore leads with behaviour events so their decay shows in
    stored scores and grades. Nothing to do without a half-life."""
    with runtime.db.write() as conn:
        item = runtime.cache.current(conn).items.get("scoring_settings", {}).get("default")
        half_life = item.data["half_life_days"] if item else None
        if not half_life:
            return None
        job_id = conn.execute(score_jobs.insert().values(
            kind="decay", status="queued", done=0, changed=0, created_at=utcnow())).inserted_primary_key[0]
    return rescore(runtime, job_id, now=now)


def register(runtime) -> None:
    """Rescore for decay daily, when the runtime has a scheduler."""
    if hasattr(runtime, "scheduler"):
        runtime.scheduler.every("lead.score_decay", seconds=86400, fn=decay_sweep)
