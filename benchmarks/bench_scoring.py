"""What lead scoring costs, each figure against a baseline in the same run.

1. bulk_create of leads with the scoring handler (10 active attribute rules,
   items of the scoring_rule metadata kind) versus the same payloads through
   a runtime without it (same database, same lead table; alternating rounds).
2. the rescoring job after a rule change (saving the rule through the
   metadata kind service queues a durable job that runs inline on commit:
   every lead, batches of 500, through RecordService.bulk_update as the
   system actor) versus a plain bulk_update of the same leads changing one
   field, same batch size.
3. record_event (insert + rescore of one lead) versus records.update of one
   field on one lead (both one transaction each).
4. scoring one lead with the per-version compiled rules versus compiling the
   rules for every lead (why the snapshot cache exists).

    python benchmarks/bench_scoring.py --db sqlite
    python benchmarks/bench_scoring.py --db postgres --rows 20000
    python benchmarks/bench_scoring.py --db sqlite --rows 2000 --events 50   # quick
"""
from __future__ import annotations

import datetime as dt
import decimal
import random

import _common as c

import leadhub.plugins.lead as lead_plugin
from leadhub.expressions import compile_expression
from leadhub.runtime import Runtime
from leadhub.plugins.lead import scoring, scoring_config, scoring_jobs

RULES = [
    ("Big company", "company_size >= 500", 20),
    ("Mid company", "company_size >= 100 and company_size < 500", 10),
    ("Target industry", "industry in ['it', 'finance']", 15),
    ("Weak industry", "industry in ['retail', 'other']", -5),
    ("Has budget", "budget >= 100000", 15),
    ("South", "province == 'guangdong'", 5),
    ("Cold call", "source == 'cold_call'", -10),
    ("Has title", "not isblank(title)", 5),
    ("Decision maker", "contains(lower(coalesce(title, '')), 'director')", 10),
    ("Recent", "days_between(created_at, now()) < 30", 5),
]
INDUSTRIES = ["it", "manufacturing", "finance", "education", "healthcare", "retail", "real_estate", "other"]
SOURCES = ["website", "baidu_ads", "exhibition", "referral", "cold_call"]
PROVINCES = ["beijing", "shanghai", "guangdong", "zhejiang"]
BATCH = 500


def payloads(n: int, seed: int) -> list[dict]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        out.append({"name": f"Lead {seed}-{i}", "company": f"Company {seed}-{i}",
                    "title": rnd.choice([None, "Sales Director", "Engineer", "CTO"]),
                    "company_size": rnd.randrange(1, 5000), "industry": rnd.choice(INDUSTRIES),
                    "source": rnd.choice(SOURCES), "province": rnd.choice(PROVINCES),
                    "budget": decimal.Decimal(rnd.randrange(0, 500_000))})
    return out


def bulk_create(rt, actor, rows) -> tuple[float, list[int]]:
    t, ids = c.Timer(), []
    for i in range(0, len(rows), BATCH):
        ids += [r["id"] for r in rt.records.bulk_create(actor, "lead", rows[i:i + BATCH])]
    return t.elapsed, ids


