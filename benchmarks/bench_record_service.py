"""Records created per second through the record service versus raw
SQLAlchemy Core inserts of the same rows into a table of the same shape.

Two objects with identical fields are created through the metadata service
(so both tables have the same columns and indexes): `bench` is written
through `rt.records.create` / `rt.records.bulk_create` (marshmallow
validation, a picklist default, a formula, an auto-number, a track_history
field, an after_insert handler); `bench_raw` gets the same rows, already in
their final column form (formula result, auto-number text, timestamps), with
`conn.execute(table.insert(), rows)` on the same engine. Both sides run in
alternating rounds so that noise on a shared machine hits both.

    python benchmarks/bench_record_service.py --db sqlite
    python benchmarks/bench_record_service.py --db postgres --rows 20000
"""
from __future__ import annotations

import datetime as dt
import decimal
import random
import sys
import time

import _common as c

from leadhub.platform.db import utcnow

D = decimal.Decimal
FIELDS = [
    {"api_name": "name", "label": "Name", "type": "text", "required": True, "max_length": 120},
    {"api_name": "email", "label": "Email", "type": "email"},
    {"api_name": "phone", "label": "Phone", "type": "phone"},
    {"api_name": "score", "label": "Score", "type": "integer"},
    {"api_name": "amount", "label": "Amount", "type": "currency", "precision": 14, "scale": 2},
    {"api_name": "discount", "label": "Discount", "type": "percent"},
    {"api_name": "stage", "label": "Stage", "type": "picklist", "default": "open",
     "options": ["open", "working", "won", "lost"]},
    {"api_name": "status", "label": "Status", "type": "text", "track_history": True},
    {"api_name": "ref", "label": "Ref", "type": "auto_number", "pattern": "BN-{YYYY}-{0000000}"},
    {"api_name": "net", "label": "Net", "type": "formula", "return_type": "currency",
     "expression": "amount * (1 - coalesce(discount, 0) / 100)"},
]
STAGES = ["open", "working", "won", "lost"]


