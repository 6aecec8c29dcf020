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
from dataclasses import dataclass
from typing import Any

import marshmallow as mm
import sqlalchemy as sa

from leadhub.data.query import QueryCompiler, QuerySpec
from leadhub.platform import permissions
from leadhub.platform.db import in_values, utcnow
from leadhub.platform.errors import BadRequest
from leadhub.platform.permissions import Actor
from leadhub.plugins.lead import normalise as nz
from leadhub.plugins.lead.duplicate_rules import OBJECT, Rule, get_rule, load_rules

SYSTEM = Actor.system()
CANDIDATES = 200
MAX_MATCHES = 20
# lead fields collect never copies onto the original
NOT_COLLECTED = {"status", "invalid_reason", "owner", "name"}


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
    draft: int | None = None       # an earlier lead of the same write (id None until inserted)


def months_ago(now: dt.datetime, months: int) -> dt.datetime:
    month0 = now.year * 12 + now.month - 1 - months
    year, month = divmod(month0, 12)
    day = min(now.day, [31, 29 if year % 4 == 0 and (year % 100 or year % 400 == 0) else 28, 31, 30, 31, 30,
                        31, 31, 30, 31, 30, 31][month])
    return now.replace(year=year, month=month + 1, day=day)


def find(runtime, rule: Rule, values: dict, exclude: dict[str, set[int]] | None = None,
         limit: int = MAX_MATCHES, *, conn=None, reg=None) -> list[Match]:
    """Records matching `values` under `rule`, the original first, as the
    system (all records, whatever the writer may read). `conn` and `reg`
    let a caller checking several rules share one connection and snapshot."""
    if conn is None:
        with runtime.db.read() as conn:
            return find_many(runtime, rule, [values], exclude, limit, conn=conn, reg=reg)[0]
    return find_many(runtime, rule, [values], exclude, limit, conn=conn, reg=reg)[0]


def find_many(runtime, rule: Rule, drafts: list[dict], exclude: dict[str, set[int]] | None = None,
              limit: int = MAX_MATCHES, *, conn, reg=None, keys: list[tuple] | None = None,
              shared: dict | None = None) -> list[list[Match]]:
    """The stored matches of each draft under `rule`, the original first, for
    all the drafts at once: per match object one indexed SELECT of the
    drafts' keys (compiled by the query compiler, plus a row-value IN on the
    condition columns), at most CANDIDATES per key, earliest first. Fuzzy
    rules fetch the bucket's names only, score them here, then read the
    few that pass. `keys`: the drafts' rule.keys, when the caller has them."""
    keys = keys or [rule.keys(v) for v in drafts]
    todo = [i for i, k in enumerate(keys) if all(p is not None for p in k)]
    out: list[list[Match]] = [[] for _ in drafts]
    if not todo:
        return out
    reg = reg or runtime.cache.current(conn)
    fuzzy = [c for c in rule.conditions if c.fuzzy]
    columns = [c.filter(None)["field"] for c in rule.conditions]
    wanted = sorted({keys[i] for i in todo}, key=str)
    for target in rule.match_objects:
        obj = reg.objects.get(target)
        if obj is None:
            continue
        skip = (exclude or {}).get(target, set())
        flagged = "is_duplicate" in obj.fields
        facts = ["owner", "created_at"] + (["is_duplicate"] if flagged else [])
        if fuzzy:   # score the bucket's distinct names, then read the records of those that pass
            threshold = min(c.threshold for c in fuzzy)
            names = _names(runtime, reg, conn, rule, target, columns, wanted, skip, shared)
            passed: dict[int, list[tuple[str, float]]] = {}
            for i in todo:
                core = nz.company_core(drafts[i].get("company"))
                for company_key, company in names.get(keys[i], ()):
                    score = nz.similarity(core, nz.core_of_key(company_key, company))
                    if score >= threshold:
                        passed.setdefault(i, []).append((company_key, score))
            wanted_names = sorted({(*keys[i], k) for i, hits in passed.items() for k, _s in hits}, key=str)
            rows = _candidates(runtime, reg, conn, rule, target, [*columns, "company_key"], wanted_names, facts,
                               skip) if wanted_names else {}
            for i, hits in passed.items():
                for company_key, score in hits:
                    out[i] += [_match(rule, target, rid, score, found)
                               for rid, found in rows.get((*keys[i], company_key), ())]
        else:
            rows = _candidates(runtime, reg, conn, rule, target, columns, wanted, facts, skip)
            for i in todo:
                out[i] += [_match(rule, target, rid, 100.0, found) for rid, found in rows.get(keys[i], ())]
    for i in todo:
        out[i] = sorted(out[i], key=_original_first)[:limit]
    return out


