"""Background duplicate scans: a job (RQ with Redis, inline without) that
reads a rule's match objects once, in id order, through the record service
as the system, and stores the duplicate groups in lh_duplicate_scans:
records sharing every condition's key, and for fuzzy company names each
prefix bucket clustered by similarity (single linkage). At most SCAN_GROUPS
groups of at most 100 listed records are kept, largest first."""
from __future__ import annotations

import sqlalchemy as sa

from leadhub.data.query import QuerySpec
from leadhub.platform import permissions
from leadhub.platform.db import utcnow
from leadhub.platform.errors import NotFound
from leadhub.platform.jobs import current_runtime
from leadhub.platform.permissions import Actor
from leadhub.plugins.lead import normalise as nz
from leadhub.plugins.lead.dedupe import SYSTEM, months_ago
from leadhub.plugins.lead.duplicate_rules import Rule, get_rule
from leadhub.plugins.lead.intake_tables import duplicate_scans

SCAN_GROUPS = 1000
SCAN_PAGE = 2000


def start_scan(runtime, actor: Actor, rule_name: str) -> dict:
    permissions.require_admin(actor)
    with runtime.db.write() as conn:
        get_rule(runtime.cache.current(conn), rule_name)
        scan_id = conn.execute(duplicate_scans.insert().values(
            rule=rule_name, status="queued", requested_by=actor.user_id, created_at=utcnow(), scanned=0
        ).returning(duplicate_scans.c.id)).scalar_one()
        runtime.jobs.enqueue(run_scan, scan_id)
    return get_scan(runtime, rule_name, scan_id)


def get_scan(runtime, rule_name: str, scan_id: int | None = None) -> dict:
    s = duplicate_scans
    stmt = sa.select(s).where(s.c.rule == rule_name).order_by(s.c.id.desc()).limit(1)
    if scan_id is not None:
        stmt = sa.select(s).where(s.c.rule == rule_name, s.c.id == scan_id)
    with runtime.db.read() as conn:
        row = conn.execute(stmt).mappings().first()
    if row is None:
        raise NotFound(f"No scan of duplicate rule '{rule_name}'" + (f" with id {scan_id}." if scan_id else " yet."))
    return {"id": row["id"], "rule": row["rule"], "status": row["status"], "created_at": row["created_at"],
            "finished_at": row["finished_at"], "scanned": row["scanned"], "groups": row["groups"] or [],
            "error": row["error"]}


def run_scan(scan_id: int) -> None:
    """Job: group the rule's match objects' records into duplicate groups.
    Reads every record in the window once, in id order, through the record
    service as the system; groups by the conditions' keys, and for fuzzy
    company names clusters each prefix bucket by similarity."""
    runtime = current_runtime()
    s = duplicate_scans
    with runtime.db.write() as conn:
        rule_name = conn.execute(sa.select(s.c.rule).where(s.c.id == scan_id)).scalar_one()
        conn.execute(sa.update(s).where(s.c.id == scan_id).values(status="running"))
    try:
        with runtime.db.read() as conn:
            rule = get_rule(runtime.cache.current(conn), rule_name)
        groups, scanned = _scan(runtime, rule)
        values = dict(status="done", groups=groups, scanned=scanned)
    except Exception as exc:  # the job records why it failed instead of vanishing
        values = dict(status="failed", error=f"{type(exc).__name__}: {exc}")
    with runtime.db.write() as conn:
        conn.execute(sa.update(s).where(s.c.id == scan_id).values(finished_at=utcnow(), **values))


def _scan_given_up(reason: str, scan_id: int) -> None:
    runtime = current_runtime()
    with runtime.db.write() as conn:
        conn.execute(sa.update(duplicate_scans).where(duplicate_scans.c.id == scan_id).values(
            status="failed", error=reason[:2000], finished_at=utcnow()))


run_scan.give_up = _scan_given_up
run_scan.job_label = "Duplicate scan"


def _scan(runtime, rule: Rule) -> tuple[list[dict], int]:
    reg = runtime.cache.current()
    fuzzy = next((c for c in rule.conditions if c.fuzzy), None)
    buckets: dict[tuple, list[tuple[str, int, str | None]]] = {}
    scanned = 0
    for target in rule.match_objects:
        obj = reg.objects.get(target)
        if obj is None:
            continue
        fields = ["id"] + [c.field for c in rule.conditions]
        last = 0
        while True:
            tree = [{"field": "id", "op": "gt", "value": last}]
            if rule.window_months:
                tree.append({"field": "created_at", "op": "gte",
                             "value": months_ago(utcnow(), rule.window_months).isoformat()})
            if "status" in obj.fields:
                tree.append({"field": "status", "op": "ne", "value": "invalid"})
            page = runtime.records.query(SYSTEM, target, QuerySpec(
                filter=tree, fields=list(dict.fromkeys(fields)), sort=["id"], page_size=SCAN_PAGE))["records"]
            for rec in page:
                keys = rule.keys(rec)
                if any(k is None for k in keys):
                    continue
                core = nz.company_core(rec.get("company")) if fuzzy else None
                buckets.setdefault(keys, []).append((target, rec["id"], core))
            scanned += len(page)
            if len(page) < SCAN_PAGE:
                break
            last = page[-1]["id"]
    groups = []
    for keys, members in buckets.items():
        if len(members) < 2:
            continue
        for cluster in (_clusters(members, fuzzy.threshold) if fuzzy else [members]):
            if len(cluster) >= 2 and len(groups) < SCAN_GROUPS:
                groups.append({"key": [str(k) for k in keys],
                               "records": [{"object": o, "id": i} for o, i, _c in cluster[:100]],
                               "size": len(cluster)})
    groups.sort(key=lambda g: -g["size"])
    return groups, scanned


def _clusters(members: list[tuple[str, int, str | None]], threshold: int) -> list[list]:
    """Single-linkage clusters of one prefix bucket by name similarity."""
    parent = list(range(len(members)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i
    for i in range(len(members)):
        for j in range(i + 1, len(members)):
            if root(i) != root(j) and nz.similarity(members[i][2], members[j][2]) >= threshold:
                parent[root(j)] = root(i)
    out: dict[int, list] = {}
    for i, m in enumerate(members):
        out.setdefault(root(i), []).append(m)
    return list(out.values())
