"""Cost of record-level scope on a list query: a filtered, sorted page of 50
through `rt.records.query` for actors whose role limits what they see
(`sales_rep`: own records; `sales_manager`: their department tree), against
an admin actor (no scope predicate) in the same run, on a PostgreSQL object of
1,000,000 records owned by 200 users in a 4-level department tree.

Organisation (built through rt.org, as the admin API does): root "Sales",
4 regions, 4 branches per region, 3 teams per branch (69 departments).
200 team users (4-5 per team; the first of each team is its team lead,
role sales_manager, the others sales_rep managed by the lead); 16 branch
managers and 4 regional heads (sales_manager, in the branch / region
department, managing the leads / branch managers). Records are owned by the
200 team users (random owner, random stage, random score).

Actors (auth.actor_for, rights resolved by leadhub):
  admin  - is_admin, scope all: no predicate (the baseline)
  rep    - sales_rep, scope own: 1 owner, 0.5 % of the records
  lead   - team lead, department_tree over its team: 5 owners, 2.5 %
  branch - branch manager, department_tree over 3 teams: 15 owners, 7.5 %
  region - regional head, department_tree over 12 teams: 56 owners, 28 %
(the first team of the first branch of the first region; with --users 200
every team of that branch has 5 users).

Query: {"filter": {"field": "stage", "op": "eq", "value": <one of 5>},
"sort": [<sort>], "page_size": 50} for each of --sorts ("id" meaning
leadhub's default order). Before loading, one shared list view per sort is
saved (rt.kinds), so the kernel keeps its sort indexes ((owner, field, id),
and (field, id) where the field has no index of its own; see
leadhub/data/sort_indexes.py). Two phases per sort, in the same run:
  kernel  leadhub as shipped: a reader who sees 2..MAX_OWNER_BRANCHES owners
          gets one branch per owner, merged (query._owner_branches);
  plain   the same indexes, query.MAX_OWNER_BRANCHES = 1: one
          "owner IN (...) ORDER BY" query for every reader (the plan before).
--composite adds a third phase with (stage, <sort>, id) as well.

Every actor's pages and counts are checked against the owner sets computed
here from the generated organisation and data (not from leadhub's Principal).

    python benchmarks/bench_scope.py                        # 1,000,000 rows, four sorts
    python benchmarks/bench_scope.py --sorts=-score --count-requests 0
    python benchmarks/bench_scope.py --rows 100000 --requests 30
"""
from __future__ import annotations

import collections
import random
import sys

import sqlalchemy as sa

import _common as c

from leadhub.data import query
from leadhub.data.query import QueryCompiler, QuerySpec
from leadhub.platform import auth, tables as t

STAGES = ["new", "contacted", "qualified", "won", "lost"]
FIELDS = [
    {"api_name": "name", "label": "Name", "type": "text", "required": True},
    {"api_name": "city", "label": "City", "type": "text"},
    {"api_name": "stage", "label": "Stage", "type": "picklist", "indexed": True, "options": STAGES},
    {"api_name": "score", "label": "Score", "type": "integer", "indexed": True},
    {"api_name": "amount", "label": "Amount", "type": "currency", "precision": 14, "scale": 2},
]
COLUMNS = ["owner", "created_by", "created_at", "updated_by", "updated_at", "name", "city", "stage", "score", "amount"]
CITIES = ["Shenzhen", "Guangzhou", "Hangzhou", "Shanghai", "Beijing", "Chengdu", "Wuhan"]


def order_sql(sort: str) -> str:
    """The ORDER BY leadhub's compiler produces for one sort key ("id": the default order)."""
    if sort == "id":
        return "id"
    col = sort.lstrip("-")
    return f"{col} DESC NULLS FIRST, id DESC" if sort.startswith("-") else f"{col} ASC NULLS LAST, id ASC"


def index_sql(name: str, lead: str | None, sort: str) -> str:
    cols = ", ".join(([lead] if lead else []) + [order_sql(sort).replace(" ASC NULLS LAST", "").replace(" ASC", "")])
    return f"CREATE INDEX {name} ON o_deal ({cols}) WHERE deleted_at IS NULL"


ACTORS = ["admin", "rep", "lead", "branch", "region"]
REGIONS, BRANCHES, TEAMS = 4, 4, 3


