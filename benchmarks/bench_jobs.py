"""Durable jobs on PostgreSQL and Redis.

1. Dispatch overhead per enqueue: `runtime.jobs.enqueue(noop)` (a row in
   lh_jobs, its commit, the RQ push, the status update) against RQ's own
   `Queue.enqueue` of the same function (the baseline: what enqueue cost
   before the outbox), both to the same Redis, N enqueues per round.
2. A file import of --rows leads through `leadhub worker --burst` (RQ's
   forking worker: a child per job, fresh connection pools) against RQ's
   SimpleWorker in this process (no fork), same file, fresh database each
   round. Rows/s from the import's own started_at/finished_at.

Needs PostgreSQL (LEADHUB_BENCH_PG_URL) and Redis (LEADHUB_BENCH_REDIS_URL,
default redis://127.0.0.1:6379/9, flushed)."""
from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import database, figure, log, machine_note, median, table  # noqa: E402
from leadhub.platform import auth, jobs  # noqa: E402
from leadhub.platform.config import Config  # noqa: E402
from leadhub.runtime import Runtime  # noqa: E402

REDIS = os.environ.get("LEADHUB_BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
ROOT = Path(__file__).resolve().parent.parent
NOOP = "benchmarks.bench_jobs.noop"     # by path: the same function for both, importable by workers


def noop() -> None:
    """The job both enqueue paths send."""


def make_runtime(url: str, inst: str) -> Runtime:
    rt = Runtime(Config(instance_path=Path(inst), database_url=url, redis_url=REDIS, secret_key="bench")).start()
    auth.create_user(rt.db, "admin", "Admin", is_admin=True)
    return rt


def dispatch(rounds: int, n: int) -> list[list]:
    out = []
    with database("postgres") as url, tempfile.TemporaryDirectory(prefix="leadhub_inst_") as inst:
        rt = make_runtime(url, inst)
        queue = rt.jobs.queue()
        queue.connection.flushdb()
        for r in range(rounds):
            t0 = time.perf_counter()
            for _ in range(n):
                queue.enqueue(NOOP)
            raw = (time.perf_counter() - t0) / n
            t0 = time.perf_counter()
            for _ in range(n):
                rt.jobs.enqueue(NOOP)
            durable = (time.perf_counter() - t0) / n
            queue.connection.flushdb()
            log(f"round {r + 1}: RQ enqueue {raw * 1e6:.0f} µs, durable enqueue {durable * 1e6:.0f} µs")
            out.append((raw, durable))
        rt.close()
    return out


def leads_csv(rows: int) -> bytes:
    """Realistic rows (Faker zh_CN, seeded): names, distinct mobiles,
    companies and cities, so cleaning, duplicate checks and scoring do their
    usual work rather than quarantining placeholders. (A city column would
    need the lead's city options: Faker's cities are refused, every row.)"""
    from faker import Faker
    fake = Faker("zh_CN")
    fake.seed_instance(13)
    names = [fake.name() for _ in range(2000)]
    companies = [fake.company() for _ in range(20000)]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["姓名", "手机号", "公司名称", "邮箱"])
    for i in range(rows):
        w.writerow([names[i % len(names)], f"139{i:08d}", companies[(i * 7) % len(companies)],
                    f"lead{i}@example.cn"])
    return buf.getvalue().encode()


