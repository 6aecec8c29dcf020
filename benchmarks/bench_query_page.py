"""Latency of one filtered, sorted page of 50 records through the HTTP API
(POST /api/v1/objects/lead/query, served by waitress on 127.0.0.1) on a
PostgreSQL object holding 1,000,000 rows.

Baselines in the same run, interleaved request by request with the API call:
  * core    - the very SELECT the query compiler produces, executed with
              SQLAlchemy Core on one held connection (pure database time);
  * service - rt.records.query() in-process (compiler + service, no HTTP);
  * healthz - GET /healthz over the same server and keep-alive connection
              (HTTP + Flask + one metadata-version SELECT, no auth, no query).

The query is {"filter": {"field": "stage", "op": "eq", "value": <one of 5>},
"sort": ["-score"], "page_size": 50}; stage and score are created with
"indexed": true. It is measured twice: with the kernel's single-column
indexes only, then after the script adds the composite index
(stage, score DESC NULLS FIRST, id DESC) WHERE deleted_at IS NULL.

    python benchmarks/bench_query_page.py                  # 1,000,000 rows, 200 requests
    python benchmarks/bench_query_page.py --rows 100000 --requests 100
"""
from __future__ import annotations

import http.client
import json
import random
import sys
import threading

import sqlalchemy as sa
from waitress.server import create_server

import _common as c

from leadhub.data.query import QueryCompiler, QuerySpec
from leadhub.platform import auth
from leadhub.web.app import create_app

STAGES = ["new", "contacted", "qualified", "won", "lost"]
FIELDS = [
    {"api_name": "name", "label": "Name", "type": "text", "required": True},
    {"api_name": "email", "label": "Email", "type": "email"},
    {"api_name": "city", "label": "City", "type": "text"},
    {"api_name": "stage", "label": "Stage", "type": "picklist", "indexed": True, "options": STAGES},
    {"api_name": "score", "label": "Score", "type": "integer", "indexed": True},
    {"api_name": "amount", "label": "Amount", "type": "currency", "precision": 14, "scale": 2},
]
COLUMNS = ["owner", "created_by", "created_at", "updated_by", "updated_at",
           "name", "email", "city", "stage", "score", "amount"]
CITIES = ["Shenzhen", "Guangzhou", "Hangzhou", "Shanghai", "Beijing", "Chengdu", "Wuhan"]
COMPOSITE = ('CREATE INDEX ix_o_lead_stage_score_id ON o_lead (stage, score DESC NULLS FIRST, id DESC) '
             'WHERE deleted_at IS NULL')


def lines(n: int, uid: int, seed: int = 1):
    rnd = random.Random(seed)
    for i in range(n):
        ts = f"2025-{1 + i % 12:02d}-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:00"
        yield (f"{uid}\t{uid}\t{ts}\t{uid}\t{ts}\tLead {i}\tlead{i}@example.com\t{CITIES[i % 7]}\t"
               f"{STAGES[rnd.randrange(5)]}\t{rnd.randrange(100000)}\t{rnd.randrange(10**8) / 100:.2f}")


def spec_for(stage: str, count: bool = False) -> dict:
    return {"filter": {"field": "stage", "op": "eq", "value": stage}, "sort": ["-score"], "page_size": 50,
            "count": count}


class Client:
    """One keep-alive HTTP/1.1 connection to the local server."""

    def __init__(self, port: int, token: str):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def post(self, path: str, payload: dict) -> tuple[int, bytes]:
        self.conn.request("POST", path, body=json.dumps(payload), headers=self.headers)
        r = self.conn.getresponse()
        return r.status, r.read()

    def get(self, path: str) -> tuple[int, bytes]:
        self.conn.request("GET", path)
        r = self.conn.getresponse()
        return r.status, r.read()


def plan(rt, stmt) -> list[str]:
    with rt.db.read() as conn:
        sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        return [r[0] for r in conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql)]