# ------------------------------------------------------------------ organisation

def build_org(rt, admin, n_users: int) -> dict:
    """Departments and users through rt.org; returns the tree with user ids."""
    org = rt.org
    root = org.save_department(admin, {"name": "Sales"})["id"]
    regions = []
    for r in range(REGIONS):
        rid = org.save_department(admin, {"name": f"Region {r}", "parent": root})["id"]
        head = org.create_user(admin, {"login": f"head{r}", "name": f"Head {r}", "department": rid,
                                       "roles": ["sales_manager"]})["id"]
        org.save_department(admin, {"head": head}, rid)
        branches = []
        for b in range(BRANCHES):
            bid = org.save_department(admin, {"name": f"Branch {r}.{b}", "parent": rid})["id"]
            mgr = org.create_user(admin, {"login": f"bm{r}_{b}", "name": f"Branch manager {r}.{b}",
                                          "department": bid, "manager": head, "roles": ["sales_manager"]})["id"]
            org.save_department(admin, {"head": mgr}, bid)
            teams = []
            for k in range(TEAMS):
                tid = org.save_department(admin, {"name": f"Team {r}.{b}.{k}", "parent": bid})["id"]
                teams.append({"id": tid, "lead": None, "members": []})
            branches.append({"id": bid, "manager": mgr, "teams": teams})
        regions.append({"id": rid, "head": head, "branches": branches})
    all_teams = [(reg, br, tm) for reg in regions for br in reg["branches"] for tm in br["teams"]]
    for u in range(n_users):  # round robin: every team gets 4 or 5 users
        reg, br, tm = all_teams[u % len(all_teams)]
        first = tm["lead"] is None
        uid = org.create_user(admin, {
            "login": f"u{u:03d}", "name": f"User {u}", "department": tm["id"],
            "manager": br["manager"] if first else tm["lead"],
            "roles": ["sales_manager" if first else "sales_rep"]})["id"]
        if first:
            tm["lead"] = uid
            org.save_department(admin, {"head": uid}, tm["id"])
        tm["members"].append(uid)
    return {"root": root, "regions": regions}


def expected_owners(org: dict) -> dict[str, tuple[int, set[int]]]:
    """(user id, owners whose records the actor should see) for each actor,
    from the generated tree: own records, or everyone in the department tree
    (which here is also everyone reporting to the actor)."""
    reg = org["regions"][0]
    br = reg["branches"][0]
    tm = br["teams"][0]
    rep = tm["members"][1]
    team_users = lambda teams: {u for x in teams for u in x["members"]}  # noqa: E731
    return {
        "rep": (rep, {rep}),
        "lead": (tm["lead"], team_users([tm])),
        "branch": (br["manager"], {br["manager"]} | team_users(br["teams"])),
        "region": (reg["head"], {reg["head"]} | {b["manager"] for b in reg["branches"]}
                   | team_users([x for b in reg["branches"] for x in b["teams"]])),
    }


def lines(n: int, owners: list[int], counts: collections.Counter, seed: int = 1):
    rnd = random.Random(seed)
    for i in range(n):
        ts = f"2025-{1 + i % 12:02d}-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:00"
        owner, stage = rnd.choice(owners), STAGES[rnd.randrange(5)]
        counts[owner, stage] += 1
        yield (f"{owner}\t{owner}\t{ts}\t{owner}\t{ts}\tDeal {i}\t{CITIES[i % 7]}\t"
               f"{stage}\t{rnd.randrange(100000)}\t{rnd.randrange(10**8) / 100:.2f}")


# ------------------------------------------------------------------ measuring

SORT = "-score"  # set from --sort


def spec_for(stage: str, count: bool = False) -> QuerySpec:
    return QuerySpec(filter={"field": "stage", "op": "eq", "value": stage}, sort=[] if SORT == "id" else [SORT],
                     page_size=50, count=count)


def explain(rt, actor, stage: str = "won") -> tuple[list[str], str]:
    reg = rt.cache.current()
    stmt = QueryCompiler(reg, "deal", actor, rt.config.timezone).compile(spec_for(stage))[0]
    with rt.db.read() as conn:
        sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        out = [r[0] for r in conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql)]
    return out, sql


