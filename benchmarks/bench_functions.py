"""The cost of the sandbox, against plain Python in the same run.

1. Overhead per call: a trivial function (`return 1`) through the worker
   pool, against calling the same body as a plain Python function.
2. Real work: a loop over 10,000 dict items with arithmetic, sandboxed
   (RestrictedPython guards on every item access and iteration, in a worker
   under limits) against the same code as plain Python.
3. Triggers on a bulk insert: 10,000 records through the record service in
   batches of 1,000, (a) with nothing bound, (b) with a condition validation
   rule and a formula field (both in-process expressions), (c) with a
   validation function in the sandbox; cost per record against (a).

    python benchmarks/bench_functions.py --db sqlite
    python benchmarks/bench_functions.py --db postgres --rows 10000
"""
from __future__ import annotations

import os
import random
import statistics
import time

import _common as c

from leadhub.functions.sandbox import WorkerPool, compile_function

# the data is built inside the function, so the loop is compared with the
# loop; the cost of passing 10,000 items in as parameters is its own row
WORK = """
items = {}
for i in range(10000):
    items['k' + str(i)] = {'a': i % 1000, 'b': (i * 7) % 1000}
total = 0
for key, value in items.items():
    total += value['a'] * 3 + value['b'] // 2 - len(key)
return total
"""
TRANSFER = "return len(params['items'])"
CALLS = 2000
ROUNDS = 3          # bulk-insert rounds; each object gets --rows records per round


def plain(source: str):
    namespace: dict = {}
    body = "\n".join("    " + line for line in source.strip().splitlines())
    exec(f"def f(record, old, params, api):\n{body}", namespace)   # the benchmark's own code, not input
    return namespace["f"]


def overhead(pool: WorkerPool) -> list:
    compiled = compile_function("return 1")
    fn = plain("return 1")
    for _ in range(200):                               # warm every worker
        pool.run(compiled)
    sandboxed, direct = [], []
    for _ in range(CALLS):
        t0 = time.perf_counter()
        result = pool.run(compiled)
        sandboxed.append(time.perf_counter() - t0)
        assert result.ok and result.value == 1, result.error
        t0 = time.perf_counter()
        fn(None, None, {}, None)
        direct.append(time.perf_counter() - t0)
    p50s, p50d = c.percentile(sandboxed, 50), c.percentile(direct, 50)
    c.figure("trivial call p50", p50s * 1e6, "µs")
    c.figure("trivial call p95", c.percentile(sandboxed, 95) * 1e6, "µs")
    c.figure("trivial call plain python p50", p50d * 1e6, "µs")
    return [["trivial call p50 (µs)", p50s * 1e6, p50d * 1e6, (p50s - p50d) * 1e6],
            ["trivial call p95 (µs)", c.percentile(sandboxed, 95) * 1e6, c.percentile(direct, 95) * 1e6,
             (c.percentile(sandboxed, 95) - c.percentile(direct, 95)) * 1e6]]


def work(pool: WorkerPool) -> list:
    rng = random.Random(7)
    items = {f"k{i}": {"a": rng.randint(0, 1000), "b": rng.randint(0, 1000)} for i in range(10_000)}
    transfer = []
    for _ in range(10):
        t0 = time.perf_counter()
        result = pool.run(TRANSFER, params={"items": items}, limits={"cpu_seconds": 10, "wall_seconds": 20})
        transfer.append(time.perf_counter() - t0)
        assert result.ok and result.value == 10_000, result.error
    compiled = compile_function(WORK)
    fn = plain(WORK)
    expected = fn(None, None, {}, None)
    sand, direct, inner = [], [], []
    for _ in range(15):
        t0 = time.perf_counter()
        result = pool.run(compiled, limits={"cpu_seconds": 10, "wall_seconds": 20})
        sand.append(time.perf_counter() - t0)
        assert result.ok and result.value == expected, result.error
        inner.append(result.usage["cpu_ms"] / 1000)
        t0 = time.perf_counter()
        fn(None, None, {}, None)
        direct.append(time.perf_counter() - t0)
    ms, md, mi = statistics.median(sand), statistics.median(direct), statistics.median(inner)
    c.figure("dict loop whole call", ms * 1000, "ms")
    c.figure("dict loop whole call / plain python", ms / md, "x")
    c.figure("dict loop worker cpu / plain python", mi / md, "x")
    c.figure("passing dict items as params", statistics.median(transfer) * 1000, "ms")
    return [["build + loop 10k dict items, whole call (ms)", ms * 1000, md * 1000, ms / md],
            ["build + loop 10k dict items, worker CPU (ms)", mi * 1000, md * 1000, mi / md],
            ["passing 10k dict items in as params (ms)", statistics.median(transfer) * 1000, "-", "-"]]