def measure(rt, actor, client, n: int, label: str) -> dict[str, list[float]]:
    reg = rt.cache.current()
    stmts = {s: QueryCompiler(reg, "lead", actor, rt.config.timezone).compile(QuerySpec(**spec_for(s)))[0]
             for s in STAGES}
    times: dict[str, list[float]] = {"api": [], "core": [], "service": [], "healthz": []}
    with rt.db.engine.connect() as held:
        for s in STAGES:  # warm up every path and value
            held.execute(stmts[s]).all()
            client.post("/api/v1/objects/lead/query", spec_for(s))
            rt.records.query(actor, "lead", QuerySpec(**spec_for(s)))
            client.get("/healthz")

        def api(s):
            t = c.Timer()
            status, body = client.post("/api/v1/objects/lead/query", spec_for(s))
            el = t.elapsed
            assert status == 200, body[:300]
            return el, body

        def core(s):
            t = c.Timer()
            rows = held.execute(stmts[s]).all()
            el = t.elapsed
            held.rollback()  # end the implicit transaction, as the service's read() does
            return el, rows

        def service(s):
            t = c.Timer()
            out = rt.records.query(actor, "lead", QuerySpec(**spec_for(s)))
            return t.elapsed, out

        def healthz(_s):
            t = c.Timer()
            status, body = client.get("/healthz")
            el = t.elapsed
            assert status == 200
            return el, body

        ops = [("api", api), ("core", core), ("service", service), ("healthz", healthz)]
        for i in range(n):
            s = STAGES[i % len(STAGES)]
            k = i % len(ops)
            results = {}
            for name, fn in ops[k:] + ops[:k]:  # rotate the order so no path is always first
                el, results[name] = fn(s)
                times[name].append(el * 1000)
            if i < len(STAGES):  # the API page is the Core page, correctly filtered and sorted
                page = json.loads(results["api"])
                recs = page["records"]
                assert len(recs) == 50 and page["has_more"], page.get("has_more")
                assert [r["id"] for r in recs] == [r[0] for r in results["core"][:50]]
                assert all(r["stage"] == s for r in recs)
                assert all(a["score"] >= b["score"] for a, b in zip(recs, recs[1:]))
        c.log(f"  {label}: api p50 {c.median(times['api']):.1f} ms, core p50 {c.median(times['core']):.1f} ms")
    return times


def summary(times: dict[str, list[float]], phase: str) -> list[list]:
    api50 = c.percentile(times["api"], 50)
    rows = []
    for name, label in (("api", "POST /query (HTTP API)"), ("service", "records.query in-process"),
                        ("core", "same SELECT via Core"), ("healthz", "GET /healthz (HTTP)")):
        v = times[name]
        p50 = c.percentile(v, 50)
        rows.append([phase, label, len(v), p50, c.percentile(v, 95), max(v),
                     "1.00" if name == "api" else f"{api50 / p50:.2f}"])
    return rows


