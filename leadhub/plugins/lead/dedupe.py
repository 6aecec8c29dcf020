"""Duplicate checks (查重) as metadata: rules an admin builds
(duplicate_rules.py), run on every new lead, on release from quarantine and
on demand (the check endpoint); duplicate_scan.py scans existing data.

A rule: conditions that must all match (one condition is the ToC case:
mobile, WeChat id, e-mail; several the ToB case: company name AND city),
each with a normaliser (e164, lower, company_name, exact) and, for company
names, an optional fuzzy threshold (50-100: the trade names' similarity,
normalise.similarity, must reach it; 85 is a sound value: it joins
北京纷扬科技有限公司, 纷扬科技 and 北京纷扬 (100) and keeps 纷扬星空 (67) apart;
without a threshold company names must have the same company_key); the objects it matches against; a time
window in months; an action. Active rules run in id order and the first
rule that matches decides; the earliest-created match is "the original".

Actions:
  mark      is_duplicate, duplicate_of, duplicate_rule set on the new lead
  collect   (归集) as mark, and the original is updated with the new lead's
            non-empty values
  route     as mark, and the new lead goes to the original's owner, who is
            notified; when the original has no owner the new lead keeps the
            owner its write path gave it (none for web forms and system
            imports: left for assignment)
  tag_only  duplicate_of and duplicate_rule set, not flagged as duplicate

Lookups stay indexed: each condition is an equality on an indexed column
(company names: `company_key`, or for fuzzy rules the 2-character
`company_prefix` bucket, scored in Python with normalise.similarity). A
condition whose value is empty never matches. Candidates per rule are
capped at CANDIDATES, earliest first.

The check runs after the insert, so rows of the same bulk write see each
other (later rows of the batch are excluded until their own turn, so the
first row stays the original). On PostgreSQL a transaction-scoped advisory
lock per rule on the draft's keys serialises two writers of the same duplicate:
the second one's lookup runs after the first commits and finds it. SQLite
serialises writers anyway (BEGIN IMMEDIATE)."""
from __future__ import annotations

import datetime as dt
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import marshmallow as mm
import sqlalchemy as sa

from leadhub.platform import permissions
from leadhub.platform.db import utcnow
from leadhub.platform.errors import BadRequest
from leadhub.platform.permissions import Actor
from leadhub.platform.query import QueryCompiler, QuerySpec
from leadhub.plugins.lead import normalise as nz
from leadhub.plugins.lead.duplicate_rules import OBJECT, Rule, get_rule, load_rules

SYSTEM = Actor.system()
CANDIDATES = 200
MAX_MATCHES = 20
# lead fields collect never copies onto the original
NOT_COLLECTED = {"status", "invalid_reason", "owner", "name"}

# {lead id: read-only values} the next update of that lead writes (see after_insert below)
_pending: ContextVar[dict[int, dict] | None] = ContextVar("lead_dedupe_pending", default=None)


# ---------------------------------------------------------------- matching
@dataclass
class Match:
    rule: Rule
    object: str
    id: int
    owner: int | None
    created_at: dt.datetime
    score: float
    duplicate: bool = False


def months_ago(now: dt.datetime, months: int) -> dt.datetime:
    month0 = now.year * 12 + now.month - 1 - months
    year, month = divmod(month0, 12)
    day = min(now.day, [31, 29 if year % 4 == 0 and (year % 100 or year % 400 == 0) else 28, 31, 30, 31, 30,
                        31, 31, 30, 31, 30, 31][month])
    return now.replace(year=year, month=month + 1, day=day)