def triggers(kind: str, rows: int) -> list:
    out = []
    with c.runtime(kind) as (rt, admin):
        fields = [{"api_name": "title", "label": "T", "type": "text"},
                  {"api_name": "amount", "label": "A", "type": "decimal", "precision": 12, "scale": 2},
                  {"api_name": "qty", "label": "Q", "type": "integer"}]
        for name in ("plain", "exprs", "sandboxed"):
            rt.metadata.create_object(admin, {"api_name": name, "label": name, "fields": fields})
        rt.metadata.add_field(admin, "exprs", {"api_name": "total", "label": "Total", "type": "formula",
                                               "return_type": "decimal", "expression": "amount * qty"})
        rt.functions.create(admin, {"api_name": "positive", "label": "P", "kind": "validation", "object": "exprs",
                                    "condition": "amount < 0", "message": "No negative amounts",
                                    "error_field": "amount"})
        rt.functions.create(admin, {"api_name": "positive_code", "label": "P", "kind": "validation",
                                    "object": "sandboxed", "error_field": "amount",
                                    "code": "if record['amount'] < 0:\n    return 'No negative amounts'"})
        rng = random.Random(3)
        data = [{"title": f"r{i}", "amount": f"{rng.randint(1, 99999) / 100:.2f}", "qty": rng.randint(1, 50)}
                for i in range(rows)]
        rt.records.bulk_create(admin, "sandboxed", data[:10])          # start the pool outside the timing
        names = ["plain", "exprs", "sandboxed"]
        per_round = {name: [] for name in names}
        for r in range(ROUNDS):
            for name in (names if r % 2 == 0 else names[::-1]):        # alternate the order: no one always first
                t = c.Timer()
                for start in range(0, rows, 1000):
                    rt.records.bulk_create(admin, name, data[start:start + 1000])
                per_round[name].append(t.elapsed / rows)
                c.log(f"round {r + 1} {name}: {rows} rows in {t.elapsed:.2f} s")
        base = per_round["plain"]
        for name, label in (("plain", "no rules"), ("exprs", "condition rule + formula"),
                            ("sandboxed", "validation function (sandbox)")):
            ratios = [a / b for a, b in zip(per_round[name], base)]
            c.figure(f"bulk insert {label} min", min(per_round[name]) * 1e6, "µs/record")
            c.figure(f"bulk insert {label} median", statistics.median(per_round[name]) * 1e6, "µs/record")
            if name != "plain":
                c.figure(f"bulk insert {label} / no rules min", min(ratios), "x")
                c.figure(f"bulk insert {label} / no rules median", statistics.median(ratios), "x")
            out.append([f"bulk insert, {label} (µs/record, min / median)",
                        f"{min(per_round[name]) * 1e6:.1f} / {statistics.median(per_round[name]) * 1e6:.1f}",
                        f"{min(base) * 1e6:.1f} / {statistics.median(base) * 1e6:.1f}",
                        f"{min(ratios):.2f}x / {statistics.median(ratios):.2f}x"])
    return out


def main() -> None:
    args = c.parser(__doc__, default_db="sqlite", default_rows=10_000).parse_args()
    rows = []
    with WorkerPool(size=2) as pool:
        rows += overhead(pool)
        rows += work(pool)
    load_before = os.getloadavg()
    rows += triggers(args.db, args.rows)
    print(c.machine_note())
    print(f"# {args.db}, {args.rows:,} records per object per round, {ROUNDS} rounds; "
          f"load average {load_before[0]:.2f} before the bulk rounds, {os.getloadavg()[0]:.2f} after")
    print(c.table(["measure", "sandbox / with", "plain / baseline", "difference or ratio"], rows))


if __name__ == "__main__":
    main()
