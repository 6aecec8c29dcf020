"""Background jobs: `enqueue` goes to RQ when a Redis URL is configured and
runs the function inline otherwise. Jobs carry ids and plain values, never
state that only Redis would hold: what is due lives in database columns.

A job function reaches the kernel through `current_runtime()`: the runtime
that ran it inline, or the one a worker bound at start."""
from __future__ import annotations

import pkgutil
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from leadhub.runtime import Runtime

QUEUE = "leadhub"
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


class Jobs:
    def __init__(self, runtime: "Runtime", redis_url: str | None, queue_name: str = QUEUE):
        self.runtime = runtime
        self.redis_url = redis_url
        self.queue_name = queue_name
        self._queue = None

    @property
    def inline(self) -> bool:
        return not self.redis_url

    def queue(self):
        if self._queue is None:
            from redis import Redis
            from rq import Queue
            self._queue = Queue(self.queue_name, connection=Redis.from_url(self.redis_url))
        return self._queue

    def enqueue(self, fn: Callable[..., Any] | str, *args: Any, **kwargs: Any):
        """Run `fn(*args, **kwargs)` in a worker, or now when there is no Redis.
        `fn` must be importable by path (a module-level function); it may be
        given as that path ("package.module.function"), so a module can
        queue work of one it does not import."""
        if not self.inline:
            return self.queue().enqueue(fn, *args, **kwargs)
        if isinstance(fn, str):
            fn = pkgutil.resolve_name(fn)
        token = _current.set(self.runtime)
        try:
            return fn(*args, **kwargs)
        finally:
            _current.reset(token)
