"""Fault injection in the production shape: real PostgreSQL, a Redis server
these tests start and kill themselves, and `leadhub worker` (RQ's forking
worker) as a separate process. After every fault and its recovery each
import finishes exactly once, every job ran or is visibly failed, and no row
is doubled or lost."""
from __future__ import annotations

import csv
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from leadhub.platform import auth, tables as t
from leadhub.platform.config import Config
from leadhub.runtime import Runtime
from tests.conftest import ON_PG, Api

pytestmark = [
    pytest.mark.plugins("lead"),
    pytest.mark.skipif(not ON_PG, reason="needs PostgreSQL: set LEADHUB_DATABASE_URL (faults are tried in the "
                                         "production shape)"),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs the redis-server program"),
]
ROOT = Path(__file__).resolve().parent.parent
HEARTBEAT, STALE = 1, 3           # seconds: the worker beats often so a dead one is seen quickly


class RedisServer:
    """A redis-server of the test's own, without persistence (a restart
    comes back empty, as a crashed cache would)."""

    def __init__(self, folder: Path):
        self.folder = folder
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no", "--dir", str(self.folder)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def prod(tmp_path, database_url, redis_server):
    """The server's runtime (PostgreSQL + our Redis), an admin API client,
    and a way to start `leadhub worker` processes against the same instance."""
    from leadhub.web.app import create_app
    config = Config(instance_path=tmp_path / "instance", database_url=database_url, redis_url=redis_server.url,
                    secret_key="test-secret", job_heartbeat_seconds=HEARTBEAT, job_stale_seconds=STALE)
    runtime = Runtime(config).start()
    with runtime.db.write() as conn:    # the template's install jobs (its list views' indexes, done): tests count their own
        conn.execute(sa.delete(t.jobs))
    auth.create_user(runtime.db, "admin", "Admin", is_admin=True)
    app = create_app(runtime=runtime)
    api = Api(app.test_client(), auth.create_token(runtime.db, "admin"))
    workers: list[subprocess.Popen] = []
    env = {**os.environ, "LEADHUB_DATABASE_URL": database_url, "LEADHUB_REDIS_URL": redis_server.url,
           "LEADHUB_INSTANCE_PATH": str(config.instance_path), "LEADHUB_SECRET_KEY": "test-secret",
           "LEADHUB_JOB_HEARTBEAT_SECONDS": str(HEARTBEAT), "LEADHUB_JOB_STALE_SECONDS": str(STALE)}

    def worker(burst: bool = True) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "leadhub", "worker"] + (["--burst"] if burst else []),
                                cwd=ROOT, env=env, start_new_session=True,   # its own group: the horse dies with it
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        workers.append(proc)
        return proc

    yield {"runtime": runtime, "api": api, "worker": worker, "redis": redis_server}
    for proc in workers:
        _kill_group(proc)
    runtime.close()