def one_import(data: bytes, forking: bool) -> float:
    """Seconds from the import's start to its end, as the import records them."""
    with database("postgres") as url, tempfile.TemporaryDirectory(prefix="leadhub_inst_") as inst:
        rt = make_runtime(url, inst)
        rt.plugins.install("lead")
        rt.jobs.queue().connection.flushdb()
        admin = auth.actor_for(rt.db, rt.cache, auth.user_id(rt.db, "admin"))
        from leadhub.data.imports import Importer
        importer = Importer(rt)
        path = Path(inst) / "leads.csv"
        path.write_bytes(data)
        imp = importer.upload(admin, "lead", "leads.csv", lambda p: p.write_bytes(path.read_bytes()))
        importer.start(admin, imp["id"])
        if forking:
            env = {**os.environ, "LEADHUB_DATABASE_URL": url, "LEADHUB_REDIS_URL": REDIS,
                   "LEADHUB_INSTANCE_PATH": inst, "LEADHUB_SECRET_KEY": "bench"}
            subprocess.run([sys.executable, "-m", "leadhub", "worker", "--burst"], cwd=ROOT, env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        else:
            jobs.bind(rt)
            rt.jobs.worker(forking=False).work(burst=True)
            jobs._bound.remove(rt)
        done = importer.get(admin, imp["id"])
        assert done["status"] == "done" and done["rows_done"] == len(data.splitlines()) - 1, done
        assert done["rejected"] < done["rows_done"] / 100, done        # the rows are written, not refused
        log(f"outcomes: { {k: done[k] for k in ('created', 'duplicate', 'quarantined', 'rejected') if k in done} }")
        with rt.db.read() as conn:
            started, finished = conn.exec_driver_sql(
                f"SELECT started_at, finished_at FROM lh_imports WHERE id = {imp['id']}").one()
        rt.close()
        return (finished - started).total_seconds()


def main() -> None:
    import argparse
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--enqueues", type=int, default=500)
    p.add_argument("--rows", type=int, default=100_000)
    args = p.parse_args()
    print(machine_note(), f"| load {os.getloadavg()[0]:.2f} at start")
    pairs = dispatch(args.rounds, args.enqueues)
    raw, durable = [a for a, _ in pairs], [b for _, b in pairs]
    ratios = [b / a for a, b in pairs]
    print(f"\nDispatch, {args.enqueues} enqueues a round, {args.rounds} rounds (µs per enqueue)")
    print(table(["path", "min", "median"],
                [["RQ Queue.enqueue (baseline)", min(raw) * 1e6, median(raw) * 1e6],
                 ["runtime.jobs.enqueue (row + commit + RQ + status)", min(durable) * 1e6, median(durable) * 1e6],
                 ["ratio per round", min(ratios), median(ratios)]]))
    figure("rq enqueue min", min(raw) * 1e6, "µs")
    figure("rq enqueue median", median(raw) * 1e6, "µs")
    figure("durable enqueue min", min(durable) * 1e6, "µs")
    figure("durable enqueue median", median(durable) * 1e6, "µs")
    figure("durable / rq enqueue min", min(ratios), "x")
    figure("durable / rq enqueue median", median(ratios), "x")
    data = leads_csv(args.rows)
    simple, forking = [], []
    for r in range(args.rounds):
        simple.append(one_import(data, forking=False))
        forking.append(one_import(data, forking=True))
        log(f"round {r + 1}: SimpleWorker {simple[-1]:.1f} s, forking worker {forking[-1]:.1f} s")
    print(f"\nImport of {args.rows:,} leads (lead plugin installed, default rules), {args.rounds} rounds")
    ratios = [f / s for s, f in zip(simple, forking)]
    print(table(["worker", "min s", "median s", "rows/s (median)"],
                [["SimpleWorker (in process)", min(simple), median(simple), args.rows / median(simple)],
                 ["leadhub worker (forking)", min(forking), median(forking), args.rows / median(forking)],
                 ["forking / simple, per round", min(ratios), median(ratios), ""]]))
    figure("import simpleworker min", min(simple), "s")
    figure("import simpleworker median", median(simple), "s")
    figure("import forking worker min", min(forking), "s")
    figure("import forking worker median", median(forking), "s")
    figure("import simpleworker throughput (median)", args.rows / median(simple), "rows/s")
    figure("import forking worker throughput (median)", args.rows / median(forking), "rows/s")
    figure("import forking / simple min", min(ratios), "x")
    figure("import forking / simple median", median(ratios), "x")
    print(f"load {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
