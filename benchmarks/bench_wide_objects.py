"""Objects with many fields (issue 19, goal 5), each figure against the same
thing on a 10-field object in the same run:

1. creating an object with 500 fields in one request (`create_object`)
   against one with 10;
2. adding one field to an object that already has ~485 fields against
   adding one to an object with ~10 (adds must not grow with the object);
3. a bulk write of 1,000 records (10 fields filled) per row, 500-field
   object against 10-field object;
4. a query page (50 records, 10 fields selected, sorted) on the 500-field
   object holding --rows records: p50.

Each phase is repeated --repeats times; min and median are printed, with the
load average before and after.

    python benchmarks/bench_wide_objects.py                  # PostgreSQL, 10,000 rows
    python benchmarks/bench_wide_objects.py --db sqlite --rows 2000 --repeats 3
"""
from __future__ import annotations

import os
import time

import _common as c

from leadhub.data.query import QuerySpec

TYPES = [("text", {}), ("integer", {}), ("decimal", {"precision": 12, "scale": 2}), ("date", {}),
         ("picklist", {"options": ["a", "b", "c"]}), ("boolean", {})]


def fields(n: int, prefix: str = "f") -> list[dict]:
    out = []
    for i in range(n):
        type_name, extra = TYPES[i % len(TYPES)]
        out.append({"api_name": f"{prefix}{i:03d}", "label": f"Field {i}", "type": type_name, **extra})
    return out


def value(fd: dict, i: int):
    return {"text": f"v{i}", "integer": i, "decimal": f"{i}.50", "date": "2026-01-02",
            "picklist": "abc"[i % 3], "boolean": bool(i % 2)}[fd["type"]]


def stats(values: list[float]) -> tuple[float, float]:
    return min(values), c.median(values)


def main() -> None:
    p = c.parser(__doc__.splitlines()[0], default_rows=10_000)
    p.add_argument("--fields", type=int, default=500)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    load_before = os.getloadavg()
    with c.runtime(args.db) as (rt, admin):
        md = rt.metadata
        create_wide, create_narrow = [], []
        for r in range(args.repeats):
            t = c.Timer()
            md.create_object(admin, {"api_name": f"narrow{r}", "label": "N", "fields": fields(10)})
            create_narrow.append(t.elapsed)
            t = c.Timer()
            md.create_object(admin, {"api_name": f"wide{r}", "label": "W", "fields": fields(args.fields)})
            create_wide.append(t.elapsed)
            c.log(f"create {r}: narrow {create_narrow[-1]:.3f} s, wide {create_wide[-1]:.3f} s")

        add_wide, add_narrow = [], []
        # room for the adds below the 500-field cap
        md.create_object(admin, {"api_name": "wide_add", "label": "W",
                                 "fields": fields(args.fields - 5 * args.repeats)})
        for r in range(args.repeats):
            for k in range(5):
                t = c.Timer()
                md.add_field(admin, "narrow0", {"api_name": f"x{r}_{k}", "label": "X", "type": "text"})
                add_narrow.append(t.elapsed)
                t = c.Timer()
                md.add_field(admin, "wide_add", {"api_name": f"x{r}_{k}", "label": "X", "type": "text"})
                add_wide.append(t.elapsed)

        filled = fields(10)
        batch = [{fd["api_name"]: value(fd, i) for fd in filled} for i in range(1000)]
        write_wide, write_narrow = [], []
        for r in range(args.repeats):
            t = c.Timer()
            rt.records.bulk_create(admin, "narrow0", [dict(row) for row in batch])
            write_narrow.append(t.elapsed / len(batch))
            t = c.Timer()
            rt.records.bulk_create(admin, "wide0", [dict(row) for row in batch])
            write_wide.append(t.elapsed / len(batch))

        c.log(f"loading {args.rows} rows into wide0")
        for start in range(0, args.rows, 1000):
            n = min(1000, args.rows - start)
            rt.records.bulk_create(admin, "wide0", [{fd["api_name"]: value(fd, start + i) for fd in filled}
                                                    for i in range(n)])
        spec = QuerySpec(fields=[fd["api_name"] for fd in filled], sort=["-f001", "id"], page_size=50)
        rounds = []
        for r in range(args.repeats):
            times = []
            for _ in range(50):
                t = c.Timer()
                page = rt.records.query(admin, "wide0", spec)
                times.append(t.elapsed)
                assert len(page["records"]) == 50 and set(page["records"][0]) >= set(spec.fields)
            rounds.append(c.median(times))
    load_after = os.getloadavg()

    ms = lambda s: s * 1000  # noqa: E731
    cw, cn = stats(create_wide), stats(create_narrow)
    aw, an = stats(add_wide), stats(add_narrow)
    ww, wn = stats(write_wide), stats(write_narrow)
    qp = stats(rounds)
    print(f"# {c.machine_note()} | {args.db} | rows {args.rows:,} | fields {args.fields} | repeats {args.repeats}")
    print(f"# load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    print(c.table(["measure", "min", "median", f"{args.fields} fields / 10 (median)", "target"], [
        [f"create object with {args.fields} fields (s)", cw[0], cw[1], cw[1] / cn[1], "< 3 s"],
        ["create object with 10 fields (s)", cn[0], cn[1], "", ""],
        [f"add a field at ~{args.fields} fields (ms)", ms(aw[0]), ms(aw[1]), aw[1] / an[1], "flat (~1x)"],
        ["add a field at ~10 fields (ms)", ms(an[0]), ms(an[1]), "", ""],
        [f"bulk write per row at {args.fields} fields (ms)", ms(ww[0]), ms(ww[1]), ww[1] / wn[1], "<= 5x"],
        ["bulk write per row at 10 fields (ms)", ms(wn[0]), ms(wn[1]), "", ""],
        ["query page, 10 of the fields (p50 ms)", ms(qp[0]), ms(qp[1]), "", "< 15 ms"],
    ]))
    met = cw[1] < 3 and ww[1] / wn[1] <= 5 and ms(qp[1]) < 15
    print(f"target: create < 3 s, write <= 5x, page < 15 ms: {'MET' if met else 'MISSED'}")
    c.figure("create wide object min", cw[0], "s")
    c.figure("create wide object median", cw[1], "s")
    c.figure("create narrow object median", cn[1], "s")
    c.figure("create wide / narrow (median)", cw[1] / cn[1], "x")
    c.figure("add field to wide object median", ms(aw[1]), "ms")
    c.figure("add field to narrow object median", ms(an[1]), "ms")
    c.figure("add field wide / narrow (median)", aw[1] / an[1], "x")
    c.figure("bulk write per row wide median", ms(ww[1]), "ms")
    c.figure("bulk write per row narrow median", ms(wn[1]), "ms")
    c.figure("bulk write per row wide / narrow (median)", ww[1] / wn[1], "x")
    c.figure("query page p50 min", ms(qp[0]), "ms")
    c.figure("query page p50 median", ms(qp[1]), "ms")


if __name__ == "__main__":
    main()
