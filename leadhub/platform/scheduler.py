"""Periodic platform work: sweeps (follow-up deadlines, decay), scheduled
functions, log retention.

Tasks register by name with an interval; their due times live in
lh_schedules, so every process agrees on them and a restart or a Redis flush
loses nothing. `tick()` claims each due task with a conditional UPDATE (two
processes ticking at once never both run a task) and hands it to the jobs
layer: RQ when Redis is configured, inline otherwise. `leadhub serve` runs a
ticker thread; `leadhub worker` and `leadhub tick` tick too."""
from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import sqlalchemy as sa

from leadhub.platform.db import utcnow
from leadhub.platform.tables import schedules
from leadhub.platform.jobs import current_runtime

if TYPE_CHECKING:
    from leadhub.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Task:
    name: str
    seconds: int
    fn: Callable[["Runtime"], object]


class Scheduler:
    def __init__(self, runtime: "Runtime"):
        self.runtime = runtime
        self.tasks: dict[str, Task] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def every(self, name: str, seconds: int, fn: Callable[["Runtime"], object]) -> None:
        """Run `fn(runtime)` every `seconds` (first run on the next tick)."""
        if seconds < 1:
            raise ValueError("a task runs at most once a second")
        self.tasks[name] = Task(name, int(seconds), fn)

    def tick(self, now: dt.datetime | None = None) -> list[str]:
        """Recover background work (see Jobs.recover), then claim and run
        every due task; returns the names claimed."""
        now = now or utcnow()
        try:
            self.runtime.jobs.recover(now)
        except Exception:  # noqa: BLE001  the tasks still run; the next tick tries again
            log.exception("recovering jobs failed")
        claimed = [task.name for task in list(self.tasks.values()) if self._claim(task, now)]
        for name in claimed:
            self.runtime.jobs.enqueue(run_task, name)
        return claimed

    def _claim(self, task: Task, now: dt.datetime) -> bool:
        nxt = now + dt.timedelta(seconds=task.seconds)
        try:
            with self.runtime.db.write() as conn:
                due = conn.execute(sa.select(schedules.c.next_run_at).where(schedules.c.name == task.name)).first()
                if due is None:
                    conn.execute(sa.insert(schedules).values(name=task.name, next_run_at=nxt, last_run_at=now))
                    return True
                if due.next_run_at > now:
                    return False
                return conn.execute(sa.update(schedules).where(schedules.c.name == task.name,
                                                               schedules.c.next_run_at == due.next_run_at)
                                    .values(next_run_at=nxt, last_run_at=now)).rowcount == 1
        except sa.exc.IntegrityError:      # another process inserted the row first: it runs the task
            return False

    def run(self, name: str) -> None:
        task = self.tasks.get(name)
        if task is None:
            log.warning("scheduled task %s is not registered in this process", name)
            return
        error = None
        try:
            task.fn(self.runtime)
        except Exception as exc:           # one failing sweep must not stop the others
            log.exception("scheduled task %s failed", name)
            error = f"{type(exc).__name__}: {exc}"[:2000]
        with self.runtime.db.write() as conn:
            conn.execute(sa.update(schedules).where(schedules.c.name == name).values(last_error=error))

    def status(self) -> list[dict]:
        with self.runtime.db.read() as conn:
            rows = {r.name: r for r in conn.execute(sa.select(schedules))}
        return [{"name": name, "every_seconds": task.seconds,
                 "next_run_at": rows[name].next_run_at if name in rows else None,
                 "last_run_at": rows[name].last_run_at if name in rows else None,
                 "last_error": rows[name].last_error if name in rows else None}
                for name, task in sorted(self.tasks.items())]

    # ------------------------------------------------------------ the ticker
    def start(self, seconds: int | None = None) -> None:
        """Tick in a daemon thread until stop(), every LEADHUB_TICK_SECONDS."""
        if self._thread is not None:
            return
        seconds = max(1, seconds or self.runtime.config.tick_seconds)
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(seconds):
                try:
                    self.tick()
                except Exception:
                    log.exception("scheduler tick failed")
        self._thread = threading.Thread(target=loop, name="leadhub-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def run_task(name: str) -> None:
    """The job a claimed task becomes (importable by path for RQ)."""
    current_runtime().scheduler.run(name)


run_task.job_label = "Periodic task"