def plan_summary(lines_: list[str]) -> str:
    keep = [ln.strip() for ln in lines_ if "->" in ln or ln.lstrip().startswith(("Limit", "Execution Time",
                                                                                   "Rows Removed", "SubPlan"))]
    return " | ".join(keep)


def check(rt, expected, counts, stage: str, page: dict, count_total=None, name="") -> None:
    """The page is the first 50 of the records the actor should see, the total their number."""
    owners = expected[name][1] if name != "admin" else None
    recs = page["records"]
    with rt.db.read() as conn:
        sql = ("SELECT id FROM o_deal WHERE deleted_at IS NULL AND stage = %(s)s"
               + ("" if owners is None else " AND owner = ANY(%(o)s)")
               + f" ORDER BY {order_sql(SORT)} LIMIT 51")
        want = [r[0] for r in conn.exec_driver_sql(sql, {"s": stage, "o": sorted(owners or [])})]
    assert [r["id"] for r in recs] == want[:50], (name, stage, [r["id"] for r in recs][:5], want[:5])
    assert page["has_more"] == (len(want) > 50), (name, stage)
    assert all(r["stage"] == stage for r in recs) and all(owners is None or r["owner"] in owners for r in recs)
    if count_total is not None:
        exp = sum(v for (o, s), v in counts.items() if s == stage and (owners is None or o in owners))
        assert count_total == exp, (name, stage, count_total, exp)


def measure(rt, actors: dict, n: int, label: str, verify) -> tuple[dict, dict]:
    """records.query per actor (the measured path) and, interleaved with it, the
    SELECT it compiles run on a held Core connection (database time only)."""
    times: dict[str, list[float]] = {a: [] for a in actors}
    core: dict[str, list[float]] = {a: [] for a in actors}
    names = list(actors)
    reg = rt.cache.current()
    stmts = {(name, s): QueryCompiler(reg, "deal", a, rt.config.timezone).compile(spec_for(s))[0]
             for name, a in actors.items() for s in STAGES}
    with rt.db.engine.connect() as held:
        for name in names:  # warm up every actor and value, on both paths
            for s in STAGES:
                verify(name, s, rt.records.query(actors[name], "deal", spec_for(s)))
                held.execute(stmts[name, s]).all()
                held.rollback()
        for i in range(n):
            s = STAGES[i % len(STAGES)]
            k = i % len(names)
            for name in names[k:] + names[:k]:  # rotate the order so no actor is always first
                t0 = c.Timer()
                page = rt.records.query(actors[name], "deal", spec_for(s))
                times[name].append(t0.elapsed * 1000)
                t0 = c.Timer()
                held.execute(stmts[name, s]).all()
                core[name].append(t0.elapsed * 1000)
                held.rollback()
                if i < len(STAGES):
                    verify(name, s, page)
    c.log(f"  {label}: " + ", ".join(f"{a} p50 {c.median(v):.1f} ms (db {c.median(core[a]):.1f})"
                                     for a, v in times.items()))
    return times, core


def measure_counts(rt, actors: dict, n: int, verify_count) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {a: [] for a in actors}
    names = list(actors)
    for i in range(n):
        s = STAGES[i % len(STAGES)]
        k = i % len(names)
        for name in names[k:] + names[:k]:
            t0 = c.Timer()
            page = rt.records.query(actors[name], "deal", spec_for(s, count=True))
            times[name].append(t0.elapsed * 1000)
            verify_count(name, s, page)
    return times


