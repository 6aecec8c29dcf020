"""Server time to render the generated pages on 100,000 records, measured
with the Flask test client (no network: the WSGI app's own time).

  * list    - GET /o/deal (as it opens: newest first) and
              GET /o/deal?filter=...&sort=-amount&page=N: a page of 50 rows,
              7 columns (a lookup's name joined in), saved views, menu,
              layout, filter-builder catalogue, bulk bar. The total is not
              counted in the page: its script asks the API for it after the
              rows are shown; that call is timed too (last row);
  * detail  - GET /o/deal/<id>: the layout's sections, 3 related lists
              (note, task, call; 5 rows each with their counts), field
              history and the timeline slot.

Baselines in the same run, interleaved request by request:
  * api list   - GET /api/v1/objects/deal/records with the same filter, sort,
                 fields and page (JSON instead of HTML);
  * api detail - the 4 JSON calls that fetch what the detail page shows
                 (the record, and one page of each related list).
Both sides use the same signed-in browser session (cookie auth).

    python benchmarks/bench_pages.py                    # SQLite, 100,000 deals, 200 requests each
    python benchmarks/bench_pages.py --db postgres
    python benchmarks/bench_pages.py --rows 20000 --requests 50    # quick
"""
from __future__ import annotations

import json
import random
import re
import sys
import time
from urllib.parse import quote

import _common as c

from leadhub.platform import auth
from leadhub.web.app import create_app

STAGES = ["new", "contacted", "qualified", "won", "lost"]
CITIES = ["Shenzhen", "Guangzhou", "Hangzhou", "Shanghai", "Beijing", "Chengdu", "Wuhan"]
CHILDREN = ("note", "task", "call")
PW = "bench-pass-1"


def setup(rt, admin, rows: int, children_per_object: int) -> list[int]:
    md, rec = rt.metadata, rt.records
    md.create_object(admin, {"api_name": "account", "label": {"en": "Account", "zh_CN": "客户"}, "name_field": "name",
                             "fields": [{"api_name": "name", "label": "Name", "type": "text"}]})
    md.create_object(admin, {"api_name": "deal", "label": {"en": "Deal", "zh_CN": "商机"}, "name_field": "title",
                             "track_history": True, "fields": [
        {"api_name": "title", "label": {"en": "Title", "zh_CN": "标题"}, "type": "text", "required": True},
        {"api_name": "email", "label": "Email", "type": "email"},
        {"api_name": "city", "label": "City", "type": "text"},
        {"api_name": "stage", "label": "Stage", "type": "picklist", "indexed": True, "options": STAGES},
        {"api_name": "amount", "label": "Amount", "type": "currency", "precision": 14, "scale": 2, "indexed": True},
        {"api_name": "close_date", "label": "Close", "type": "date"},
        {"api_name": "account", "label": "Account", "type": "lookup", "reference_to": "account"}]})
    for child in CHILDREN:
        md.create_object(admin, {"api_name": child, "label": child.title(), "name_field": "subject", "fields": [
            {"api_name": "subject", "label": "Subject", "type": "text"},
            {"api_name": "due", "label": "Due", "type": "date"},
            {"api_name": "deal", "label": "Deal", "type": "lookup", "reference_to": "deal"}]})
    accounts = [a["id"] for a in rec.bulk_create(admin, "account", [{"name": f"Account {i}"} for i in range(200)])]
    rnd = random.Random(7)
    ids: list[int] = []
    t = c.Timer()
    for start in range(0, rows, 1000):
        batch = [{"title": f"Deal {i}", "email": f"d{i}@example.com", "city": CITIES[i % 7],
                  "stage": STAGES[rnd.randrange(5)], "amount": f"{rnd.randrange(10**7) / 100:.2f}",
                  "close_date": f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}", "account": accounts[i % 200]}
                 for i in range(start, min(rows, start + 1000))]
        ids += [r["id"] for r in rec.bulk_create(admin, "deal", batch)]
        print(f"\r{len(ids):,} deals ({t.elapsed:.0f} s)", end="", file=sys.stderr)
    print(file=sys.stderr)
    for child in CHILDREN:
        for start in range(0, children_per_object, 1000):
            rec.bulk_create(admin, child, [{"subject": f"{child} {i}", "due": "2026-12-01",
                                            "deal": ids[(i * 7919) % len(ids)]}
                                           for i in range(start, min(children_per_object, start + 1000))])
    if rt.db.dialect == "postgresql":  # what autovacuum does soon after a bulk load; without it the
        with rt.db.write() as conn:     # planner takes the fresh tables for empty and nests loops
            conn.exec_driver_sql("ANALYZE")
    return ids


