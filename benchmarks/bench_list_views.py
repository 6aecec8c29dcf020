"""The lead plugin's shipped list views on 1,000,000 leads (PostgreSQL): each
view's page of 50, as it opens (its own filter, sort and columns), through
`rt.records.query`, for an admin and for a sales rep (scope own).

Data (COPY, then VACUUM ANALYZE): leads owned round-robin by 50 reps,
created over the last 365 days (0.1 % today), status new 40 % / following
40 % / converted 10 % / invalid 5 % / returned 5 %, 2 % marked duplicate, 10 %
past their follow-up deadline and 20 % with one still ahead. The kernel's
indexes are those the plugin and its list views declare (no index is added
here). Baseline in the same run, interleaved request by request: the same
actor's plain page of 50 leads in the default order.

    python benchmarks/bench_list_views.py                       # 1,000,000 leads
    python benchmarks/bench_list_views.py --rows 20000 --requests 10
"""
from __future__ import annotations

import datetime as dt
import random
import sys

import _common as c

from leadhub.data.query import QuerySpec
from leadhub.platform import auth

COLUMNS = ["owner", "created_by", "created_at", "updated_by", "updated_at", "name", "company", "mobile",
           "status", "is_duplicate", "follow_up_deadline"]
STATUSES = ["new"] * 8 + ["following"] * 8 + ["converted"] * 2 + ["invalid", "returned"]


def lines(n: int, owners: list[int], now: dt.datetime, seed: int = 1):
    rnd = random.Random(seed)
    for i in range(n):
        created = now - dt.timedelta(minutes=rnd.randrange(60)) if rnd.random() < 0.001 else \
            now - dt.timedelta(days=1 + rnd.randrange(364), seconds=rnd.randrange(86400))
        owner = owners[i % len(owners)]
        roll = rnd.random()
        deadline = (created + dt.timedelta(hours=24)).isoformat() if roll < 0.1 else \
            (now + dt.timedelta(hours=1 + rnd.randrange(72))).isoformat() if roll < 0.3 else "\\N"
        ts = created.isoformat()
        yield (f"{owner}\t{owner}\t{ts}\t{owner}\t{ts}\t客户{i}\t公司{i % 5000}\t+86138{i:08d}\t"
               f"{rnd.choice(STATUSES)}\t{'t' if rnd.random() < 0.02 else 'f'}\t{deadline}")


def main() -> int:
    p = c.parser(__doc__.splitlines()[0], db_choices=("postgres",), default_rows=1_000_000)
    p.add_argument("--requests", type=int, default=60, help="timed pages per view and actor (default 60)")
    args = p.parse_args()
    with c.runtime("postgres") as (rt, admin):
        rt.plugins.install("lead")
        reps = [rt.org.create_user(admin, {"login": f"rep{k:02d}", "name": f"Rep {k}", "roles": ["sales_rep"]})["id"]
                for k in range(50)]
        now = dt.datetime.now(dt.timezone.utc)
        load = c.copy_rows(rt, "o_lead", COLUMNS, lines(args.rows, reps, now), args.rows)
        reg = rt.cache.current()
        views = [i.data for i in reg.items.get("list_view", {}).values() if i.data["object"] == "lead"]
        actors = {"admin": auth.actor_for(rt.db, rt.cache, admin.user_id),
                  "rep": auth.actor_for(rt.db, rt.cache, reps[0])}
        baseline = QuerySpec(page_size=50)
        rows, worst = [], 0.0
        for view in views:
            spec = QuerySpec(filter=view.get("filter"), sort=view.get("sort") or [],
                             fields=view["columns"], page_size=50)
            for name, actor in actors.items():
                times, base = [], []
                for k in range(args.requests + 5):
                    t0 = c.Timer()
                    page = rt.records.query(actor, "lead", spec)
                    t = t0.elapsed * 1000
                    t0 = c.Timer()
                    rt.records.query(actor, "lead", baseline)
                    if k >= 5:                       # the first five warm caches and plans
                        times.append(t)
                        base.append(t0.elapsed * 1000)
                p50 = c.percentile(times, 50)
                worst = max(worst, p50)
                rows.append([view["api_name"], name, len(page["records"]), p50, c.percentile(times, 95),
                             c.percentile(base, 50), f"{p50 / c.percentile(base, 50):.2f}"])
                c.log(f"{view['api_name']} {name}: p50 {p50:.1f} ms")
        with rt.db.read() as conn:
            indexes = [r[0] for r in conn.exec_driver_sql(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'o_lead' ORDER BY indexname")]
        version = c.server_version(rt)
    print(f"\nbench_list_views  PostgreSQL {version}  {c.machine_note()}")
    print(f"o_lead: {args.rows:,} rows by COPY in {load['copy_s']:.1f}s (indexes {load['index_s']:.1f}s), "
          f"50 reps; {len(indexes)} indexes: {', '.join(indexes)}")
    print(c.table(["view", "actor", "rows", "p50 ms", "p95 ms", "baseline p50 ms", "p50 / baseline"], rows))
    print("(baseline: the same actor's page of 50 leads in the default order, interleaved)")
    print(f"target: every shipped list view p50 < 30 ms at {args.rows:,} rows -> "
          f"{'MET' if worst < 30 else 'MISSED'} (worst p50 {worst:.1f} ms)")
    for view, name, _n, p50, _p95, _base, _ratio in rows:
        c.figure(f"{view} p50 ({name})", p50, "ms")
    c.figure("worst view p50", worst, "ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