def main() -> int:
    p = c.parser(__doc__.splitlines()[0], db_choices=("postgres",), default_rows=1_000_000)
    p.add_argument("--requests", type=int, default=200, help="timed requests per path and phase (default 200)")
    p.add_argument("--count-requests", type=int, default=20,
                   help="extra API requests with count: true after the composite index (default 20; 0 skips)")
    p.add_argument("--threads", type=int, default=4, help="waitress worker threads (default 4)")
    args = p.parse_args()

    with c.runtime("postgres") as (rt, actor):
        rt.metadata.create_object(actor, {"api_name": "lead", "label": "Lead", "fields": FIELDS})
        c.log(f"loading {args.rows:,} rows with COPY ...")
        t = c.Timer()
        load = c.copy_rows(rt, "o_lead", COLUMNS, lines(args.rows, actor.user_id), args.rows)
        load_s = t.elapsed
        with rt.db.read() as conn:
            kernel_indexes = [r[0] for r in conn.exec_driver_sql(
                "SELECT indexdef FROM pg_indexes WHERE tablename = 'o_lead' ORDER BY indexname")]

        app = create_app(runtime=rt)
        token = auth.create_token(rt.db, "admin")
        server = create_server(app, host="127.0.0.1", port=0, threads=args.threads)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        client = Client(server.effective_port, token)
        try:
            reg = rt.cache.current()
            stmt = QueryCompiler(reg, "lead", actor, rt.config.timezone).compile(QuerySpec(**spec_for("won")))[0]
            with rt.db.read() as conn:
                sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
            plan_a = plan(rt, stmt)
            c.log("plan, kernel indexes only:\n  " + "\n  ".join(plan_a))
            times_a = measure(rt, actor, client, args.requests, "kernel indexes")

            with rt.db.write() as conn:
                t = c.Timer()
                conn.exec_driver_sql(COMPOSITE)
                index_s = t.elapsed
            with rt.db.write() as conn:
                conn.exec_driver_sql("ANALYZE o_lead")
            plan_b = plan(rt, stmt)
            c.log("plan, with composite index:\n  " + "\n  ".join(plan_b))
            times_b = measure(rt, actor, client, args.requests, "composite index")

            counts = []
            for i in range(args.count_requests):
                t = c.Timer()
                status, body = client.post("/api/v1/objects/lead/query", spec_for(STAGES[i % 5], count=True))
                counts.append(t.elapsed * 1000)
                assert status == 200 and json.loads(body)["total"] > 0
        finally:
            client.conn.close()
            # stop the worker threads; the daemon loop thread ends with the process (closing the
            # server's sockets under its select() from here would only print EBADF tracebacks)
            server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
        version = c.server_version(rt)

    print(f"\nbench_query_page  PostgreSQL {version}  {c.machine_note()}")
    print(f"object 'lead': {len(FIELDS)} custom fields, {args.rows:,} rows loaded by COPY in {load_s:.1f}s; "
          f"waitress {args.threads} threads on 127.0.0.1, client http.client keep-alive in the same process")
    print("query: filter stage eq <one of 5 values, ~20% of rows each>, sort -score, page_size 50 "
          "(51 rows fetched for has_more), all fields")
    print("kernel indexes: " + "; ".join(i.split(" USING ")[0].replace("CREATE ", "") + " (" +
                                         i.split("(", 1)[1] for i in kernel_indexes))
    print(f"SQL: {sql}")
    print(f"plan A (kernel indexes): {' | '.join(l.strip() for l in plan_a if '->' in l or 'Limit' in l)}")
    print(f"plan B (+ composite, built in {index_s:.1f}s): "
          f"{' | '.join(l.strip() for l in plan_b if '->' in l or 'Limit' in l)}")
    rows = summary(times_a, "A kernel indexes") + summary(times_b, "B + composite")
    if counts:
        rows.append(["B + composite", "POST /query with count: true", len(counts), c.percentile(counts, 50),
                     c.percentile(counts, 95), max(counts), "-"])
    print(c.table(["phase", "path", "n", "p50 ms", "p95 ms", "max ms", "api p50 / p50"], rows))
    for phase, times in (("A", times_a), ("B", times_b)):
        a, co, h = (c.percentile(times[k], 50) for k in ("api", "core", "healthz"))
        print(f"phase {phase}: API overhead over raw SQL {a - co:.1f} ms (x{a / co:.1f}); "
              f"API minus healthz {a - h:.1f} ms")
    best = min(c.percentile(times_a["api"], 50), c.percentile(times_b["api"], 50))
    print(f"target: API p50 under 30 ms -> A {'MET' if c.percentile(times_a['api'], 50) < 30 else 'MISSED'}, "
          f"B {'MET' if c.percentile(times_b['api'], 50) < 30 else 'MISSED'} (best p50 {best:.1f} ms)")
    for phase, times in (("kernel indexes", times_a), ("composite index", times_b)):
        for name, label in (("api", "api"), ("service", "records.query"), ("core", "core select"),
                            ("healthz", "healthz")):
            c.figure(f"{label} p50 ({phase})", c.percentile(times[name], 50), "ms")
        c.figure(f"api p95 ({phase})", c.percentile(times["api"], 95), "ms")
        c.figure(f"api p50 / core p50 ({phase})",
                 c.percentile(times["api"], 50) / c.percentile(times["core"], 50), "x")
    if counts:
        c.figure("api p50 with count (composite index)", c.percentile(counts, 50), "ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
