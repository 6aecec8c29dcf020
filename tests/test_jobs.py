"""Durable jobs: a job row is written with the work that asks for it, runs
after the commit (inline, or through a real RQ queue), is retried or failed
visibly, and comes back when its runner dies or Redis loses it."""
import datetime as dt
import logging
import uuid

import pytest
import sqlalchemy as sa

from leadhub.data import computed
from leadhub.platform import jobs, tables as t
from leadhub.platform.db import utcnow
from leadhub.platform.jobs import Jobs
from tests.conftest import REDIS_URL, Api, needs_redis

ATTEMPTS = []


def flaky(times: int) -> None:
    """A job that fails its first `times` runs."""
    ATTEMPTS.append(times)
    if len(ATTEMPTS) <= times:
        raise RuntimeError(f"flaky #{len(ATTEMPTS)}")


def flaky_given_up(reason, times):
    ATTEMPTS.append(("gave up", reason))


flaky.give_up = flaky_given_up


@pytest.fixture(autouse=True)
def fresh_attempts():
    ATTEMPTS.clear()


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


def job(runtime, job_id) -> dict:
    with runtime.db.read() as conn:
        return dict(conn.execute(sa.select(t.jobs).where(t.jobs.c.id == job_id)).one()._mapping)


def test_inline_job_runs_after_commit_and_is_recorded(runtime, priced):
    assert runtime.jobs.inline
    job_id = runtime.jobs.enqueue(computed.recompute_object, "item")
    assert stored_double(runtime, priced) == 4
    row = job(runtime, job_id)
    assert (row["status"], row["attempts"], row["fn"]) == ("done", 1, "leadhub.data.computed.recompute_object")
    assert row["finished_at"] is not None and row["error"] is None


def test_a_job_asked_for_in_a_write_that_rolls_back_never_exists(runtime, priced):
    with pytest.raises(ZeroDivisionError):
        with runtime.db.write():
            runtime.jobs.enqueue(computed.recompute_object, "item")
            assert stored_double(runtime, priced) == 0          # not before the commit
            1 / 0
    assert stored_double(runtime, priced) == 0
    assert runtime.jobs.counts() == {"pending": 0, "queued": 0, "running": 0, "done": 0, "failed": 0}


def test_jobs_need_functions_importable_by_path(runtime):
    with pytest.raises(ValueError, match="module-level"):
        runtime.jobs.enqueue(lambda: None)


def test_a_failing_job_is_retried_later_then_failed_with_its_reason(runtime):
    job_id = runtime.jobs.enqueue(flaky, 5)
    row = job(runtime, job_id)
    assert (row["status"], row["attempts"], row["error"]) == ("pending", 1, "RuntimeError: flaky #1")
    assert row["not_before"] > utcnow() + dt.timedelta(seconds=20)      # backs off
    assert runtime.jobs.recover()["dispatched"] == 0                    # not due yet
    for attempt in (2, 3):
        runtime.jobs.recover(row["not_before"] + dt.timedelta(hours=attempt))
        row = job(runtime, job_id)
        if attempt == 2:
            assert (row["status"], row["attempts"]) == ("pending", 2)
    assert (row["status"], row["attempts"], row["error"]) == ("failed", 3, "RuntimeError: flaky #3")
    assert ATTEMPTS[-1] == ("gave up", "RuntimeError: flaky #3")       # the job's owner is told


def test_a_job_that_fails_once_succeeds_on_its_retry(runtime):
    job_id = runtime.jobs.enqueue(flaky, 1)
    runtime.jobs.recover(utcnow() + dt.timedelta(minutes=5))
    row = job(runtime, job_id)
    assert (row["status"], row["attempts"], row["error"]) == ("done", 2, None)