def main() -> int:
    global SORT
    p = c.parser(__doc__.splitlines()[0], db_choices=("postgres",), default_rows=1_000_000)
    p.add_argument("--users", type=int, default=200, help="team users owning the records (default 200)")
    p.add_argument("--requests", type=int, default=100, help="timed queries per actor and phase (default 100)")
    p.add_argument("--count-requests", type=int, default=10,
                   help="timed queries with count: true per actor and phase (default 10; 0 skips)")
    p.add_argument("--sorts", default="-score,score,-created_at,city,id",
                   help="comma-separated sort keys, each a list view (default -score,score,-created_at,city,id)")
    p.add_argument("--composite", action="store_true", help="also measure with (stage, <sort>, id) added")
    args = p.parse_args()
    sorts = args.sorts.split(",")
    assert all(x.lstrip("-") in ("id", "score", "created_at", "city") for x in sorts), sorts
    assert args.users >= REGIONS * BRANCHES * TEAMS * 2, "every team needs a lead and a rep"

    with c.runtime("postgres") as (rt, admin0):
        rt.metadata.create_object(admin0, {"api_name": "deal", "label": "Deal", "fields": FIELDS})
        for i, sort in enumerate(sorts):     # what an admin does: a shared view per order people use
            rt.kinds.create(admin0, "list_view", {
                "object": "deal", "api_name": f"by_{i}", "name": {"en": sort, "zh_CN": sort},
                "columns": ["name", "stage", "score"], "sort": [] if sort == "id" else [sort]})
        t0 = c.Timer()
        org = build_org(rt, admin0, args.users)
        org_s = t0.elapsed
        team_users = sorted(u for reg in org["regions"] for br in reg["branches"] for tm in br["teams"]
                            for u in tm["members"])
        expected = expected_owners(org)
        c.log(f"organisation: {len(team_users)} team users + {REGIONS * BRANCHES + REGIONS} managers "
              f"in {org_s:.1f}s; loading {args.rows:,} rows with COPY ...")
        counts: collections.Counter = collections.Counter()
        t0 = c.Timer()
        load = c.copy_rows(rt, "o_deal", COLUMNS, lines(args.rows, team_users, counts), args.rows)
        load_s = t0.elapsed
        with rt.db.read() as conn:
            n = conn.exec_driver_sql("SELECT count(*) FROM o_deal").scalar_one()
            indexes = [r[0] for r in conn.exec_driver_sql(
                "SELECT indexdef FROM pg_indexes WHERE tablename = 'o_deal' ORDER BY indexname")]
            shares = conn.execute(sa.select(sa.func.count()).select_from(t.shares)).scalar_one()
        assert n == args.rows == sum(counts.values()), n
        owner_sorted = sorted(rt.cache.current().owner_sorted.get("o_deal", ()))

        actors = {"admin": auth.actor_for(rt.db, rt.cache, admin0.user_id)}
        for name in ACTORS[1:]:
            actors[name] = auth.actor_for(rt.db, rt.cache, expected[name][0])
        scopes = {name: a.rights("deal").scope for name, a in actors.items()}
        assert scopes == {"admin": "all", "rep": "own", "lead": "department_tree", "branch": "department_tree",
                          "region": "department_tree"}, scopes
        visible = {name: (args.rows if name == "admin" else
                          sum(v for (o, _s), v in counts.items() if o in expected[name][1])) for name in actors}
        n_owners = {name: len(team_users) if name == "admin" else len(expected[name][1] & set(team_users))
                    for name in actors}

        def verify(name, stage, page):
            check(rt, expected, counts, stage, page, name=name)

        def verify_count(name, stage, page):
            check(rt, expected, counts, stage, page, page["total"], name=name)

        phases = []

        def run_phase(label: str):
            plans = {name: explain(rt, a) for name, a in actors.items()}
            for name, (pl, _sql) in plans.items():
                c.log(f"plan {label} {name}:\n  " + "\n  ".join(pl))
            times, core = measure(rt, actors, args.requests, label, verify)
            ctimes = measure_counts(rt, actors, args.count_requests, verify_count) if args.count_requests else None
            phases.append((label, times, ctimes, plans, core))

        def run_both(label: str):
            run_phase(f"{SORT} | {label} | kernel")
            branches = query.MAX_OWNER_BRANCHES
            query.MAX_OWNER_BRANCHES = 1
            try:
                run_phase(f"{SORT} | {label} | plain")
            finally:
                query.MAX_OWNER_BRANCHES = branches

        added = []
        for SORT in sorts:
            run_both("kernel indexes")
            if args.composite and SORT != "id":
                sql = index_sql(f"ix_o_deal_stage_{SORT.lstrip('-')}_bench", "stage", SORT)
                with rt.db.write() as conn:
                    t0 = c.Timer()
                    conn.exec_driver_sql(sql)
                    added.append((sql, t0.elapsed))
                with rt.db.write() as conn:
                    conn.exec_driver_sql("ANALYZE o_deal")
                run_both("+(stage,sort)")
        version = c.server_version(rt)

    print(f"\nbench_scope  PostgreSQL {version}  {c.machine_note()}")
    print(f"object 'deal': {len(FIELDS)} custom fields, {args.rows:,} rows loaded by COPY in {load_s:.1f}s "
          f"(copy {load['copy_s']:.1f}s, indexes {load['index_s']:.1f}s, vacuum analyze {load['vacuum_s']:.1f}s); "
          f"organisation of {len(team_users)} team users, {REGIONS * BRANCHES + REGIONS} managers, "
          f"{1 + REGIONS + REGIONS * BRANCHES + REGIONS * BRANCHES * TEAMS} departments built in {org_s:.1f}s; "
          f"{shares} shares")
    print(f"query: records.query(actor, 'deal', filter stage eq <one of 5>, sort <one of {sorts}>, page_size 50); "
          f"MAX_OWNER_BRANCHES {query.MAX_OWNER_BRANCHES}")
    print("indexes (kernel, with the list views' sort indexes): " + "; ".join(
        i.split(" USING ")[0].replace("CREATE ", "") + " (" + i.split("(", 1)[1] for i in indexes))
    print(f"owner-leading indexes the compiler sees (Registry.owner_sorted): {owner_sorted}")
    for sql, secs in added:
        print(f"added: {sql} (built in {secs:.1f}s)")
    for label, _times, _ct, plans, _core in phases:
        for name in ACTORS:
            print(f"plan {label} {name}: {plan_summary(plans[name][0])}")
    rows = []
    for label, times, _ct, _plans, core in phases:
        base50, base95 = c.percentile(times["admin"], 50), c.percentile(times["admin"], 95)
        core50 = c.percentile(core["admin"], 50)
        for name in ACTORS:
            v = times[name]
            p50, p95, db50 = c.percentile(v, 50), c.percentile(v, 95), c.percentile(core[name], 50)
            rows.append([label, name, scopes[name], n_owners[name], f"{visible[name] / args.rows:.1%}", len(v),
                         p50, p95, max(v), f"{p50 / base50:.2f}", f"{p95 / base95:.2f}", db50,
                         f"{db50 / core50:.2f}"])
    print(c.table(["sort | indexes | plan", "actor", "scope", "owners", "visible", "n", "p50 ms", "p95 ms",
                   "max ms", "p50 / admin", "p95 / admin", "db p50 ms", "db / admin"], rows))
    print("(p50/p95/max: rt.records.query; db: the SELECT it compiles, run alone on a held Core connection, "
          "interleaved with it)")
    if args.count_requests:
        rows = []
        for label, _times, ctimes, _plans, _core in phases:
            base = c.percentile(ctimes["admin"], 50)
            for name in ACTORS:
                v = ctimes[name]
                rows.append([label, name, len(v), c.percentile(v, 50), max(v), f"{c.percentile(v, 50) / base:.2f}"])
        print("with count: true (informational)")
        print(c.table(["sort | indexes | plan", "actor", "n", "p50 ms", "max ms", "p50 / admin"], rows))
    print("check: every actor's first page (ids, order, has_more) equals the same query with the expected owner "
          "list written out in SQL" + (", and every count equals the number computed from the generated rows"
                                       if args.count_requests else ""))
    for label, times, _ct, _plans, _core in phases:
        base = c.percentile(times["admin"], 50)
        ratios = {a: c.percentile(times[a], 50) / base for a in ACTORS[1:]}
        worst = max(ratios, key=ratios.get)
        print(f"target: scoped p50 within 1.5x of admin p50 -> {label}: "
              f"{'MET' if ratios[worst] <= 1.5 else 'MISSED'} (worst {worst} {ratios[worst]:.2f}x)")
        sort, indexes, plan = label.split(" | ")
        where = f"{sort}, {plan} plan" if indexes == "kernel indexes" else f"{sort}, {indexes}, {plan} plan"
        c.figure(f"worst scoped p50 / admin p50 ({where})", ratios[worst], "x")
        if plan == "kernel":
            for name in ACTORS[1:]:
                c.figure(f"{name} p50 / admin p50 ({where})", ratios[name], "x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
