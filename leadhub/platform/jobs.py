"""Durable background jobs. The database is the source of truth:

- `enqueue` writes a row in lh_jobs inside the caller's write transaction
  (an outbox), so a job exists exactly when the work that asked for it
  committed. After the commit it is dispatched: to RQ when Redis is
  configured, run inline otherwise.
- If Redis does not answer, the request still succeeds and the job waits as
  `pending`; `recover` (every scheduler tick) dispatches what is pending,
  re-dispatches what Redis lost (a restart without persistence) and finds
  jobs whose runner died (no heartbeat): they are retried, or marked failed
  with the reason once their attempts are spent. Handlers are idempotent
  (an import resumes after its last committed batch).
- One runner claims a job with a conditional UPDATE, so a job dispatched
  twice still runs once at a time.
- A job function may carry `job_label` (what the jobs page calls it) and
  `give_up(reason, *args, **kwargs)`: called when
  the job is failed for good, so the import, scan or rescore it served says
  so instead of staying "running".

Jobs carry ids and plain values (JSON), never state only Redis would hold. A
job function reaches the kernel through `current_runtime()`: the runtime that
ran it inline, or the one a worker bound at start."""
from __future__ import annotations

import datetime as dt
import logging
import os
import pkgutil
import socket
import threading
import time
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Callable

import sqlalchemy as sa

from leadhub.platform.db import utcnow
from leadhub.platform.tables import jobs as jobs_table

if TYPE_CHECKING:
    from leadhub.runtime import Runtime

log = logging.getLogger(__name__)
QUEUE = "leadhub"
STATUSES = ("pending", "queued", "running", "done", "failed")
LOST_AFTER = 120             # a queued job RQ no longer holds is dispatched again after this long
KEEP_DONE = dt.timedelta(days=3)
RQ_TIMEOUT = 6 * 3600        # RQ's own limit; a long import keeps beating well inside it
_current: ContextVar["Runtime | None"] = ContextVar("leadhub_runtime", default=None)
_bound: list["Runtime"] = []


def current_runtime() -> "Runtime":
    runtime = _current.get() or (_bound[-1] if _bound else None)
    if runtime is None:
        raise RuntimeError("No leadhub runtime is bound: run jobs through Jobs.enqueue or `leadhub worker`.")
    return runtime


def bind(runtime: "Runtime") -> None:
    """Make `runtime` the one job functions use in this (worker) process."""
    _bound.append(runtime)


def run_job(job_id: int) -> None:
    """What RQ runs: the job row's function, claimed by this process."""
    current_runtime().jobs.run(job_id)


def label(fn_path: str) -> str:
    """What people call a job (its function's `job_label`), in English."""
    try:
        return getattr(pkgutil.resolve_name(fn_path), "job_label", "Background task")
    except (ImportError, AttributeError, ValueError):
        return "Background task"


def rq_id(job_id: int, attempts: int) -> str:
    """RQ's id for one dispatch of a job: a retry is a new RQ job, so RQ's
    records of a dead attempt never stand in for it."""
    return f"leadhub-{job_id}-{attempts + 1}"


def _path(fn: Callable[..., Any] | str) -> str:
    if isinstance(fn, str):
        return fn
    if "<" in fn.__qualname__:
        raise ValueError(f"{fn.__qualname__} is not importable by path; jobs need a module-level function")
    return f"{fn.__module__}.{fn.__qualname__}"