def make_payloads(n: int, seed: int) -> list[dict]:
    """Record payloads as an API client would send them (half rely on the stage default)."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        p = {"name": f"Company {seed}-{i} Ltd", "email": f"contact{i}@Example{seed}.com",
             "phone": f"+86 138-{rnd.randrange(10**7, 10**8)}", "score": rnd.randrange(0, 1000),
             "amount": D(rnd.randrange(0, 10**8)) / 100, "discount": D(rnd.randrange(0, 5000)) / 100,
             "status": rnd.choice(["new", "contacted", "qualified"])}
        if i % 2:
            p["stage"] = rnd.choice(STAGES)
        out.append(p)
    return out


def raw_rows(payloads: list[dict], uid: int, start_no: int) -> list[dict]:
    """The same rows in final column form: what the service ends up writing."""
    year = dt.datetime.now().year
    out = []
    for i, p in enumerate(payloads):
        local, _, domain = p["email"].rpartition("@")
        amount, discount = p["amount"], p["discount"]
        net = (amount * (1 - discount / 100)).quantize(D("0.01"), rounding=decimal.ROUND_HALF_UP)
        out.append({"owner": uid, "created_by": uid, "updated_by": uid, "deleted_at": None,
                    "name": p["name"], "email": f"{local}@{domain.lower()}",
                    "phone": p["phone"].replace(" ", "").replace("-", ""), "score": p["score"],
                    "amount": amount, "discount": discount, "stage": p.get("stage", "open"),
                    "status": p["status"], "ref": f"RAW-{year}-{start_no + i:07d}", "net": net})
    return out


def stamp(rows: list[dict]) -> list[dict]:
    now = utcnow()
    for r in rows:
        r["created_at"] = r["updated_at"] = now
    return rows


def run_mode(rt, actor, raw_table, mode: str, batch: int, n: int, rounds: int, seed: int):
    """Time `n` rows each way in `rounds` alternating rounds.
    Returns (rows per side, service seconds, raw seconds, per-round ratios)."""
    per_round = max(1, n // rounds)
    svc_total = raw_total = 0.0
    ratios = []
    raw_no = seed * 10_000_000
    for r in range(rounds):
        payloads = make_payloads(per_round, seed + r)
        raws = raw_rows(payloads, actor.user_id, raw_no)
        raw_no += per_round

        def service():
            t = c.Timer()
            if batch == 1:
                for p in payloads:
                    rt.records.create(actor, "bench", p)
            else:
                for i in range(0, len(payloads), batch):
                    rt.records.bulk_create(actor, "bench", payloads[i:i + batch])
            return t.elapsed

        def raw():
            t = c.Timer()
            if batch == 1:
                for row in raws:
                    with rt.db.write() as conn:
                        conn.execute(raw_table.insert(), stamp([row])[0])
            else:
                for i in range(0, len(raws), batch):
                    with rt.db.write() as conn:
                        conn.execute(raw_table.insert(), stamp(raws[i:i + batch]))
            return t.elapsed

        if r % 2 == 0:
            s, w = service(), raw()
        else:
            w, s = raw(), service()
        svc_total += s
        raw_total += w
        ratios.append(s / w)
        c.log(f"  {mode} round {r + 1}/{rounds}: service {per_round / s:,.0f}/s, raw {per_round / w:,.0f}/s, "
              f"ratio {s / w:.2f}")
    return per_round * rounds, svc_total, raw_total, ratios


def main() -> int:
    p = c.parser(__doc__.splitlines()[0], default_db="sqlite", default_rows=20000)
    p.add_argument("--single-rows", type=int, default=None,
                   help="rows per side for one-record-per-transaction (default rows/10, at least 200)")
    p.add_argument("--rounds", type=int, default=4, help="alternating rounds per mode (default 4)")
    args = p.parse_args()
    single_n = args.single_rows or max(200, args.rows // 10)

    with c.runtime(args.db) as (rt, actor):
        rt.metadata.create_object(actor, {"api_name": "bench", "label": "Bench", "fields": FIELDS})
        rt.metadata.create_object(actor, {"api_name": "bench_raw", "label": "Bench raw", "fields": FIELDS})
        counter = [0]

        def on_insert(ev):
            counter[0] += 1
            assert ev.record_id is not None and ev.values["ref"]

        rt.events.subscribe("after_insert", on_insert, object="bench")
        raw_table = rt.cache.current().table("bench_raw")

        # warm up both paths (schema/formula compilation, connection pool, statement caches)
        for p_ in make_payloads(20, 999):
            rt.records.create(actor, "bench", p_)
        rt.records.bulk_create(actor, "bench", make_payloads(200, 998))
        with rt.db.write() as conn:
            conn.execute(raw_table.insert(), stamp(raw_rows(make_payloads(20, 999), actor.user_id, 1)))
            conn.execute(raw_table.insert(), stamp(raw_rows(make_payloads(200, 998), actor.user_id, 21)))

        results, round_ratios = [], {}
        for mode, batch, n in (("single", 1, single_n), ("bulk 500", 500, args.rows), ("bulk 1000", 1000, args.rows)):
            c.log(f"{mode}: {n} rows per side ...")
            done, s, w, ratios = run_mode(rt, actor, raw_table, mode, batch, n, args.rounds,
                                          seed={"single": 1, "bulk 500": 2, "bulk 1000": 3}[mode] * 100)
            results.append([mode, done, done / s, done / w, s / w, f"{min(ratios):.2f}-{max(ratios):.2f}"])
            round_ratios[mode] = ratios

        # sanity: the service wrote what the raw side wrote (same net, same counts)
        with rt.db.read() as conn:
            n_svc = conn.exec_driver_sql("SELECT count(*) FROM o_bench").scalar_one()
            n_raw = conn.exec_driver_sql("SELECT count(*) FROM o_bench_raw").scalar_one()
            nets = conn.exec_driver_sql(
                "SELECT count(*) FROM o_bench s JOIN o_bench_raw r ON r.name = s.name AND r.net = s.net "
                "AND r.email = s.email AND r.stage = s.stage AND r.phone = s.phone").scalar_one()
        assert counter[0] == n_svc == n_raw == nets, (counter[0], n_svc, n_raw, nets)
        version = c.server_version(rt)

    print(f"\nbench_record_service  db={args.db} ({version})  {c.machine_note()}")
    print(f"fields: {len(FIELDS)} custom (formula, auto-number, picklist default, track_history) "
          f"+ after_insert handler; rows per side: single {single_n}, bulk {args.rows}")
    print(c.table(["mode", "rows/side", "service rec/s", "raw rec/s", "ratio svc/raw", "round ratios"], results))
    print(f"check: o_bench {n_svc} rows, o_bench_raw {n_raw} rows, {nets} service rows identical to a raw row; "
          f"handler saw {counter[0]} inserts")
    worst = max(r[4] for r in results)
    print(f"target: service within 3x of raw -> {'MET' if worst <= 3 else 'MISSED'} (worst ratio {worst:.2f})")
    for mode, _done, svc_rate, raw_rate, ratio, _spread in results:
        c.figure(f"{mode} service/raw ratio", ratio, "x")
        c.figure(f"{mode} service/raw round ratio min", min(round_ratios[mode]), "x")
        c.figure(f"{mode} service/raw round ratio max", max(round_ratios[mode]), "x")
        c.figure(f"{mode} service throughput", svc_rate, "rec/s")
        c.figure(f"{mode} raw throughput", raw_rate, "rec/s")
    c.figure("worst service/raw ratio", worst, "x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
