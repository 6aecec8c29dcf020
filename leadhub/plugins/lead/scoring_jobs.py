"""Rescoring jobs: their rows and their queue. A rule or settings change
queues a job row in its own transaction with a durable job (lh_jobs) that,
once that commits, runs scoring_runs.run_rescore (RQ with Redis, inline otherwise), named by path:
the runs use the engine, which imports this module."""
from __future__ import annotations

import sqlalchemy as sa

from leadhub.platform.db import utcnow
from leadhub.platform.errors import NotFound
from leadhub.platform.permissions import Actor
from leadhub.plugins.lead.scoring_tables import score_jobs

KINDS = ("rescore", "decay")
RUN = "leadhub.plugins.lead.scoring_runs.run_rescore"      # the job function, by path


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
    runtime.jobs.enqueue(RUN, job_id)          # in the caller's transaction (durable), run after it commits
    return job_id
