"""Two `leadhub serve` processes and two `leadhub worker` processes against
one PostgreSQL and one Redis behave as one instance: every periodic task
and scheduled function runs once per due time although four processes tick
every second, every job runs once, and a metadata change made through one
server is seen by the other on its next request."""
from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
import sqlalchemy as sa

from tests.conftest import ON_PG
from tests.test_faults import ROOT, _kill_group, prod, redis_server  # noqa: F401  (fixtures)

pytestmark = [
    pytest.mark.plugins("lead"),
    pytest.mark.skipif(not ON_PG, reason="needs PostgreSQL: set LEADHUB_DATABASE_URL (several processes share "
                                         "one database only there)"),
]
FORCED = "every_year"      # a scheduled function due only when the test says so


class Server:
    def __init__(self, env: dict, token: str):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.token = token
        self.proc = subprocess.Popen([sys.executable, "-m", "leadhub", "serve", "--port", str(self.port)],
                                     cwd=ROOT, env=env, start_new_session=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def wait(self) -> None:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2):
                    return
            except OSError:
                assert self.proc.poll() is None and time.monotonic() < deadline, self.proc.stdout.read()[-3000:]
                time.sleep(0.2)

    def call(self, method: str, path: str, body=None) -> tuple[int, dict]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/api/v1{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {self.token}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")


@pytest.fixture
def cluster(prod, database_url):
    runtime = prod["runtime"]
    from leadhub.platform import auth
    token = auth.create_token(runtime.db, "admin")
    env = {**os.environ, "LEADHUB_DATABASE_URL": database_url, "LEADHUB_REDIS_URL": prod["redis"].url,
           "LEADHUB_INSTANCE_PATH": str(runtime.config.instance_path), "LEADHUB_SECRET_KEY": "test-secret",
           "LEADHUB_TICK_SECONDS": "1", "LEADHUB_JOB_HEARTBEAT_SECONDS": "1", "LEADHUB_JOB_STALE_SECONDS": "3"}
    servers = [Server(env, token) for _ in range(2)]
    workers = [subprocess.Popen([sys.executable, "-m", "leadhub", "worker"], cwd=ROOT, env=env,
                                start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for _ in range(2)]
    try:
        for s in servers:
            s.wait()
        yield {"servers": servers, "runtime": runtime}
    finally:
        for proc in [s.proc for s in servers] + workers:
            _kill_group(proc)


def scalar(runtime, sql: str, **params):
    with runtime.db.read() as conn:
        return conn.execute(sa.text(sql), params).scalar_one()


def test_two_servers_see_each_others_metadata_changes_at_once(cluster):
    a, b = cluster["servers"]
    status, body = a.call("POST", "/meta/objects", {"api_name": "beat", "label": "Beat", "fields": [
        {"api_name": "note", "label": "Note", "type": "text"}]})
    assert status == 201, body
    status, body = b.call("POST", "/objects/beat/records", {"note": "made through the other server"})
    assert status == 201, body
    assert b.call("POST", "/meta/objects/beat/fields", {"api_name": "extra", "label": "Extra",
                                                         "type": "integer"})[0] == 201
    status, body = a.call("POST", "/objects/beat/records", {"note": "x", "extra": 7})
    assert status == 201 and body["extra"] == 7, body
    status, body = b.call("PATCH", "/meta/objects/beat/fields/extra", {"label": "Renamed"})
    assert status == 200, body
    fields = {f["api_name"]: f for f in a.call("GET", "/meta/objects/beat")[1]["fields"]}
    assert "Renamed" in json.dumps(fields["extra"]["label"])


def test_periodic_work_runs_once_per_due_time_with_four_processes_ticking(cluster):
    a, _b = cluster["servers"]
    runtime = cluster["runtime"]
    assert a.call("POST", "/meta/objects", {"api_name": "beat", "label": "Beat", "fields": [
        {"api_name": "note", "label": "Note", "type": "text"}]})[0] == 201
    status, body = a.call("POST", "/meta/functions", {
        "api_name": FORCED, "label": "Yearly", "kind": "scheduled", "schedule": "0 0 1 1 *", "active": True,
        "code": "api.records.create('beat', {'note': 'ran'})"})
    assert status == 201, body
    time.sleep(2)        # every process has ticked: each task has its row in lh_schedules
    tasks = sorted(r for r in scalar_rows(runtime, "SELECT name FROM lh_schedules"))
    assert "functions.scheduled" in tasks and "lead.follow_up_sweep" in tasks
    for round_ in range(1, 4):
        forced_at = dt.datetime.now(dt.timezone.utc)
        with runtime.db.write() as conn:       # everything due now: four tickers race for it
            conn.execute(sa.text("UPDATE lh_schedules SET next_run_at = :t"), {"t": forced_at - dt.timedelta(seconds=1)})
            conn.execute(sa.text("UPDATE lh_function_schedules SET next_run_at = :t WHERE function = :f"),
                         {"t": forced_at - dt.timedelta(seconds=1), "f": FORCED})
        race(runtime, 6)        # and six more ticks at the same instant, from this process
        deadline = time.monotonic() + 30
        while scalar(runtime, "SELECT count(*) FROM o_beat") < round_:
            assert time.monotonic() < deadline, "the forced scheduled function never ran"
            time.sleep(0.2)
        time.sleep(3)                            # three more ticks of every process
        assert scalar(runtime, "SELECT count(*) FROM o_beat") == round_
        per_task = dict(scalar_rows(runtime, "SELECT args->'args'->>0, count(*) FROM lh_jobs "
                                             "WHERE fn = 'leadhub.platform.scheduler.run_task' AND created_at >= :t "
                                             "GROUP BY 1", t=forced_at))
        assert per_task == {name: 1 for name in tasks}, (round_, per_task)
    jobs = scalar_rows(runtime, "SELECT status, attempts, count(*) FROM lh_jobs GROUP BY 1, 2")
    assert {(status, attempts) for status, attempts, _n in jobs} == {("done", 1)}, jobs


def race(runtime, n: int) -> None:
    """`n` scheduler ticks released at once (the processes' own ticks are seconds apart)."""
    start = threading.Barrier(n)

    def tick():
        start.wait()
        runtime.scheduler.tick()
    threads = [threading.Thread(target=tick) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def scalar_rows(runtime, sql: str, **params):
    with runtime.db.read() as conn:
        rows = conn.execute(sa.text(sql), params).all()
    return [r[0] if len(r) == 1 else tuple(r) for r in rows]