def find(runtime, rule: Rule, values: dict, exclude: dict[str, set[int]] | None = None,
         limit: int = MAX_MATCHES, *, conn=None, reg=None) -> list[Match]:
    """Records matching `values` under `rule`, the original first, as the
    system (all records, whatever the writer may read). One indexed SELECT
    per match object, compiled by the query compiler. `conn` and `reg`
    let a caller checking several rules share one connection and snapshot."""
    keys = [c.key(values) for c in rule.conditions]
    if any(k is None for k in keys):
        return []
    if conn is None:
        with runtime.db.read() as conn:
            return find(runtime, rule, values, exclude, limit, conn=conn, reg=reg)
    reg = reg or runtime.cache.current(conn)
    fuzzy = [c for c in rule.conditions if c.fuzzy]
    draft_core = nz.company_core(values.get("company")) if fuzzy else None
    out: list[Match] = []
    for target in rule.match_objects:
        obj = reg.objects.get(target)
        if obj is None:
            continue
        tree = [c.filter(k) for c, k in zip(rule.conditions, keys)]
        if rule.window_months:
            tree.append({"field": "created_at", "op": "gte",
                         "value": months_ago(utcnow(), rule.window_months).isoformat()})
        if "status" in obj.fields:  # quarantined records are nobody's original
            tree.append({"field": "status", "op": "ne", "value": "invalid"})
        # excluded ids (this record, later rows of its bulk write) are dropped
        # here rather than in SQL: a long NOT IN costs more than a few extra rows
        skip = (exclude or {}).get(target, set())
        flagged = "is_duplicate" in obj.fields
        fields = (["id", "owner", "created_at"] + (["company", "company_key"] if fuzzy else [])
                  + (["is_duplicate"] if flagged else []))
        stmt, _count, cols = QueryCompiler(reg, target, SYSTEM, runtime.records.timezone).compile(
            QuerySpec(filter=tree, fields=fields, sort=["created_at"], page_size=CANDIDATES + len(skip)))
        for row in conn.execute(stmt):
            rec = {name: fd.type.from_db(v) for (name, fd), v in zip(cols, row)}
            if rec["id"] in skip:
                continue
            score = 100.0
            if fuzzy:
                score = nz.similarity(draft_core, nz.core_of_key(rec.get("company_key"), rec.get("company")))
                if score < min(c.threshold for c in fuzzy):
                    continue
            out.append(Match(rule, target, rec["id"], rec["owner"], rec["created_at"], score,
                             bool(rec.get("is_duplicate"))))
    # the original: a record not itself marked duplicate, then the earliest (two
    # concurrent writers may commit in the other order than their created_at)
    out.sort(key=lambda m: (m.duplicate, m.created_at, m.object != rule.object, m.id))
    return out[:limit]


def lock_keys(conn, rules: list[Rule], drafts: list[dict]) -> None:
    """PostgreSQL: hold a transaction advisory lock per rule on each draft's
    keys, so two writers of the same duplicate take turns (the second one's
    lookup runs after the first commits). A bulk write locks the keys of all
    its rows at once, sorted, so two bulk writes sharing keys queue instead
    of deadlocking; keys already held in this transaction are not taken again."""
    if conn.dialect.name != "postgresql":
        return
    # a savepoint rolled back releases its locks: what is held is kept per savepoint
    held = _tx_state(conn, "lead_dedupe_locks", lambda: {"keys": set(), "drafts": set()}, innermost=True)
    drafts = [v for v in drafts if id(v) not in held["drafts"]]   # a batch's rows are locked once
    keys = set()
    for values in drafts:
        held["drafts"].add(id(values))
        for rule in rules:   # one lock per rule on all its keys: a duplicate shares every one
            parts = [c.key(values) for c in rule.conditions]
            if all(p is not None for p in parts):
                keys.add(f"dedupe:{rule.name}:" + "\x1f".join(map(str, parts)))
    todo = sorted(keys - held["keys"])
    if todo:   # one round trip; unnest yields the sorted array in order
        conn.execute(sa.text("SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0))) "
                             "FROM unnest(CAST(:keys AS text[])) AS k"), {"keys": todo})
    held["keys"] |= keys


def first_match(runtime, conn, values: dict, exclude: dict[str, set[int]],
                batch: list[dict] = ()) -> Match | None:
    # rules and metadata once per transaction: a bulk write checks many rows
    cached = _tx_state(conn, "lead_dedupe_rules", dict)
    if not cached:
        cached.update(rules=load_rules(conn), reg=runtime.cache.current(conn))
    rules, reg = cached["rules"], cached["reg"]
    if not rules:
        return None
    lock_keys(conn, rules, [values, *batch])
    for rule in rules:
        found = find(runtime, rule, values, exclude, limit=1, conn=conn, reg=reg)
        if found:
            return found[0]
    return None