def main() -> None:
    p = c.parser(__doc__.splitlines()[0], default_rows=20_000)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--events", type=int, default=300)
    args = p.parse_args()
    per_round = args.rows // args.rounds
    lead_plugin.PARTS = ()           # the lead object without any intake handler: the baseline
    with c.runtime(args.db) as (plain, admin):
        plain.plugins.install("lead")
        scored = Runtime(plain.config)
        scored.plugins.declare_kinds(lead_plugin.plugin)    # its scoring_rule kind, for the rule change below
        scoring.register(scored)     # the same database, plus the scoring handlers
        kind = scoring_config.RULE_KIND.name                # attribute rules are items of a metadata kind
        for key in list(scored.kinds.items(kind)):          # the two seeded examples out: exactly RULES
            scored.kinds.delete(admin, kind, key)
        for i, (label, cond, points) in enumerate(RULES):
            scored.kinds.create(admin, kind, {"name": f"bench_{i}", "label": label, "condition": cond,
                                              "points": points})
        assert sorted(r.data["condition"] for r in scored.kinds.items(kind).values()) == \
            sorted(cond for _l, cond, _p in RULES)
        c.log(f"{c.machine_note()} | {c.server_version(plain)} | {args.rows:,} leads")

        # 1. inserts
        times = {"plain": [], "scored": []}
        all_ids = []
        for r in range(args.rounds):
            order = [("plain", plain), ("scored", scored)] if r % 2 == 0 else [("scored", scored), ("plain", plain)]
            for name, rt in order:
                rows = payloads(per_round, seed=r * 2 + (name == "scored"))
                secs, ids = bulk_create(rt, admin, rows)
                times[name].append(secs)
                all_ids += ids
                c.log(f"  round {r + 1} {name}: {per_round / secs:,.0f} leads/s")
        ratios = [s / p for s, p in zip(times["scored"], times["plain"])]
        total = {k: sum(v) for k, v in times.items()}
        print(c.table(["bulk_create (batches of 500)", "leads", "leads/s", "ratio to plain"], [
            ["plain (no scoring handler)", per_round * args.rounds, per_round * args.rounds / total["plain"], 1.0],
            ["scored (10 rules)", per_round * args.rounds, per_round * args.rounds / total["scored"],
             total["scored"] / total["plain"]]]))
        print(f"per-round ratios: {', '.join(f'{x:.2f}' for x in ratios)}\n")
        table = plain.cache.current().table("lead")
        with plain.db.read() as conn:
            nulls = conn.execute(c.sa.select(c.sa.func.count()).where(table.c.score.is_(None))).scalar_one()
        assert nulls == per_round * args.rounds, "only the plain runtime's leads are unscored"

        # 2. rescoring job vs a plain bulk_update of one field
        t = c.Timer()
        for i in range(0, len(all_ids), BATCH):
            plain.records.bulk_update(admin, "lead", [{"id": x, "description": "touched"} for x in all_ids[i:i + BATCH]])
        plain_update = t.elapsed
        t = c.Timer()
        out = scored.kinds.update(admin, kind, "bench_0", {"points": 21})   # queues the job, run inline on commit
        rescore_s = t.elapsed
        job = scoring_jobs.get_job(scored, out["rescore_job"])
        assert job["status"] == "finished" and job["done"] == len(all_ids), job
        with plain.db.read() as conn:
            assert conn.execute(c.sa.select(c.sa.func.count()).where(table.c.score.is_(None))).scalar_one() == 0
        n = len(all_ids)
        print(c.table(["all leads, batches of 500", "leads", "leads/s", "ratio to plain"], [
            ["plain bulk_update (one field)", n, n / plain_update, 1.0],
            [f"rescoring job ({job['changed']:,} changed)", n, n / rescore_s, rescore_s / plain_update]]))
        print()

        # 3. one behaviour event vs one field update
        rnd = random.Random(7)
        ev, up = [], []
        for i in range(args.events):
            lead_id = rnd.choice(all_ids)
            pair = [("event", lambda: scoring.record_event(scored, admin, lead_id, "replied_email")),
                    ("update", lambda: plain.records.update(admin, "lead", lead_id, {"description": f"v{i}"}))]
            for name, fn in (pair if i % 2 else pair[::-1]):
                t = c.Timer()
                fn()
                (ev if name == "event" else up).append(t.elapsed * 1000)
        print(c.table(["one lead, one transaction", "calls", "p50 ms", "p95 ms", "ratio of p50"], [
            ["records.update (one field)", len(up), c.median(up), c.percentile(up, 95), 1.0],
            ["record_event (insert + rescore)", len(ev), c.median(ev), c.percentile(ev, 95),
             c.median(ev) / c.median(up)]]))
        print()

        # 4. the compiled-rules cache
        with scored.db.read() as conn:
            snap = scoring.engine(scored).snapshot(conn)
        names = frozenset(scored.cache.current().get("lead").fields)
        now = dt.datetime.now(dt.timezone.utc)
        sample = [{**p, "created_at": now} for p in payloads(5000, seed=99)]
        t = c.Timer()
        for values in sample:
            scoring.compute(snap, values, [], now)
        cached = t.elapsed
        t = c.Timer()
        for values in sample:
            rules = [compile_expression(cond, names) for _l, cond, _p in RULES]
            sum(p for (_l, _c, p), r in zip(RULES, rules) if r.evaluate(values, now))
        uncached = t.elapsed
        us = lambda s: s / len(sample) * 1e6  # noqa: E731
        print(c.table(["score one lead (10 rules)", "leads", "us/lead", "ratio to cached"], [
            ["compiled once per version", len(sample), us(cached), 1.0],
            ["compiled per lead", len(sample), us(uncached), uncached / cached]]))
        ratio = total["scored"] / total["plain"]
        print(f"\ntarget: scoring adds under 50% to bulk inserts: {'MET' if ratio < 1.5 else 'MISSED'} ({ratio:.2f}x)")
        inserted = per_round * args.rounds
        c.figure("bulk insert scored / plain", ratio, "x")
        c.figure("bulk insert scored / plain round min", min(ratios), "x")
        c.figure("bulk insert scored / plain round max", max(ratios), "x")
        c.figure("bulk insert plain throughput", inserted / total["plain"], "leads/s")
        c.figure("bulk insert scored throughput", inserted / total["scored"], "leads/s")
        c.figure("rescoring job / plain bulk_update", rescore_s / plain_update, "x")
        c.figure("rescoring job throughput", n / rescore_s, "leads/s")
        c.figure("plain bulk_update throughput", n / plain_update, "leads/s")
        c.figure("record_event p50", c.median(ev), "ms")
        c.figure("records.update p50", c.median(up), "ms")
        c.figure("record_event p50 / update p50", c.median(ev) / c.median(up), "x")
        c.figure("score one lead, compiled once", us(cached), "µs")
        c.figure("score one lead, compiled per lead", us(uncached), "µs")
        c.figure("compiled per lead / compiled once", uncached / cached, "x")
        scored.close()


if __name__ == "__main__":
    main()
