"""Throughput of the query API under concurrent clients: `leadhub serve`
(one waitress process, the embedded default's server) against gunicorn
with several processes (README, Production), on a PostgreSQL object of
1,000,000 rows, loopback only.

Each server runs as its own process (as deployed) on a fresh port. The load
comes from client processes (not threads: a Python client's GIL would cap
the load it can make), each a closed loop over one keep-alive connection:
POST /api/v1/objects/deal/query with {"filter": stage eq <one of 5>,
"sort": ["-score"], "page_size": 50}, for --seconds per phase. Phases per
server and repeat: 1 client, then 8 clients; throughput is requests per
second over the phase, latency the client's wall time per request. Every
answer must be 200 with 50 records (anything else counts as an error).
Memory: the summed RSS of the server's processes after each phase; "flat"
means the last 8-client phase ends within 10 % of the first.

    python benchmarks/bench_serving.py                      # 1,000,000 rows, 3 repeats of 15 s phases
    python benchmarks/bench_serving.py --rows 20000 --seconds 3 --repeats 1
"""
from __future__ import annotations

import http.client
import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import _common as c
import bench_query_page as q

from leadhub.platform import auth

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = ["--workers", "4", "--threads", "2"]      # what README, Production, runs on a 2-core machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(kind: str, env: dict) -> tuple[subprocess.Popen, int]:
    port = free_port()
    if kind == "waitress":
        cmd = [sys.executable, "-m", "leadhub", "serve", "--port", str(port)]
    else:
        cmd = [sys.executable, "-m", "gunicorn", *GUNICORN, "--bind", f"127.0.0.1:{port}", "leadhub.wsgi:app"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return proc, port
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{kind} did not start: {proc.stderr.read()[-2000:]}")
        time.sleep(0.3)


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (gunicorn's workers)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(x) for x in f.read().split()]
        except (OSError, StopIteration):
            continue
    return total / 1024


def client(port: int, token: str, seconds: float, seed: int, out) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    lat, errors, i = [], 0, seed
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        body = json.dumps(q.spec_for(q.STAGES[i % 5]))
        i += 1
        t0 = time.perf_counter()
        try:
            conn.request("POST", "/api/v1/objects/deal/query", body, headers)
            r = conn.getresponse()
            data = r.read()
            ok = r.status == 200 and len(json.loads(data)["records"]) == 50
        except (OSError, http.client.HTTPException, ValueError, KeyError):
            ok = False
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        lat.append((time.perf_counter() - t0) * 1000)
        errors += not ok
    out.put((lat, errors))


def phase(port: int, token: str, clients: int, seconds: float) -> dict:
    out: mp.Queue = mp.Queue()
    procs = [mp.Process(target=client, args=(port, token, seconds, k * 7, out)) for k in range(clients)]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    lat = sorted(x for r in results for x in r[0])
    return {"clients": clients, "requests": len(lat), "errors": sum(r[1] for r in results),
            "rps": len(lat) / seconds, "p50": c.percentile(lat, 50), "p99": c.percentile(lat, 99)}


def main() -> int:
    p = c.parser(__doc__.splitlines()[0], db_choices=("postgres",), default_rows=1_000_000)
    p.add_argument("--seconds", type=float, default=15.0, help="length of each phase (default 15)")
    p.add_argument("--repeats", type=int, default=3, help="1-client and 8-client phases per server (default 3)")
    p.add_argument("--servers", default="waitress,gunicorn", help="which servers (default waitress,gunicorn)")
    args = p.parse_args()
    results: dict[str, list[tuple[dict, dict, float]]] = {}
    with c.runtime("postgres") as (rt, admin):
        rt.metadata.create_object(admin, {"api_name": "deal", "label": "Deal", "fields": q.FIELDS})
        rt.kinds.create(admin, "list_view", {"object": "deal", "api_name": "top", "name": {"en": "Top", "zh_CN": "Top"},
                                             "columns": ["name", "stage", "score"], "sort": ["-score"]})
        load = c.copy_rows(rt, "o_deal", q.COLUMNS, q.lines(args.rows, admin.user_id), args.rows)
        token = auth.create_token(rt.db, "admin")
        env = {**os.environ, "LEADHUB_DATABASE_URL": rt.config.database_url,
               "LEADHUB_INSTANCE_PATH": str(rt.config.instance_path), "LEADHUB_SECRET_KEY": "bench"}
        env.pop("LEADHUB_REDIS_URL", None)
        # as README, Production: `leadhub init` once (plugins installed), then the servers
        subprocess.run([sys.executable, "-m", "leadhub", "init"], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        for kind in args.servers.split(","):
            proc, port = start(kind, env)
            try:
                phase(port, token, 8, 2)                        # warm every process and connection
                results[kind] = []
                for k in range(args.repeats):
                    one = phase(port, token, 1, args.seconds)
                    eight = phase(port, token, 8, args.seconds)
                    results[kind].append((one, eight, rss_mb(proc.pid)))
                    c.log(f"{kind} repeat {k + 1}: 1 client {one['rps']:.0f}/s, 8 clients {eight['rps']:.0f}/s "
                          f"(p99 {eight['p99']:.0f} ms, errors {one['errors'] + eight['errors']}), "
                          f"rss {results[kind][-1][2]:.0f} MB")
            finally:
                os.killpg(proc.pid, 15)
                proc.wait(30)
        version = c.server_version(rt)
    print(f"\nbench_serving  PostgreSQL {version}  {c.machine_note()}  load {os.getloadavg()[0]:.2f}")
    print(f"object 'deal': {args.rows:,} rows (COPY {load['copy_s']:.1f}s); query: POST /api/v1/objects/deal/query "
          f"stage eq <one of 5>, sort -score, page 50; phases of {args.seconds:.0f} s; gunicorn {' '.join(GUNICORN)}; "
          "waitress: leadhub serve (1 process, 8 threads)")
    rows = []
    for kind, reps in results.items():
        for k, (one, eight, rss) in enumerate(reps, 1):
            rows.append([kind, k, f"{one['rps']:.1f}", f"{eight['rps']:.1f}", f"{eight['rps'] / one['rps']:.2f}",
                         one["p50"], eight["p50"], eight["p99"], one["errors"] + eight["errors"], f"{rss:.0f}"])
    print(c.table(["server", "repeat", "1 client req/s", "8 clients req/s", "ratio", "p50 ms (1)", "p50 ms (8)",
                   "p99 ms (8)", "errors", "RSS MB after"], rows))
    for kind, reps in results.items():
        ratios = sorted(e["rps"] / o["rps"] for o, e, _r in reps)
        p99s = sorted(e["p99"] for _o, e, _r in reps)
        errors = sum(o["errors"] + e["errors"] for o, e, _r in reps)
        rss = [r for _o, _e, r in reps]
        flat = rss[-1] <= rss[0] * 1.1
        met = ratios[0] >= 1.7 and p99s[-1] < 150 and errors == 0 and flat
        print(f"target: 8 clients >= 1.7x one, p99 < 150 ms, no errors, flat memory -> {kind}: "
              f"{'MET' if met else 'MISSED'} (ratio min {ratios[0]:.2f} median {ratios[len(ratios) // 2]:.2f}, "
              f"p99 max {p99s[-1]:.0f} ms, errors {errors}, RSS {rss[0]:.0f} -> {rss[-1]:.0f} MB)")
        c.figure(f"8 clients / 1 client throughput min ({kind})", ratios[0], "x")
        c.figure(f"8 clients / 1 client throughput median ({kind})", ratios[len(ratios) // 2], "x")
        c.figure(f"1 client throughput median ({kind})", c.median([o["rps"] for o, _e, _r in reps]), "req/s")
        c.figure(f"8 clients throughput median ({kind})", c.median([e["rps"] for _o, e, _r in reps]), "req/s")
        c.figure(f"8 clients p99 max ({kind})", p99s[-1], "ms")
        c.figure(f"errors ({kind})", errors, "requests")
        c.figure(f"rss after first repeat ({kind})", rss[0], "MB")
        c.figure(f"rss after last repeat ({kind})", rss[-1], "MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
