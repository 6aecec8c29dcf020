"""Jobs run inline without Redis and through a real RQ queue with it."""
import uuid

import pytest
import sqlalchemy as sa

from leadhub.data import computed
from leadhub.platform import jobs
from leadhub.platform.jobs import Jobs
from tests.conftest import REDIS_URL, needs_redis


@pytest.fixture
def priced(runtime, admin, make_object):
    make_object("item", [{"api_name": "price", "label": "P", "type": "integer"},
                         {"api_name": "double", "label": "D", "type": "formula", "return_type": "integer",
                          "expression": "price * 2"}])
    rec = runtime.records.create(admin, "item", {"price": 2})
    # simulate a stale stored value, as a formula reading today() would have overnight
    table = runtime.cache.current().table("item")
    with runtime.db.write() as conn:
        conn.execute(sa.update(table).values(double=0))
    return rec["id"]


def stored_double(runtime, rid):
    table = runtime.cache.current().table("item")
    with runtime.db.read() as conn:
        return conn.execute(sa.select(table.c.double).where(table.c.id == rid)).scalar_one()


def test_inline_job_uses_the_enqueuing_runtime(runtime, priced):
    assert runtime.jobs.inline
    assert runtime.jobs.enqueue(computed.recompute_object, "item") == 1
    assert stored_double(runtime, priced) == 4


def test_job_outside_a_runtime_fails_clearly():
    with pytest.raises(RuntimeError, match="No leadhub runtime"):
        jobs.current_runtime()


@needs_redis
def test_job_runs_through_rq(runtime, priced):
    from rq import SimpleWorker
    queue_jobs = Jobs(runtime, REDIS_URL, queue_name=f"test-{uuid.uuid4().hex[:8]}")
    job = queue_jobs.enqueue(computed.recompute_object, "item")
    assert stored_double(runtime, priced) == 0            # queued, not run
    queue = queue_jobs.queue()
    jobs.bind(runtime)
    try:
        SimpleWorker([queue], connection=queue.connection).work(burst=True)
    finally:
        jobs._bound.remove(runtime)
    job.refresh()
    assert job.get_status() == "finished" and job.return_value() == 1
    assert stored_double(runtime, priced) == 4
    queue.delete(delete_jobs=True)