def _match(rule: Rule, target: str, rid: int, score: float, facts: dict) -> Match:
    return Match(rule, target, rid, facts["owner"], facts["created_at"], score, bool(facts.get("is_duplicate")))


def _candidates(runtime, reg, conn, rule: Rule, target: str, columns: list[str], wanted: list[tuple],
                fields: list[str], skip: set[int]) -> dict[tuple, list[tuple[int, dict]]]:
    """{keys: [(id, {field: value})]} of live records whose condition columns
    hold one of the `wanted` key tuples, at most CANDIDATES (+ the skipped)
    per key tuple, earliest first: a hot key cannot crowd out the others."""
    qc = QueryCompiler(reg, target, SYSTEM, runtime.records.timezone)
    select = list(dict.fromkeys(["id", *columns, *fields]))
    stmt, _count, cols = qc.compile(QuerySpec(filter=_live(reg, rule, target), fields=select), paged=False)
    exprs = [stmt.selected_columns[f"c{n}"].element for n in range(len(select))]
    keyed = [exprs[select.index(col)] for col in columns]
    ranked = stmt.where(in_values(keyed, wanted)).order_by(None).add_columns(sa.func.row_number().over(
        partition_by=keyed, order_by=[*qc.order_by(["created_at"]), exprs[0]]).label("rank")).subquery()
    stmt = sa.select(*[ranked.c[f"c{n}"] for n in range(len(select))]).where(ranked.c.rank <= CANDIDATES + len(skip))
    from_db = [fd.type.from_db for _name, fd in cols]
    key_at = [select.index(col) for col in columns]
    field_at = [(name, select.index(name)) for name in fields]
    out: dict[tuple, list[tuple[int, dict]]] = {}
    for row in conn.execute(stmt):
        if row[0] in skip:
            continue
        out.setdefault(tuple(from_db[n](row[n]) for n in key_at), []).append(
            (row[0], {name: from_db[n](row[n]) for name, n in field_at}))
    return out


def _names(runtime, reg, conn, rule: Rule, target: str, columns: list[str], wanted: list[tuple],
           skip: set[int], shared: dict | None = None) -> dict[tuple, list[tuple[str, str | None]]]:
    """{keys: [(company_key, a company name)]}: the distinct company names in
    the drafts' fuzzy buckets (several leads of one company are one name to
    score). With `shared` (several fuzzy rules checking one write), the
    buckets are read once, with every rule's other condition columns, and
    each rule takes its view of them."""
    if shared is None:
        return {k: list(v.items()) for k, v in
                _bucket_names(runtime, reg, conn, rule, target, columns, columns, wanted, skip).items()}
    group = ["company_prefix", *shared["extras"]]
    cached = shared["names"].get((target, rule.window_months, frozenset(skip)))
    if cached is None:
        cached = shared["names"][(target, rule.window_months, frozenset(skip))] = _bucket_names(
            runtime, reg, conn, rule, target, ["company_prefix"], group, [(p,) for p in shared["prefixes"]], skip)
    at = [group.index(col) for col in columns]
    out: dict[tuple, dict[str, str | None]] = {}
    for key, names in cached.items():
        out.setdefault(tuple(key[n] for n in at), {}).update(names)
    return {k: list(v.items()) for k, v in out.items()}