def test_a_runner_that_died_is_noticed_and_its_job_runs_again(runtime, priced):
    """A 'running' job whose heartbeat stopped (kill -9 of its worker) goes
    back to pending and runs; once its attempts are spent it fails, naming
    the worker and when it was last heard of."""
    now = utcnow()
    with runtime.db.write() as conn:
        job_id = conn.execute(t.jobs.insert().values({
            "fn": "leadhub.data.computed.recompute_object", "args": {"args": ["item"], "kwargs": {}},
            "status": "running", "attempts": 1, "not_before": now, "created_at": now, "started_at": now,
            "heartbeat_at": now - dt.timedelta(minutes=5), "worker": "box:4242"}).returning(t.jobs.c.id)).scalar_one()
    assert runtime.jobs.recover(now)["dead"] == 1
    row = job(runtime, job_id)
    assert (row["status"], row["attempts"]) == ("done", 2) and stored_double(runtime, priced) == 4
    assert row["error"] is None

    with runtime.db.write() as conn:
        conn.execute(sa.update(t.jobs).where(t.jobs.c.id == job_id).values(
            status="running", attempts=3, heartbeat_at=now - dt.timedelta(minutes=5), worker="box:4242"))
    runtime.jobs.recover(now)
    row = job(runtime, job_id)
    assert row["status"] == "failed"
    assert row["error"].startswith("The worker box:4242 stopped (no heartbeat since ")


def test_a_live_job_is_left_alone(runtime):
    now = utcnow()
    with runtime.db.write() as conn:
        job_id = conn.execute(t.jobs.insert().values({
            "fn": "tests.test_jobs.flaky", "args": {"args": [0], "kwargs": {}}, "status": "running",
            "attempts": 1, "not_before": now, "created_at": now, "heartbeat_at": now - dt.timedelta(seconds=5)})
            .returning(t.jobs.c.id)).scalar_one()
    assert runtime.jobs.recover(now) == {"dead": 0, "lost": 0, "dispatched": 0}
    assert job(runtime, job_id)["status"] == "running" and ATTEMPTS == []
    assert runtime.jobs.run(job_id) is None              # claimed elsewhere: not run twice


def test_jobs_api_and_page_are_for_admins(runtime, api, app):
    runtime.jobs.enqueue(flaky, 5)
    runtime.jobs.enqueue(flaky, 0)
    r = api.get("/jobs")
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["counts"]["pending"] == 1 and body["counts"]["done"] == 1
    assert [j["status"] for j in body["jobs"]] == ["done", "pending"]
    assert body["jobs"][1]["error"] == "RuntimeError: flaky #1" and body["jobs"][1]["function"] == "tests.test_jobs.flaky"
    assert [j["status"] for j in api.get("/jobs?status=pending").get_json()["jobs"]] == ["pending"]
    assert api.get("/jobs?status=nonsense").status_code == 400
    r = api.get("/jobs?limit=many")
    assert r.status_code == 400 and "limit" in r.get_json()["error"]["fields"]
    r = api.post("/users", {"login": "rep", "name": "rep", "password": "s3cret-pass", "roles": ["sales_rep"]})
    assert r.status_code == 201
    from leadhub.platform import auth
    rep = Api(app.test_client(), auth.create_token(runtime.db, "rep"))
    assert rep.get("/jobs").status_code == 403


def test_job_outside_a_runtime_fails_clearly():
    with pytest.raises(RuntimeError, match="No leadhub runtime"):
        jobs.current_runtime()


# ---------------------------------------------------------------- with Redis

@pytest.fixture
def rq_jobs(runtime, monkeypatch):
    queue_jobs = Jobs(runtime, REDIS_URL, queue_name=f"test-{uuid.uuid4().hex[:8]}")
    monkeypatch.setattr(runtime, "jobs", queue_jobs)
    jobs.bind(runtime)
    yield queue_jobs
    jobs._bound.remove(runtime)
    queue_jobs.queue().delete(delete_jobs=True)


def work(queue_jobs) -> None:
    queue_jobs.worker(forking=False).work(burst=True)


@needs_redis
def test_job_runs_through_rq(runtime, priced, rq_jobs):
    job_id = rq_jobs.enqueue(computed.recompute_object, "item")
    assert stored_double(runtime, priced) == 0            # queued, not run
    assert job(runtime, job_id)["status"] == "queued"
    work(rq_jobs)
    assert stored_double(runtime, priced) == 4
    assert job(runtime, job_id)["status"] == "done"


