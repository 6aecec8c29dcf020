"""Bundles and metadata kinds (issue 12):

1. installing a bundle of 20 objects with 400 fields and 50 rules (25
   duplicate rules, 25 scoring rules on the lead) into a fresh instance,
   against the baseline of creating the same 20 objects with their fields
   through the metadata service directly (what an admin's API calls cost);
2. the plan of an upgrade over the same bundle (a new version changing 10
   fields, 10 rules and adding 20 fields) against an unchanged re-plan;
3. reading items of a kind on a request whose metadata has not changed:
   the statements it runs (must be the one version check) and its time,
   against a cold read (the registry loaded again).

    python benchmarks/bench_bundles.py                 # PostgreSQL, 3 repeats
    python benchmarks/bench_bundles.py --db sqlite --repeats 2
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import figure, machine_note, parser, runtime  # noqa: E402
from leadhub.metadata import bundles  # noqa: E402
from leadhub.metadata.registry import load_registry  # noqa: E402

OBJECTS, FIELDS_EACH, RULES = 20, 20, 50
TYPES = ["text", "integer", "decimal", "date", "boolean", "email", "phone", "picklist", "long_text", "datetime"]


def field(i: int, j: int, version: int = 1) -> dict:
    type_name = TYPES[j % len(TYPES)]
    spec = {"api_name": f"f{j:02d}", "label": {"en": f"Field {j}", "zh_CN": f"字段{j}"}, "type": type_name,
            "position": j + 1}
    if type_name == "text":
        spec["max_length"] = 100 + (20 if version > 1 and j < 10 else 0)   # one text field an object grows
    if type_name == "decimal":
        spec.update(precision=12, scale=2)
    if type_name == "picklist":
        spec["options"] = [{"value": f"o{k}", "label": {"en": f"Option {k}", "zh_CN": f"选项{k}"}} for k in range(8)]
    if j == 1:
        spec["indexed"] = True
    return spec


def make_bundle(version: int) -> bundles.Bundle:
    entries: dict[str, dict] = {}
    for i in range(OBJECTS):
        entries[f"object/obj{i:02d}"] = {"api_name": f"obj{i:02d}", "label": {"en": f"Object {i}", "zh_CN": f"对象{i}"}}
    for i in range(OBJECTS):
        count = FIELDS_EACH + (1 if version > 1 else 0)
        for j in range(count):
            entries[f"field/obj{i:02d}.f{j:02d}"] = field(i, j, version)
    for r in range(RULES // 2):
        entries[f"duplicate_rule/dup{r:02d}"] = {
            "name": f"dup{r:02d}", "label": f"Rule {r}", "active": True, "object": "lead", "match_objects": ["lead"],
            "conditions": [{"field": "mobile", "normaliser": "e164", "threshold": None}],
            "window_months": 6 + (6 if version > 1 and r < 5 else 0), "action": "mark"}
        entries[f"scoring_rule/score{r:02d}"] = {
            "name": f"score{r:02d}", "label": f"Score {r}", "object": "lead", "condition": f"company_size >= {r * 10}",
            "points": r + (10 if version > 1 and r < 5 else 0), "active": True}
    return bundles.Bundle(name="bench", version=f"{version}.0.0", requires={"lead": ">=0.2.0"}, entries=entries)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    v1, v2 = make_bundle(1), make_bundle(2)
    fields = sum(1 for e in v1.entries if e.startswith("field/"))
    rules = sum(1 for e in v1.entries if not e.startswith(("object/", "field/")))
    print(f"bundle: {OBJECTS} objects, {fields} fields, {rules} rules; db={args.db}; {machine_note()}")
    install, baseline, plans, replans = [], [], [], []
    for n in range(args.repeats):
        with runtime(args.db) as (rt, admin):
            rt.plugins.install("lead")
            install.append(timed(lambda: bundles.install(rt, admin, v1)))
            reg = rt.cache.current()
            assert len(reg.objects) >= OBJECTS + 3 and len(reg.items["scoring_rule"]) >= RULES // 2
            replans.append(timed(lambda: bundles.plan(rt, v1)))
            plans.append(timed(lambda: bundles.plan(rt, v2)))
            steps = bundles.plan(rt, v2)["steps"]
            assert sum(s.action == "create" for s in steps) == OBJECTS
            assert sum(s.action == "update" for s in steps) == OBJECTS + 10, \
                sum(s.action == "update" for s in steps)
            if n == 0:
                reads = cached_reads(rt)
        with runtime(args.db) as (rt, admin):      # the baseline: the same objects through the service
            def direct():
                for i in range(OBJECTS):
                    rt.metadata.create_object(admin, {
                        "api_name": f"obj{i:02d}", "label": f"Object {i}",
                        "fields": [field(i, j) for j in range(FIELDS_EACH)]})
            baseline.append(timed(direct))
        print(f"  repeat {n + 1}: install {install[-1]:.2f} s, objects alone {baseline[-1]:.2f} s, "
              f"upgrade plan {plans[-1] * 1000:.0f} ms, unchanged re-plan {replans[-1] * 1000:.0f} ms", file=sys.stderr)

    def row(name, values, base=None):
        ratio = ""
        if base:
            ratios = [v / b for v, b in zip(values, base)]
            ratio = f"{min(ratios):.2f}x / {statistics.median(ratios):.2f}x"
        print(f"| {name} | {min(values):.3f} s | {statistics.median(values):.3f} s | {ratio} |")

    print("\n| measure | min | median | ratio to baseline (min / median) |\n|---|---|---|---|")
    row("install the bundle (one transaction, lead plugin present)", install, baseline)
    row("baseline: the 20 objects with their 400 fields through MetadataService", baseline)
    row("plan of the upgrade to 2.0.0", plans, replans)
    row("baseline: plan of the installed version again", replans)
    print(f"\ncached read of a kind: {reads['statements']} statement(s) "
          f"({reads['sql']}); {reads['warm_us']:.0f} µs median vs a cold registry load "
          f"{reads['cold_ms']:.1f} ms median ({reads['cold_ms'] * 1000 / reads['warm_us']:.0f}x)")
    ok = reads["statements"] == 1 and "lh_meta_version" in reads["sql"]
    print(f"target: a cached read costs no query beyond the version check: {'MET' if ok else 'MISSED'}")
    install_ratios = [v / b for v, b in zip(install, baseline)]
    plan_ratios = [v / b for v, b in zip(plans, replans)]
    figure("install min", min(install), "s")
    figure("install median", statistics.median(install), "s")
    figure("objects through metadata service min", min(baseline), "s")
    figure("objects through metadata service median", statistics.median(baseline), "s")
    figure("install / objects alone min", min(install_ratios), "x")
    figure("install / objects alone median", statistics.median(install_ratios), "x")
    figure("upgrade plan median", statistics.median(plans) * 1000, "ms")
    figure("installed version re-plan median", statistics.median(replans) * 1000, "ms")
    figure("upgrade plan / re-plan min", min(plan_ratios), "x")
    figure("upgrade plan / re-plan median", statistics.median(plan_ratios), "x")
    figure("cached kind read statements", reads["statements"], "statements")
    figure("cached kind read median", reads["warm_us"] / 1000, "ms")
    figure("cold registry load median", reads["cold_ms"], "ms")


def cached_reads(rt) -> dict:
    rt.cache.current()
    statements: list[str] = []
    listener = lambda *a: statements.append(a[2])   # noqa: E731
    sa.event.listen(rt.db.engine, "before_cursor_execute", listener)
    try:
        rt.kinds.items("duplicate_rule", rt.cache.current())
    finally:
        sa.event.remove(rt.db.engine, "before_cursor_execute", listener)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    warm, cold = [], []
    for _ in range(200):
        start = time.perf_counter()
        rt.kinds.items("duplicate_rule", rt.cache.current())
        warm.append((time.perf_counter() - start) * 1e6)
    for _ in range(10):
        with rt.db.read() as conn:
            start = time.perf_counter()
            load_registry(conn).items.get("duplicate_rule")
            cold.append((time.perf_counter() - start) * 1000)
    return {"statements": len(selects), "sql": " ".join(selects[0].split())[:60] if selects else "",
            "warm_us": statistics.median(warm), "cold_ms": statistics.median(cold)}


if __name__ == "__main__":
    main()