def _bucket_names(runtime, reg, conn, rule: Rule, target: str, match: list[str], group: list[str],
                  wanted: list[tuple], skip: set[int]) -> dict[tuple, dict[str, str | None]]:
    """{group values: {company_key: a company name}} of live records whose
    `match` columns hold one of `wanted`, at most CANDIDATES names per group,
    earliest first. Reads only what the plugin's company_bucket index covers."""
    qc = QueryCompiler(reg, target, SYSTEM, runtime.records.timezone)
    select = list(dict.fromkeys([*group, "company_key", "company", "created_at", "id"]))
    stmt, _count, cols = qc.compile(QuerySpec(filter=_live(reg, rule, target), fields=select), paged=False)
    exprs = [stmt.selected_columns[f"c{n}"].element for n in range(len(select))]
    stmt = stmt.where(in_values([exprs[select.index(col)] for col in match], wanted)).order_by(None)
    if skip:
        stmt = stmt.where(exprs[select.index("id")].not_in(sorted(skip)))
    rows = stmt.subquery()
    by = [rows.c[f"c{select.index(col)}"] for col in dict.fromkeys([*group, "company_key"])]
    first = sa.func.min(rows.c[f"c{select.index('created_at')}"])
    named = sa.select(*by, sa.func.min(rows.c[f"c{select.index('company')}"]).label("company"),
                      sa.func.row_number().over(partition_by=by[:len(group)], order_by=first).label("rank")
                      ).group_by(*by).subquery()
    stmt = sa.select(*[named.c[b.name] for b in by], named.c.company).where(named.c.rank <= CANDIDATES)
    from_db = {name: fd.type.from_db for name, fd in cols}
    key_at = list(dict.fromkeys([*group, "company_key"])).index("company_key")
    out: dict[tuple, dict[str, str | None]] = {}
    for row in conn.execute(stmt):
        out.setdefault(tuple(from_db[col](v) for col, v in zip(group, row)), {})[row[key_at]] = row[-1]
    return out


def _live(reg, rule: Rule, target: str) -> list | None:
    """The filter every candidate passes: inside the rule's window, not in quarantine."""
    tree = []
    if rule.window_months:
        tree.append({"field": "created_at", "op": "gte",
                     "value": months_ago(utcnow(), rule.window_months).isoformat()})
    if "status" in reg.get(target).fields:  # quarantined records are nobody's original
        tree.append({"field": "status", "op": "ne", "value": "invalid"})
    return tree or None


def _original_first(m: "Match"):
    # the original: a record not itself marked duplicate, then the earliest (two
    # concurrent writers may commit in the other order than their created_at)
    return (m.duplicate, m.created_at, m.object != m.rule.object, m.id or 0, m.draft or 0)


def lock_keys(conn, rules: list[Rule], drafts: list[dict], keys: dict[str, list[tuple]] | None = None) -> None:
    """PostgreSQL: hold a transaction advisory lock per rule on each draft's
    keys, so two writers of the same duplicate take turns (the second one's
    lookup runs after the first commits). A bulk write locks the keys of all
    its rows at once, sorted, so two bulk writes sharing keys queue instead
    of deadlocking; keys already held in this transaction are not taken again."""
    if conn.dialect.name != "postgresql":
        return
    # a savepoint rolled back releases its locks: what is held is kept per savepoint
    held = _tx_state(conn, "lead_dedupe_locks", lambda: {"keys": set(), "drafts": set()}, innermost=True)
    wanted = set()
    for i, values in enumerate(drafts):
        if id(values) in held["drafts"]:     # a batch's rows are locked once
            continue
        held["drafts"].add(id(values))
        for rule in rules:   # one lock per rule on all its keys: a duplicate shares every one
            parts = keys[rule.name][i] if keys else rule.keys(values)
            if all(p is not None for p in parts):
                wanted.add(f"dedupe:{rule.name}:" + "\x1f".join(map(str, parts)))
    todo = sorted(wanted - held["keys"])
    if todo:   # one round trip; unnest yields the sorted array in order
        conn.execute(sa.text("SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0))) "
                             "FROM unnest(CAST(:keys AS text[])) AS k"), {"keys": todo})
    held["keys"] |= wanted