@needs_redis
def test_with_redis_unreachable_the_write_succeeds_and_the_job_waits(runtime, priced, rq_jobs, monkeypatch, caplog):
    good = rq_jobs.queue()
    dead = Jobs(runtime, "redis://127.0.0.1:1/0", queue_name=rq_jobs.queue_name)
    monkeypatch.setattr(runtime, "jobs", dead)
    with caplog.at_level(logging.WARNING, logger="leadhub.platform.jobs"):
        first = dead.enqueue(computed.recompute_object, "item")
        second = dead.enqueue(computed.recompute_object, "item")
    assert [job(runtime, i)["status"] for i in (first, second)] == ["pending", "pending"]
    assert sum("does not answer" in r.message for r in caplog.records) == 1     # said once
    assert dead.recover()["dispatched"] == 2 and job(runtime, first)["status"] == "pending"
    monkeypatch.setattr(runtime, "jobs", rq_jobs)           # Redis is back
    assert rq_jobs.recover()["dispatched"] == 2
    assert [job(runtime, i)["status"] for i in (first, second)] == ["queued", "queued"]
    assert good.count == 2
    work(rq_jobs)
    assert [job(runtime, i)["status"] for i in (first, second)] == ["done", "done"]
    assert stored_double(runtime, priced) == 4


@needs_redis
def test_a_job_redis_lost_is_dispatched_again(runtime, priced, rq_jobs):
    job_id = rq_jobs.enqueue(computed.recompute_object, "item")
    rq_jobs.queue().delete(delete_jobs=True)              # a Redis restart without persistence
    assert rq_jobs.recover()["lost"] == 0                 # too soon to tell
    rq_jobs.lost_after = 0
    assert rq_jobs.recover(utcnow() + dt.timedelta(seconds=1))["lost"] == 1
    assert job(runtime, job_id)["status"] == "queued"
    work(rq_jobs)
    assert job(runtime, job_id)["status"] == "done" and stored_double(runtime, priced) == 4


def test_the_jobs_page_shows_work_by_status_and_runs_a_failed_job_again(runtime, api, app):
    from leadhub.platform import auth
    from tests.test_pages import PW, Browser
    admin_id = auth.user_id(runtime.db, "admin")
    runtime.org.update_user(auth.actor_for(runtime.db, runtime.cache, admin_id), admin_id,
                            {"password": PW, "language": "zh_CN"})
    failing = runtime.jobs.enqueue(flaky, 3)
    for attempt in (2, 3):
        runtime.jobs.recover(utcnow() + dt.timedelta(hours=attempt))
    assert job(runtime, failing)["status"] == "failed"
    runtime.jobs.enqueue(computed.recompute_object, "nothing_here")       # fails: no such object (retries)
    page = Browser(app, "admin")
    html = page.get("/admin/jobs?status=failed").text
    assert "后台任务" in html and "失败 (1)" in html and "RuntimeError: flaky #3" in html and "3 / 3" in html
    assert "tests.test_jobs" not in html                                  # people see names, not code paths
    assert page.get("/admin/jobs?status=nonsense").status_code == 404
    r = page.post(f"/admin/jobs/{failing}/retry", {"status": "failed"})
    assert r.status_code == 302 and job(runtime, failing)["status"] == "done"    # flaky(3) passes its 4th run
    r = page.post(f"/admin/jobs/{failing}/retry")
    assert r.status_code == 302 and "只有失败的任务可以重新运行。" in page.get("/admin/jobs").text
    assert "公式重新计算" in page.get("/admin/jobs?status=pending").text
    api.post("/users", {"login": "rep", "name": "rep", "password": PW, "roles": ["sales_rep"]})
    assert Browser(app, "rep").get("/admin/jobs").status_code == 403


def test_every_job_has_a_translated_name():
    from leadhub.platform.jobs import label
    from leadhub.web.pages.jobs import STATUS_LABELS
    from leadhub.web.pages.i18n import catalog as load_catalog
    catalog = load_catalog("zh_CN")
    paths = ["leadhub.platform.scheduler.run_task", "leadhub.platform.notifications.deliver_mail",
             "leadhub.data.computed.recompute_object", "leadhub.functions.runner.run_function_job",
             "leadhub.data.imports.run_import", "leadhub.plugins.lead.scoring_runs.run_rescore",
             "leadhub.plugins.lead.duplicate_scan.run_scan", "leadhub.plugins.lead.followup_rules.recompute_deadlines"]
    names = [label(p) for p in paths]
    assert "Background task" not in names
    assert [n for n in names + list(STATUS_LABELS.values()) + ["Background task"] if n not in catalog] == []
