"""Rescoring in the background. A rule or settings change queues a job row in
its own transaction and, once that commits, enqueues `run_rescore` (RQ with
Redis, inline otherwise). The job walks every live lead in id order, in
batches, through the record service as the system actor (so history,
events and other handlers see ordinary updates) and writes its progress
to the job row after each batch. The decay sweep does the same for the
leads that have behaviour events, as time alone moves their scores."""
from __future__ import annotations

import datetime as dt
import logging
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Iterable

import sqlalchemy as sa

from leadhub.data.query import QuerySpec
from leadhub.platform.db import utcnow
from leadhub.platform.errors import NotFound
from leadhub.platform.jobs import current_runtime
from leadhub.platform.permissions import Actor
from leadhub.plugins.lead.scoring_tables import score_events, score_jobs

log = logging.getLogger(__name__)
BATCH = 500
KINDS = ("rescore", "decay")


# --- forcing a rescore ------------------------------------------------------------------------
# Here rather than in the engine (scoring.py), which reads it: the jobs below
# force rescoring without importing the engine.

@dataclass
class Forced:
    ids: frozenset[int]
    now: dt.datetime | None
    batch: bool                                # read the events of all ids at once
    events: dict[int, list[dict]] | None = None
    changed: set[int] = field(default_factory=set)


_forced: ContextVar[Forced | None] = ContextVar("leadhub_scoring_forced", default=None)


def forced() -> Forced | None:
    """The rescoring the current block asked for, if any."""
    return _forced.get()


@contextmanager
def rescoring(ids: Iterable[int], now: dt.datetime | None = None, batch: bool = False):
    """Updates of these leads inside the block rescore even though no rule
    field changed (events were added, rules changed, time passed). Yields
    the set of ids whose score, grade or MQL flag actually moved. With
    batch, the first lead's handler reads every id's events in one query:
    the record service has locked the whole batch by then, so an event
    recorded concurrently is either seen here or rescores after us."""
    state = Forced(frozenset(ids), now, batch)
    token = _forced.set(state)
    try:
        yield state.changed
    finally:
        _forced.reset(token)


def job_out(row) -> dict:
    return {k: row[k] for k in ("id", "kind", "status", "total", "done", "changed", "error", "created_at",
                                "started_at", "finished_at")}


def get_job(runtime, job_id: int) -> dict:
    with runtime.db.read() as conn:
        row = conn.execute(sa.select(score_jobs).where(score_jobs.c.id == job_id)).mappings().first()
    if row is None:
        raise NotFound(f"No scoring job {job_id}.")
    return job_out(row)


def request(runtime, conn, actor: Actor, kind: str = "rescore") -> int:
    """Queue a rescoring job with the caller's transaction. A job still
    waiting to start reads the rules when it starts, so it covers this change
    too: no second job is queued behind it."""
    waiting = conn.execute(sa.select(score_jobs.c.id).where(
        score_jobs.c.kind == kind, score_jobs.c.status == "queued").limit(1)).scalar()
    if waiting is not None:
        return waiting
    job_id = conn.execute(score_jobs.insert().values(
        kind=kind, status="queued", done=0, changed=0, created_by=actor.user_id, created_at=utcnow())
    ).inserted_primary_key[0]
    runtime.db.on_commit(lambda: runtime.jobs.enqueue(run_rescore, job_id))
    return job_id


def run_rescore(job_id: int) -> dict:
    """The job function (importable by path for RQ)."""
    return rescore(current_runtime(), job_id)


def _set(runtime, job_id: int, **values) -> None:
    with runtime.db.write() as conn:
        conn.execute(sa.update(score_jobs).where(score_jobs.c.id == job_id).values(**values))


def rescore(runtime, job_id: int, now: dt.datetime | None = None) -> dict:
    """Rescore the job's leads (all of them, or for "decay" those with events)."""
    with runtime.db.write() as conn:
        # claim it with a conditional update: a job enqueued twice, or picked
        # by two workers at once, runs once
        claimed = conn.execute(sa.update(score_jobs).where(score_jobs.c.id == job_id, score_jobs.c.status == "queued")
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
            with rescoring(ids, now=now, batch=True) as changed:
                runtime.records.bulk_update(system, "lead", [{"id": i} for i in ids])
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
