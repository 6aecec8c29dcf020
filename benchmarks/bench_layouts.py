"""Cost of the layout metadata a page asks for on every render, against
reading one record in the same run.

Every list, detail and form page calls `layouts.effective_layout` (and the
list page `layouts.list_views`, the navigation `layouts.menu`). Target: each
within 2x of reading the one record a detail page shows, so the layout
metadata never costs a page more than a couple of record reads.

Setup: an object with 40 fields, three child objects pointing at it, a
saved layout (4 sections, 3 related lists, 4 buttons) assigned to a rep's
role that hides and locks fields, 10 shared and 10 personal list views, 12
objects in the menu. Timed for the rep (role-chosen layout, rights applied):

  * baseline: `records.get` of one record with all its visible fields;
  * `effective_layout`, `list_views`, `menu`.

    python benchmarks/bench_layouts.py --db sqlite
    python benchmarks/bench_layouts.py --db postgres
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import _common as c  # noqa: E402

from leadhub.platform import auth  # noqa: E402


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def setup(rt, admin):
    fields = [{"api_name": "name", "label": "Name", "type": "text", "required": True}]
    fields += [{"api_name": f"f{i:02d}", "label": f"F{i}", "type": "text" if i % 3 else "integer"} for i in range(39)]
    rt.metadata.create_object(admin, {"api_name": "account", "label": "Account", "fields": fields,
                                      "name_field": "name"})
    for child in ("contact", "deal", "visit"):
        rt.metadata.create_object(admin, {"api_name": child, "label": child.title(), "fields": [
            {"api_name": "title", "label": "Title", "type": "text"},
            {"api_name": "account", "label": "Account", "type": "lookup", "reference_to": "account"},
            {"api_name": "amount", "label": "Amount", "type": "currency", "precision": 14, "scale": 2}]})
    for i in range(8):
        rt.metadata.create_object(admin, {"api_name": f"extra{i}", "label": f"Extra {i}"})
    rt.org.save_role(admin, {"api_name": "bench_rep", "label": "Rep", "objects": {
        "*": {"create": True, "read": True, "edit": True, "scope": "own", "fields": {"owner": "read"}},
        "account": {"create": True, "read": True, "edit": True, "export": True, "scope": "own",
                    "fields": {"owner": "read", "f01": "hidden", "f02": "hidden", "f04": "read", "f05": "read"}}}})
    uid = auth.create_user(rt.db, "rep", "Rep")
    rt.org.update_user(admin, uid, {"roles": ["bench_rep"]})
    rep = auth.actor_for(rt.db, rt.cache, uid)
    names = [f["api_name"] for f in fields]
    sections = [{"key": f"s{k}", "title": f"Section {k}", "columns": 2, "collapsible": k > 0,
                 "fields": names[k * 10:(k + 1) * 10]} for k in range(4)]
    layout = rt.layouts.create_layout(admin, "account", {
        "name": "Rep layout", "sections": sections,
        "related_lists": [{"object": ch, "columns": ["title", "amount"], "sort": ["-amount"]}
                          for ch in ("contact", "deal", "visit")],
        "buttons": ["edit", "delete", "transfer_owner",
                    {"kind": "action", "name": "send_mail", "function": "send_mail", "label": "Mail"}]})
    rt.layouts.assign(admin, "account", {"bench_rep": layout["id"]})
    view = {"columns": ["name", "f00", "f03"], "sort": ["-f03"],
            "filter": {"and": [{"field": "f03", "op": "gte", "value": 1}, {"field": "name", "op": "contains",
                                                                           "value": "a"}]}}
    for i in range(10):
        rt.layouts.create_list_view(admin, "account", {**view, "name": f"Shared {i}", "shared": True})
        rt.layouts.create_list_view(rep, "account", {**view, "name": f"Mine {i}"})
    rt.layouts.set_menu(admin, ["contact", "account", "deal"])
    rid = rt.records.create(rep, "account", {"name": "Acme", "f00": 7, "f03": 5})["id"]
    return rep, rid


def main() -> int:
    p = c.parser(__doc__.splitlines()[0], default_db="sqlite")
    p.add_argument("--calls", type=int, default=300, help="timed calls of each (default 300)")
    args = p.parse_args()
    with c.runtime(args.db) as (rt, admin):
        rep, rid = setup(rt, admin)
        # what the timed paths return is checked, so nothing is measured doing less than a page needs
        lay = rt.layouts.effective_layout(rep, "account")
        placed = [f["field"] for s in lay["sections"] for f in s["fields"]]
        assert len(placed) == 38 and "f01" not in placed and len(lay["related_lists"]) == 3
        assert len(rt.layouts.list_views(rep, "account")) == 20 and len(rt.layouts.menu(rep)) == 12
        paths = {
            "records.get (baseline)": lambda: rt.records.get(rep, "account", rid),
            "effective_layout": lambda: rt.layouts.effective_layout(rep, "account"),
            "list_views (20 views)": lambda: rt.layouts.list_views(rep, "account"),
            "menu (12 objects)": lambda: rt.layouts.menu(rep),
        }
        for fn in paths.values():          # warm caches (registry, principal, schemas)
            timed(fn, 20)
        rounds = {name: [] for name in paths}
        for _ in range(3):                 # interleaved rounds, so load on the shared machine hits all alike
            for name, fn in paths.items():
                rounds[name] += timed(fn, args.calls // 3)
        base = c.median(rounds["records.get (baseline)"])
        rows = [[name, c.median(ms), c.percentile(ms, 95), c.median(ms) / base] for name, ms in rounds.items()]
        print(f"{args.db} ({c.server_version(rt)}), {args.calls} calls each | {c.machine_note()}")
        print(c.table(["path", "p50 ms", "p95 ms", "x baseline"], rows))
        worst = max(r[3] for r in rows[1:])
        print(f"target: each layout path within 2x of a record read: {'MET' if worst <= 2.0 else 'MISSED'} "
              f"(worst {worst:.2f}x)")
        for name, p50, _p95, ratio in rows:
            short = name.split(" (")[0]
            c.figure(f"{short} p50", p50, "ms")
            if name != "records.get (baseline)":
                c.figure(f"{short} p50 / records.get p50", ratio, "x")
        c.figure("worst layout path p50 / records.get p50", worst, "x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