def _rules(runtime, conn, reg=None) -> tuple[list[Rule], Any]:
    """The active rules and metadata, once per transaction (an import's
    batches each load them once)."""
    cached = _tx_state(conn, "lead_dedupe_rules", dict)
    if not cached:
        reg = reg or runtime.cache.current(conn)
        cached.update(rules=load_rules(reg), reg=reg)
    return cached["rules"], cached["reg"]


def first_match(runtime, conn, values: dict, exclude: dict[str, set[int]]) -> Match | None:
    """The deciding match of one stored lead (on release from quarantine)."""
    rules, reg = _rules(runtime, conn)
    lock_keys(conn, rules, [values])
    for rule in rules:
        found = find(runtime, rule, values, exclude, limit=1, conn=conn, reg=reg)
        if found:
            return found[0]
    return None


def match_batch(runtime, conn, reg, drafts: list[dict]) -> list[Match | None]:
    """The deciding match of each new lead of one write, before it is
    inserted: a stored record, or an earlier lead of the same write
    (Match.draft names it; its id comes with the insert). For each lead the
    rules run in order and the first that matches decides. One query per
    rule for the whole write."""
    rules, reg = _rules(runtime, conn, reg)
    if not rules or not drafts:
        return [None] * len(drafts)
    keys = {rule.name: [rule.keys(v) for v in drafts] for rule in rules}
    lock_keys(conn, rules, drafts, keys)
    now = utcnow()
    shared = None
    fuzzy_rules = [r for r in rules if any(c.fuzzy for c in r.conditions)]
    if len(fuzzy_rules) > 1:   # they read the same buckets: once, with all their other columns
        shared = {"names": {}, "prefixes": sorted({p for v in drafts if (p := nz.company_prefix(v.get("company")))}),
                  "extras": sorted({c.filter(None)["field"] for r in fuzzy_rules for c in r.conditions
                                    if not c.fuzzy} - {"company_prefix"})}
    stored = {rule.name: find_many(runtime, rule, drafts, limit=1, conn=conn, reg=reg, keys=keys[rule.name],
                                   shared=shared)
              for rule in rules}
    # earlier leads of this write, by each rule's keys
    earlier: dict[str, dict[tuple, list[int]]] = {}
    for rule in rules:
        index = earlier[rule.name] = {}
        if OBJECT in rule.match_objects:
            for i, k in enumerate(keys[rule.name]):
                if all(p is not None for p in k):
                    index.setdefault(k, []).append(i)
    decided: list[Match | None] = [None] * len(drafts)
    for j, draft in enumerate(drafts):
        for rule in rules:
            found = list(stored[rule.name][j])
            fuzzy = [c for c in rule.conditions if c.fuzzy]
            for i in earlier[rule.name].get(keys[rule.name][j], ()):
                if i >= j:
                    break
                score = 100.0
                if fuzzy:
                    score = nz.similarity(nz.company_core(draft.get("company")),
                                          nz.company_core(drafts[i].get("company")))
                    if score < min(c.threshold for c in fuzzy):
                        continue
                first = decided[i]
                found.append(Match(rule, OBJECT, None, drafts[i].get("owner"), now, score,
                                   first is not None and first.rule.action != "tag_only", draft=i))
            if found:
                decided[j] = min(found, key=_original_first)
                break
    return decided


def _consequences(runtime, match: Match, values: dict, lead_id: int) -> tuple[dict, dict]:
    """(read-only marks for a stored lead, writable changes for it) of a
    match, after running collect on the original (release from quarantine)."""
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
            _notify_routed(notify, match.owner, match, {**values, "id": lead_id}, match.id)
    return marks, changes


