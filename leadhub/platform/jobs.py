"""Background jobs: `enqueue` goes to RQ when a Redis URL is configured and
runs the function inline otherwise. Jobs carry ids and plain values, never
state that only Redis would hold: what is due lives in database columns."""
from __future__ import annotations

from typing import Any, Callable

QUEUE = "leadhub"


class Jobs:
    def __init__(self, redis_url: str | None):
        self.redis_url = redis_url
        self._queue = None

    @property
    def inline(self) -> bool:
        return not self.redis_url

    def queue(self):
        if self._queue is None:
            from redis import Redis
            from rq import Queue
            self._queue = Queue(QUEUE, connection=Redis.from_url(self.redis_url))
        return self._queue

    def enqueue(self, fn: Callable[..., Any], *args: Any, **kwargs: Any):
        """Run `fn(*args, **kwargs)` in a worker, or now when there is no Redis.
        `fn` must be importable by path (a module-level function)."""
        if self.inline:
            return fn(*args, **kwargs)
        return self.queue().enqueue(fn, *args, **kwargs)