def _consequences(runtime, match: Match, values: dict, lead_id: int) -> tuple[dict, dict]:
    """(read-only marks for the new lead, writable changes for it) of a
    match, after running collect on the original."""
    rule = match.rule
    marks = {"duplicate_rule": rule.name,
             "duplicate_of": match.id if match.object == OBJECT else None,
             "is_duplicate": rule.action != "tag_only"}
    changes: dict = {}
    if rule.action == "collect":
        _collect(runtime, match, values)
    if rule.action == "route" and match.owner is not None and match.owner != values.get("owner"):
        changes["owner"] = match.owner
        notify = getattr(runtime, "notifications", None)
        if notify is not None:
            notify.send([match.owner], "lead.duplicate_routed",
                        f"Duplicate lead routed to you: {values.get('name') or lead_id}",
                        body=f"Rule {rule.name} matched it to your {match.object} #{match.id}.",
                        link=f"/o/lead/{lead_id}",
                        data={"lead": lead_id, "original": match.id, "object": match.object, "rule": rule.name})
    return marks, changes


def _collect(runtime, match: Match, values: dict) -> None:
    """归集: the original takes the new lead's non-empty values it lacks or has differently."""
    reg = runtime.cache.current()
    target = reg.get(match.object)
    writable = set(reg.schema(match.object).fields)
    original = runtime.records.get(SYSTEM, match.object, match.id)
    source = reg.get(OBJECT)
    payload = {}
    for name, value in values.items():
        fd = source.fields.get(name)
        if (fd is None or fd.system or not fd.writable or name in NOT_COLLECTED or name not in writable
                or value in (None, "", []) or name not in target.fields or original.get(name) == value):
            continue
        payload[name] = value
    if payload:
        runtime.records.update(SYSTEM, match.object, match.id, payload)


# ---------------------------------------------------------------- handlers
def _tx_state(conn, name: str, make, *, innermost: bool = False):
    """Per-transaction state kept on the connection (reset by a new
    transaction; with innermost, by a new savepoint too)."""
    tx = (conn.get_nested_transaction() if innermost else None) or conn.get_transaction()
    state = conn.info.get(name)
    if state is None or state[0] is not tx:
        state = (tx, make())
        conn.info[name] = state
    return state[1]


def _batch(conn) -> list[dict]:
    """The values of leads inserted in this transaction whose check has not
    run yet (rows of one bulk write are inserted before any after_insert)."""
    return _tx_state(conn, "lead_dedupe_batch", list)


def register(runtime) -> None:
    """Subscribe this part's event handlers and scheduled sweeps."""
    def before_insert(ev):
        _keys(ev.values)
        ev.values.setdefault("is_duplicate", False)
        if ev.values["is_duplicate"] is None:
            ev.values["is_duplicate"] = False
        _batch(ev.conn).append(ev.values)

    def after_insert(ev):
        batch = _batch(ev.conn)
        batch[:] = [v for v in batch if v is not ev.values]
        if ev.values.get("quarantined_at"):
            return
        later = {v["id"] for v in batch if "id" in v}
        match = first_match(runtime, ev.conn, ev.values, {OBJECT: later | {ev.record_id}},
                            batch=[v for v in batch if not v.get("quarantined_at")])
        if match is None:
            return
        marks, changes = _consequences(runtime, match, ev.values, ev.record_id)
        token = _pending.set({ev.record_id: marks})
        try:
            runtime.records.update(SYSTEM, OBJECT, ev.record_id, changes)
        finally:
            _pending.reset(token)
        ev.values.update(marks, **changes)

    def before_update(ev):
        pending = _pending.get()
        if pending and ev.record_id in pending:
            ev.values.update(pending.pop(ev.record_id))
            return
        # keys follow the company; a lead written before the keys existed gets
        # them on its next update (a bulk update of ids with no changes backfills)
        if ev.changed("company") or (ev.values.get("company") and not ev.values.get("company_key")):
            _keys(ev.values)
        old = ev.old
        released = old.get("quarantined_at") and old.get("status") == "invalid" and ev.values.get("status") != "invalid"
        if released and not ev.values.get("duplicate_rule"):
            match = first_match(runtime, ev.conn, ev.values, {OBJECT: {ev.record_id}})
            if match is not None:
                marks, changes = _consequences(runtime, match, ev.values, ev.record_id)
                ev.values.update(marks, **changes)

    runtime.events.subscribe("before_insert", before_insert, object=OBJECT)
    runtime.events.subscribe("after_insert", after_insert, object=OBJECT)
    runtime.events.subscribe("before_update", before_update, object=OBJECT)