def _notify_routed(notify, owner: int, match: Match, values: dict, original_id: int) -> None:
    lead_id = values["id"]
    notify.send([owner], "lead.duplicate_routed",
                f"Duplicate lead routed to you: {values.get('name') or lead_id}",
                body=f"Rule {match.rule.name} matched it to your {match.object} #{original_id}.",
                link=f"/o/lead/{lead_id}",
                data={"lead": lead_id, "original": original_id, "object": match.object, "rule": match.rule.name})


def _collected(reg, target: str, original: dict, values: dict) -> dict:
    """归集: the new lead's non-empty values the original lacks or has differently."""
    obj = reg.get(target)
    writable = set(reg.schema(target).fields)
    source = reg.get(OBJECT)
    payload = {}
    for name, value in values.items():
        fd = source.fields.get(name)
        if (fd is None or fd.system or not fd.writable or name in NOT_COLLECTED or name not in writable
                or value in (None, "", []) or name not in obj.fields or original.get(name) == value):
            continue
        payload[name] = value
    return payload


def _collect(runtime, match: Match, values: dict) -> None:
    """Collect into a stored original, through the record service."""
    original = runtime.records.get(SYSTEM, match.object, match.id)
    payload = _collected(runtime.cache.current(), match.object, original, values)
    if payload:
        runtime.records.update(SYSTEM, match.object, match.id, payload)


def _collect_into(reg, target: str, original: dict, values: dict) -> None:
    """Collect into an earlier lead of the same write: it is not stored yet,
    so it is inserted with the values."""
    original.update(_collected(reg, target, original, values))


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


def register(runtime) -> None:
    """Subscribe this part's event handlers."""
    def before_insert(events):
        for ev in events:
            _keys(ev.values)
            if ev.values.get("is_duplicate") is None:
                ev.values["is_duplicate"] = False
        live = [ev for ev in events if not ev.values.get("quarantined_at")]
        if not live:
            return
        conn = live[0].conn
        decided = match_batch(runtime, conn, live[0].registry, [ev.values for ev in live])
        after = _tx_state(conn, "lead_dedupe_after", list)
        for ev, match in zip(live, decided):
            if match is None:
                continue
            rule, values = match.rule, ev.values
            original = live[match.draft].values if match.draft is not None else None
            values.update(duplicate_rule=rule.name, is_duplicate=rule.action != "tag_only",
                          duplicate_of=match.id if match.object == OBJECT else None)
            if rule.action == "collect":
                if original is not None:
                    _collect_into(live[0].registry, OBJECT, original, values)
                else:
                    _collect(runtime, match, values)
            routed = None
            if rule.action == "route":
                owner = original.get("owner") if original is not None else match.owner
                if owner is not None and owner != values.get("owner"):
                    values["owner"] = routed = owner
            if original is not None or routed is not None:
                after.append((values, match, original, routed))   # needs the new ids

    def after_insert(events):
        after = _tx_state(events[0].conn, "lead_dedupe_after", list)
        if not after:
            return
        mine = {id(ev.values) for ev in events}
        todo = [entry for entry in after if id(entry[0]) in mine]
        after[:] = [entry for entry in after if id(entry[0]) not in mine]
        links = {values["id"]: {"duplicate_of": original["id"]} for values, _m, original, _r in todo
                 if original is not None}
        if links:   # a duplicate of an earlier lead of the same write: its id is known now
            runtime.records.bulk_update(SYSTEM, OBJECT, [{"id": rid} for rid in links], system=links)
            for values, _m, original, _r in todo:
                if original is not None:
                    values["duplicate_of"] = original["id"]
        notify = getattr(runtime, "notifications", None)
        for values, match, original, routed in todo:
            if routed is not None and notify is not None:
                _notify_routed(notify, routed, match, values, original["id"] if original is not None else match.id)

    def before_update(ev):
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

    runtime.events.subscribe("before_insert", before_insert, object=OBJECT, batch=True)
    runtime.events.subscribe("after_insert", after_insert, object=OBJECT, batch=True)
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
        rules = load_rules(reg, object_name)
        if rule_name is not None:
            rules = [r for r in rules if r.name == rule_name] or [get_rule(reg, rule_name)]
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