class Jobs:
    def __init__(self, runtime: "Runtime", redis_url: str | None, queue_name: str = QUEUE):
        self.runtime = runtime
        self.redis_url = redis_url
        self.queue_name = queue_name
        self.stale_after = runtime.config.job_stale_seconds    # no heartbeat for this long: its runner died
        self.lost_after = LOST_AFTER
        self._queue = None
        self._redis_down = False          # said once, not per job
        self._heartbeat = _Heartbeat(runtime)

    @property
    def inline(self) -> bool:
        return not self.redis_url

    def queue(self):
        if self._queue is None:
            from redis import Redis
            from rq import Queue
            self._queue = Queue(self.queue_name, connection=Redis.from_url(
                self.redis_url, socket_connect_timeout=2, socket_timeout=5))
        return self._queue

    def worker(self, *, forking: bool = True):
        """An RQ worker on this queue: forking (`leadhub worker`) or running
        jobs in this process (tests, benchmarks)."""
        from rq import SimpleWorker, Worker

        class QuickStop(Worker if forking else SimpleWorker):
            # RQ's pubsub thread waits up to 60 s per poll, and stopping the
            # worker joins it: a burst run or a SIGTERM could take a minute to end.
            def subscribe(self):
                self.pubsub = self.connection.pubsub()
                self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
                self.pubsub_thread = self.pubsub.run_in_thread(
                    sleep_time=1, daemon=True, exception_handler=self._pubsub_exception_handler)

        queue = self.queue()
        return QuickStop([queue], connection=queue.connection)

    def redis_answers(self) -> bool:
        try:
            return bool(self.queue().connection.ping())
        except Exception:  # noqa: BLE001  any failure to reach Redis means the same here
            return False

    def redis_warning(self) -> str | None:
        """At start: what to tell the operator when Redis does not answer
        (said once; dispatch then stays quiet until it answers again)."""
        if self.inline or self.redis_answers():
            return None
        self._redis_down = True
        return (f"Redis at {self.redis_url} does not answer: leadhub works, and background jobs wait in the "
                "database until it does.")

    # ------------------------------------------------------------ enqueue
    def enqueue(self, fn: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> int:
        """Write a job for `fn(*args, **kwargs)` in the open write transaction
        (or one of its own) and dispatch it once that commits. `fn` must be
        importable by path (a module-level function) or be given as that path
        ("package.module.function"), so a module can queue work of one it
        does not import. Returns the job's id."""
        now = utcnow()
        with self.runtime.db.write() as conn:
            job_id = conn.execute(jobs_table.insert().values(   # a dict: values() keeps `fn` for itself
                {"fn": _path(fn), "args": {"args": list(args), "kwargs": kwargs}, "status": "pending",
                 "not_before": now, "created_at": now}).returning(jobs_table.c.id)).scalar_one()
            self.runtime.db.on_commit(lambda: self.dispatch(job_id))
        return job_id

    def dispatch(self, job_id: int) -> None:
        """Hand a pending job to its runner: now (inline) or RQ. If Redis does
        not answer the job stays pending for the next tick."""
        if self.inline:
            self.run(job_id)
            return
        j = jobs_table
        with self.runtime.db.write() as conn:     # marked first: two dispatchers never both send it
            attempts = conn.execute(sa.update(j).where(j.c.id == job_id, j.c.status == "pending")
                                    .values(status="queued", queued_at=utcnow()).returning(j.c.attempts)).scalar()
        if attempts is None:
            return
        try:
            self.queue().enqueue("leadhub.platform.jobs.run_job", job_id, job_id=rq_id(job_id, attempts),
                                 job_timeout=RQ_TIMEOUT, result_ttl=600, failure_ttl=7 * 86400)
        except Exception as exc:  # noqa: BLE001  redis errors of every kind: the job waits in the database
            if not self._redis_down:
                log.warning("Redis at %s does not answer (%s); jobs wait in the database until it does",
                            self.redis_url, exc)
            self._redis_down = True
            with self.runtime.db.write() as conn:
                conn.execute(sa.update(j).where(j.c.id == job_id, j.c.status == "queued")
                             .values(status="pending", queued_at=None))
            return
        if self._redis_down:
            log.warning("Redis answers again; waiting jobs are being dispatched")
        self._redis_down = False

    # ------------------------------------------------------------ running
    def run(self, job_id: int) -> str | None:
        """Claim the job and run it; returns its new status, or None when it
        was not this process's to run (done, or running elsewhere)."""
        now = utcnow()
        with self.runtime.db.write() as conn:
            # not_before is the dispatcher's business: what it hands over is due
            claimed = conn.execute(sa.update(jobs_table).where(
                jobs_table.c.id == job_id, jobs_table.c.status.in_(("pending", "queued"))).values(
                status="running", started_at=now, heartbeat_at=now, attempts=jobs_table.c.attempts + 1,
                worker=f"{socket.gethostname()}:{os.getpid()}"[:120], error=None)).rowcount
            job = conn.execute(sa.select(jobs_table).where(jobs_table.c.id == job_id)).first() if claimed else None
        if job is None:
            return None
        self._heartbeat.add(job_id)
        token = _current.set(self.runtime)
        try:
            fn = pkgutil.resolve_name(job.fn)
            fn(*job.args.get("args", []), **job.args.get("kwargs", {}))
        except Exception as exc:  # noqa: BLE001  the row says why; the caller committed long ago
            log.exception("job %s (%s) failed", job_id, job.fn)
            return self._finish(job, f"{type(exc).__name__}: {exc}")
        finally:
            _current.reset(token)
            self._heartbeat.discard(job_id)
        return self._finish(job, None)

    def _finish(self, job, error: str | None) -> str:
        now = utcnow()
        if error is None:
            status, values = "done", {"finished_at": now}
        elif job.attempts < job.max_attempts:
            status, values = "pending", {"not_before": now + dt.timedelta(seconds=30 * 2 ** (job.attempts - 1))}
        else:
            status, values = "failed", {"finished_at": now}
        with self.runtime.db.write() as conn:
            conn.execute(sa.update(jobs_table).where(jobs_table.c.id == job.id, jobs_table.c.status == "running")
                         .values(status=status, error=error[:4000] if error else None, **values))
        if status == "failed":
            self._give_up(job.fn, job.args, error)
        return status

    def _give_up(self, fn_path: str, args: dict, reason: str) -> None:
        token = _current.set(self.runtime)
        try:
            hook = getattr(pkgutil.resolve_name(fn_path), "give_up", None)
            if hook is not None:
                hook(reason, *args.get("args", []), **args.get("kwargs", {}))
        except Exception:  # noqa: BLE001  the job row already says it failed
            log.exception("give_up of %s failed", fn_path)
        finally:
            _current.reset(token)

    # ------------------------------------------------------------ recovery
    def recover(self, now: dt.datetime | None = None) -> dict[str, int]:
        """Every tick: take back jobs whose runner died, find queued jobs
        Redis lost, dispatch what is pending and due, forget old done jobs."""
        now = now or utcnow()
        j = jobs_table
        dead_before = now - dt.timedelta(seconds=self.stale_after)
        with self.runtime.db.write() as conn:
            dead = conn.execute(sa.select(j.c.id, j.c.fn, j.c.args, j.c.attempts, j.c.max_attempts, j.c.heartbeat_at,
                                          j.c.worker)
                                .where(j.c.status == "running", j.c.heartbeat_at < dead_before)).all()
            given_up = []
            for row in dead:
                reason = (f"The worker {row.worker} stopped (no heartbeat since "
                          f"{row.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC).")
                retry = row.attempts < row.max_attempts
                moved = conn.execute(sa.update(j).where(j.c.id == row.id, j.c.status == "running",
                                                        j.c.heartbeat_at == row.heartbeat_at).values(
                    status="pending" if retry else "failed", error=reason, not_before=now,
                    finished_at=None if retry else now)).rowcount
                if moved and not retry:
                    given_up.append((row, reason))
            conn.execute(sa.delete(j).where(j.c.status == "done", j.c.finished_at < now - KEEP_DONE))
        for row, reason in given_up:
            self._give_up(row.fn, row.args, reason)
        lost = self._requeue_lost(now)
        with self.runtime.db.read() as conn:
            due = conn.execute(sa.select(j.c.id).where(j.c.status == "pending", j.c.not_before <= now)
                               .order_by(j.c.id).limit(500)).scalars().all()
        for job_id in due:
            self.dispatch(job_id)
        return {"dead": len(dead), "lost": lost, "dispatched": len(due)}

    def _requeue_lost(self, now: dt.datetime) -> int:
        if self.inline:
            return 0
        j = jobs_table
        with self.runtime.db.read() as conn:
            waiting = conn.execute(sa.select(j.c.id, j.c.attempts).where(
                j.c.status == "queued", j.c.queued_at < now - dt.timedelta(seconds=self.lost_after))).all()
        if not waiting:
            return 0
        try:
            from rq.job import Job
            connection = self.queue().connection
            lost = [i for i, attempts in waiting if not Job.exists(rq_id(i, attempts), connection=connection)]
        except Exception:  # noqa: BLE001  Redis down: they stay queued until it answers
            return 0
        if lost:
            with self.runtime.db.write() as conn:
                conn.execute(sa.update(j).where(j.c.id.in_(lost), j.c.status == "queued")
                             .values(status="pending", not_before=now))
        return len(lost)

    # ------------------------------------------------------------ reading
    def list(self, status: str | None = None, limit: int = 100) -> list[dict]:
        j = jobs_table
        query = sa.select(j).order_by(j.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(j.c.status == status)
        with self.runtime.db.read() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def retry(self, job_id: int) -> bool:
        """Run a failed job again from its first attempt (an admin's call,
        after fixing what made it fail). False when it is not failed."""
        with self.runtime.db.write() as conn:
            moved = conn.execute(sa.update(jobs_table).where(jobs_table.c.id == job_id, jobs_table.c.status == "failed")
                                 .values(status="pending", attempts=0, not_before=utcnow(), finished_at=None)).rowcount
            if moved:
                self.runtime.db.on_commit(lambda: self.dispatch(job_id))
        return bool(moved)

    def counts(self) -> dict[str, int]:
        j = jobs_table
        with self.runtime.db.read() as conn:
            found = dict(conn.execute(sa.select(j.c.status, sa.func.count()).group_by(j.c.status)).all())
        return {s: found.get(s, 0) for s in STATUSES}


class _Heartbeat:
    """One thread per process touches the rows of the jobs it runs, so
    `recover` can tell a long job from a dead one. A forked worker child
    starts its own (threads do not survive fork)."""

    def __init__(self, runtime: "Runtime"):
        self.runtime = runtime
        if runtime.config.job_heartbeat_seconds * 2 > runtime.config.job_stale_seconds:
            raise ValueError("LEADHUB_JOB_STALE_SECONDS must be at least twice LEADHUB_JOB_HEARTBEAT_SECONDS.")
        self.running: set[int] = set()
        self._lock = threading.Lock()
        self._pid: int | None = None

    def add(self, job_id: int) -> None:
        with self._lock:
            self.running.add(job_id)
            if self._pid != os.getpid():
                self._pid = os.getpid()
                threading.Thread(target=self._beat, name="leadhub-heartbeat", daemon=True).start()

    def discard(self, job_id: int) -> None:
        with self._lock:
            self.running.discard(job_id)

    def _beat(self) -> None:
        while True:
            time.sleep(self.runtime.config.job_heartbeat_seconds)
            with self._lock:
                ids = sorted(self.running)
                if not ids:             # idle: the next job starts a new beat
                    self._pid = None
                    return
            try:
                with self.runtime.db.write() as conn:
                    conn.execute(sa.update(jobs_table).where(jobs_table.c.id.in_(ids), jobs_table.c.status == "running")
                                 .values(heartbeat_at=utcnow()))
            except Exception:  # noqa: BLE001  the next beat tries again
                log.exception("job heartbeat failed")