def _keys(values: dict) -> None:
    values["company_key"] = nz.company_key(values.get("company"))
    values["company_prefix"] = nz.company_prefix(values.get("company"))


# ---------------------------------------------------------------- on demand
def check_draft(runtime, actor: Actor, object_name: str, draft: Any, rule_name: str | None = None) -> dict:
    """Matches of a draft record (before save) under the object's active
    rules. Found as the system, revealed only where `actor` may read them."""
    permissions.require(actor, object_name, "read")
    if not isinstance(draft, dict):
        raise BadRequest("The draft record must be a JSON object.", {"record": "Must be an object."})
    reg = runtime.cache.current()
    obj = reg.get(object_name)
    fields = reg.schema(object_name).fields
    values, errors = {}, {}
    exclude: set[int] = set()
    for key, raw in draft.items():
        if key == "id":
            if isinstance(raw, int) and not isinstance(raw, bool):
                exclude.add(raw)
            else:
                errors["id"] = "Must be the record's integer id."
            continue
        if key not in fields:
            errors[key] = "This field is read-only." if key in obj.fields else "Unknown field."
            continue
        try:
            values[key] = fields[key].deserialize(raw, key, draft)
        except mm.ValidationError as exc:
            errors[key] = " ".join(exc.messages) if isinstance(exc.messages, list) else str(exc.messages)
    if errors:
        raise BadRequest("Invalid draft: " + "; ".join(f"{k}: {v}" for k, v in errors.items()), errors)
    with runtime.db.read() as conn:
        rules = load_rules(conn, object_name)
        if rule_name is not None:
            rules = [r for r in rules if r.name == rule_name] or [get_rule(conn, rule_name)]
        found = [m for rule in rules
                 for m in find(runtime, rule, values, {object_name: exclude}, conn=conn, reg=reg)]
    readable = _readable(runtime, actor, found)
    matches = [{"rule": m.rule.name, "action": m.rule.action, "object": m.object, "id": m.id,
                "score": round(m.score, 1), "record": readable[(m.object, m.id)]}
               for m in found if (m.object, m.id) in readable]
    return {"duplicate": bool(matches), "matches": matches}


def _readable(runtime, actor: Actor, matches: list[Match]) -> dict[tuple[str, int], dict]:
    """The matched records `actor` may read, through the record service (scope applies)."""
    out = {}
    reg = runtime.cache.current()
    by_object: dict[str, set[int]] = {}
    for m in matches:
        by_object.setdefault(m.object, set()).add(m.id)
    for name, ids in by_object.items():
        if "read" not in actor.rights(name).actions:
            continue
        obj = reg.get(name)
        wanted = ["id", obj.name_field, "company", "mobile", "email", "wechat", "city", "owner", "status",
                  "created_at"]
        fields = [f for f in dict.fromkeys(wanted) if f and f in obj.fields and permissions.visible(actor, name, f)]
        spec = QuerySpec(filter={"field": "id", "op": "in", "value": sorted(ids)}, fields=fields,
                         page_size=len(ids))
        for rec in runtime.records.query(actor, name, spec)["records"]:
            out[(name, rec["id"])] = rec
    return out


def blueprints() -> list:
    """Flask blueprints this part serves (the intake API is served by cleaning)."""
    return []