def _tree(pid: int) -> set[int]:
    """`pid` and its descendants. RQ's work horse starts a session of its
    own, so killing the worker's process group would leave it running."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        found.add(p)
        todo.extend(c for c, parent in parents.items() if parent == p and c not in found)
    return found


def _kill_group(proc: subprocess.Popen) -> None:
    """kill -9 of the worker and everything it forked."""
    for pid in _tree(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def _group_gone(proc: subprocess.Popen, timeout: float) -> None:
    """Wait until the worker and everything it forked (the horse too) ended."""
    pids = _tree(proc.pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc.poll()
        alive = [p for p in pids if Path(f"/proc/{p}").exists() and
                 Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
        if not alive:
            proc.wait()
            return
        time.sleep(0.1)
    raise AssertionError("the worker's processes did not end")


def finish(proc: subprocess.Popen, timeout: float = 240) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


def leads_csv(start: int, n: int) -> bytes:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["姓名", "手机号", "公司名称", "备注"])
    for i in range(start, start + n):
        w.writerow([f"客户{i}", f"139{i:08d}", f"测试公司{i}", f"row {i}"])
    return out.getvalue().encode()


def start_import(api, data: bytes, name: str) -> int:
    r = api.post("/imports", data={"object": "lead", "file": (io.BytesIO(data), name)},
                 content_type="multipart/form-data")
    assert r.status_code == 202, r.get_json()
    assert r.get_json()["status"] == "queued"
    return r.get_json()["id"]


def import_state(api, import_id) -> dict:
    return api.get(f"/imports/{import_id}").get_json()


def count(runtime, sql: str) -> int:
    with runtime.db.read() as conn:
        return conn.exec_driver_sql(sql).scalar_one()


def jobs(runtime) -> list[dict]:
    with runtime.db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(t.jobs).order_by(t.jobs.c.id))]


def assert_imported_once(prod, import_ids, rows_each, others=0):
    runtime, api = prod["runtime"], prod["api"]
    for import_id in import_ids:
        state = import_state(api, import_id)
        assert (state["status"], state["rows_done"], state["rows_total"]) == ("done", rows_each, rows_each), state
        assert count(runtime, f"SELECT count(*) FROM lh_import_rows WHERE import_id = {import_id}") == rows_each
    total = rows_each * len(import_ids) + others
    assert count(runtime, "SELECT count(*) FROM o_lead WHERE deleted_at IS NULL") == total
    assert count(runtime, "SELECT count(DISTINCT mobile) FROM o_lead") == total            # none twice
    assert {j["status"] for j in jobs(runtime) if j["fn"].endswith("run_import")} == {"done"}


def test_the_forking_worker_runs_imports_on_postgresql(prod):
    """RQ forks a child per job; the child must not reuse the parent's pooled
    PostgreSQL connections (6 of 7 imports used to fail)."""
    ids = [start_import(prod["api"], leads_csv(k * 1000, 150), f"part{k}.csv") for k in range(7)]
    out = finish(prod["worker"]())
    assert "Traceback" not in out, out[-3000:]
    assert_imported_once(prod, ids, 150)


def test_redis_down_when_work_is_asked_for(prod):
    """The write succeeds, its jobs wait in the database, and run once Redis
    is back and a tick dispatches them."""
    runtime, api, redis = prod["runtime"], prod["api"], prod["redis"]
    redis.kill()
    r = api.post("/objects/lead/records", {"name": "王五", "mobile": "13600000000", "company_size": 800})
    assert r.status_code == 201, r.get_json()
    lead = r.get_json()
    import_id = start_import(api, leads_csv(0, 120), "down.csv")
    r = api.post("/meta/scoring-rules", {"label": "Big company", "condition": "company_size >= 500", "points": 10})
    assert r.status_code == 201, r.get_json()
    assert api.post("/meta/follow-up-rules", {"status": "new", "hours": 24}).status_code == 201
    waiting = jobs(runtime)
    assert len(waiting) == 3 and {j["status"] for j in waiting} == {"pending"}
    assert import_state(api, import_id)["status"] == "queued"
    assert runtime.jobs.recover()["dispatched"] == 3 and {j["status"] for j in jobs(runtime)} == {"pending"}

    redis.start()
    assert runtime.jobs.recover()["dispatched"] == 3
    assert {j["status"] for j in jobs(runtime)} == {"queued"}
    finish(prod["worker"]())
    assert {j["status"] for j in jobs(runtime)} == {"done"}
    assert_imported_once(prod, [import_id], 120, others=1)
    assert api.get(f"/objects/lead/records/{lead['id']}").get_json()["score"] == lead["score"] + 10   # rescored


def test_a_worker_killed_mid_import_is_noticed_and_the_import_resumes(prod):
    runtime, api = prod["runtime"], prod["api"]
    rows = 3000
    import_id = start_import(api, leads_csv(0, rows), "big.csv")
    proc = prod["worker"](burst=False)
    deadline = time.monotonic() + 120
    while import_state(api, import_id)["rows_done"] < 500 and time.monotonic() < deadline:
        time.sleep(0.05)
    _kill_group(proc)                                           # kill -9: worker and horse, mid-import
    state = import_state(api, import_id)
    assert state["status"] == "running" and 500 <= state["rows_done"] < rows, state
    [job] = jobs(runtime)
    assert job["status"] == "running" and job["attempts"] == 1

    time.sleep(STALE + 0.5)                                     # its heartbeat has stopped
    assert runtime.jobs.recover()["dead"] == 1
    [job] = jobs(runtime)
    assert job["status"] == "queued" and job["error"].startswith("The worker ")
    finish(prod["worker"]())
    [job] = jobs(runtime)
    assert (job["status"], job["attempts"], job["error"]) == ("done", 2, None)
    assert_imported_once(prod, [import_id], rows)


def test_redis_killed_during_imports_and_back_empty(prod):
    """Redis dies while a worker runs an import with two more queued, and
    comes back without them: the running one finishes or is taken back, the
    lost ones are dispatched again, all finish once."""
    runtime, api, redis = prod["runtime"], prod["api"], prod["redis"]
    ids = [start_import(api, leads_csv(k * 10_000, 1000), f"r{k}.csv") for k in range(3)]
    proc = prod["worker"](burst=False)
    deadline = time.monotonic() + 120
    while import_state(api, ids[0])["rows_done"] < 500 and time.monotonic() < deadline:
        time.sleep(0.05)
    redis.kill()
    _group_gone(proc, 120)                   # the worker stops without Redis; its horse finishes or dies
    redis.start()                            # empty: the queued imports are gone from it
    time.sleep(STALE + 0.5)
    runtime.jobs.lost_after = 0
    runtime.jobs.recover()
    assert {j["status"] for j in jobs(runtime)} <= {"queued", "done"}
    finish(prod["worker"]())
    assert_imported_once(prod, ids, 1000)


def test_redis_down_at_start_the_server_starts_and_says_so_once(prod, tmp_path, database_url):
    prod["redis"].kill()
    env = {**os.environ, "LEADHUB_DATABASE_URL": database_url, "LEADHUB_REDIS_URL": prod["redis"].url,
           "LEADHUB_INSTANCE_PATH": str(tmp_path / "served")}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "leadhub", "serve", "--port", str(port)], cwd=ROOT, env=env,
                              start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        import urllib.request
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, server.stdout.read()[-3000:]
                time.sleep(0.2)
    finally:
        _kill_group(server)
    out = server.stdout.read()
    assert out.count("does not answer") == 1, out[-3000:]