def main() -> None:
    p = c.parser(__doc__.split("\n")[0], default_db="sqlite", default_rows=100_000)
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--children", type=int, default=30_000, help="rows per related object (default 30,000)")
    args = p.parse_args()
    with c.runtime(args.db) as (rt, admin):
        print(f"setting up {args.rows:,} deals on {c.server_version(rt)} ...", file=sys.stderr)
        ids = setup(rt, admin, args.rows, args.children)
        rt.org.update_user(auth.actor_for(rt.db, rt.cache, admin.user_id), admin.user_id, {"password": PW})
        app = create_app(runtime=rt)
        client = app.test_client()
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
        assert client.post("/login", data={"login": "admin", "password": PW, "csrf_token": csrf}).status_code == 302
        # deals that have children in all three related lists
        with rt.db.read() as conn:
            rich = sorted(set.intersection(*[set(conn.exec_driver_sql(f"SELECT deal FROM o_{ch}").scalars())
                                            for ch in CHILDREN]))[:50] or ids[:50]
        rnd = random.Random(3)
        page_cols = "title,stage,amount,city,close_date,account"   # the page joins the account's name itself
        cols = page_cols + ",account.name"

        def list_urls(filtered: bool):
            """(page, API) addresses of one list page: the list as it opens
            (newest first), or filtered by stage and sorted by amount."""
            page = rnd.randrange(1, max(2, min(40, args.rows // 300)))
            if not filtered:
                return (f"/o/deal?page={page}&page_size=50&columns={page_cols}",
                        f"/api/v1/objects/deal/records?sort=-id&page={page}&page_size=50&fields=id,{cols}")
            tree = quote(json.dumps({"field": "stage", "op": "eq", "value": rnd.choice(STAGES)}))
            return (f"/o/deal?filter={tree}&sort=-amount&page={page}&page_size=50&columns={page_cols}",
                    f"/api/v1/objects/deal/records?filter={tree}&sort=-amount&page={page}&page_size=50"
                    f"&fields=id,{cols}")

        def timed(url: str, expect: str | None = None) -> float:
            t0 = time.perf_counter()
            r = client.get(url)
            elapsed = (time.perf_counter() - t0) * 1000
            assert r.status_code == 200, (url, r.status_code, r.text[:500])
            if expect:
                assert expect in r.text, url
            return elapsed

        for _ in range(10):  # warm caches (metadata snapshot, compiled templates, principal)
            for filtered in (False, True):
                a, b = list_urls(filtered)
                timed(a), timed(b)
            timed(f"/o/deal/{rich[0]}")
        kinds = {"list page, as it opens (50 rows, newest first)": ([], []),
                 "list page, filter + sort by amount (50 rows)": ([], []),
                 "detail page (3 related lists)": ([], [])}
        counts, count_base = [], []
        (plain, plain_api), (filt, filt_api), (detail, detail_api) = kinds.values()
        for i in range(args.requests):
            for filtered, pages, apis in ((False, plain, plain_api), (True, filt, filt_api)):
                a, b = list_urls(filtered)
                started = time.perf_counter()
                html = client.get(a).get_data(as_text=True)
                pages.append((time.perf_counter() - started) * 1000)
                assert 'class="open"' in html
                apis.append(timed(b, '"records"'))
                if filtered:  # the total the page's script asks for once the rows are shown
                    counts.append(timed(re.search(r'data-count-url="([^"]+)"', html).group(1).replace("&amp;", "&"),
                                        '"total"'))
                    count_base.append(timed(b + "&count=true", '"total"'))
            rid = rich[i % len(rich)]
            detail.append(timed(f"/o/deal/{rid}", 'data-related="call"'))
            detail_api.append(timed(f"/api/v1/objects/deal/records/{rid}") + sum(
                timed(f"/api/v1/objects/{ch}/records?filter=" + quote(json.dumps({"field": "deal", "op": "eq", "value": rid}))
                      + "&sort=-created_at&page_size=5&count=true&fields=id,subject,due,deal,deal.title")
                for ch in CHILDREN))
        html = client.get(list_urls(True)[0]).text
        assert len(re.findall(r'class="open"', html)) == 50, "a list page must hold 50 rows"

        rows = [[name, c.median(v), c.percentile(v, 95), c.median(b), c.percentile(b, 95),
                 f"{c.median(v) / c.median(b):.2f}x"] for name, (v, b) in kinds.items()]
        rows.append(["(filtered list's total, fetched after the page; vs the page API with count)",
                     c.median(counts), c.percentile(counts, 95), c.median(count_base), c.percentile(count_base, 95),
                     f"{c.median(counts) / c.median(count_base):.2f}x"])
        print(f"\n{args.rows:,} deals, {args.children:,} rows in each of {', '.join(CHILDREN)}; "
              f"{args.requests} requests each, interleaved; {c.server_version(rt)}; {c.machine_note()}")
        print(c.table(["page", "p50 ms", "p95 ms", "JSON API p50 ms", "JSON API p95 ms", "p50 page/API"], rows))
        for name, (v, _b) in kinds.items():
            print(f"target: {name} p50 < 50 ms: {'MET' if c.median(v) < 50 else 'MISSED'}")
        short = {"list page, as it opens (50 rows, newest first)": "list page as it opens",
                 "list page, filter + sort by amount (50 rows)": "list page filtered + sorted",
                 "detail page (3 related lists)": "detail page"}
        for name, (v, b) in kinds.items():
            c.figure(f"{short[name]} p50", c.median(v), "ms")
            c.figure(f"{short[name]} p95", c.percentile(v, 95), "ms")
            c.figure(f"{short[name]} api p50", c.median(b), "ms")
            c.figure(f"{short[name]} p50 / api p50", c.median(v) / c.median(b), "x")
        c.figure("list total p50", c.median(counts), "ms")
        c.figure("list total p50 / api page with count p50", c.median(counts) / c.median(count_base), "x")


if __name__ == "__main__":
    main()
