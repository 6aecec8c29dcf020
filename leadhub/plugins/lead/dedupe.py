"""Duplicate checks (查重) as metadata: rules an admin builds, run on every
new lead, on release from quarantine, on demand (the check endpoint) and as
a background scan.

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
from leadhub.platform.errors import BadRequest, Conflict, NotFound
from leadhub.platform.jobs import current_runtime
from leadhub.platform.permissions import Actor
from leadhub.platform.query import QueryCompiler, QuerySpec
from leadhub.plugins.lead import normalise as nz
from leadhub.plugins.lead.intake_tables import duplicate_rules, duplicate_scans

OBJECT = "lead"
SYSTEM = Actor.system()
NORMALISERS = ("e164", "lower", "company_name", "exact")
ACTIONS = ("mark", "collect", "route", "tag_only")
CANDIDATES = 200
MAX_MATCHES = 20
# lead fields collect never copies onto the original
NOT_COLLECTED = {"status", "invalid_reason", "owner", "name"}
SCAN_GROUPS = 1000
SCAN_PAGE = 2000

# {lead id: read-only values} written by the next update of that lead (see _mark)
_pending: ContextVar[dict[int, dict] | None] = ContextVar("lead_dedupe_pending", default=None)


# ---------------------------------------------------------------- rules
@dataclass(frozen=True)
class Condition:
    field: str
    normaliser: str
    threshold: int | None = None

    @property
    def fuzzy(self) -> bool:
        return self.normaliser == "company_name" and self.threshold is not None

    def key(self, values: dict) -> Any:
        """The draft's normalised value to look up, or None (never matches)."""
        raw = values.get(self.field)
        if raw in (None, ""):
            return None
        if self.normaliser == "e164":
            return nz.e164(str(raw))
        if self.normaliser == "lower":
            return nz.fold(str(raw))
        if self.normaliser == "company_name":
            return nz.company_prefix(str(raw)) if self.fuzzy else nz.company_key(str(raw))
        return raw

    def filter(self, key: Any) -> dict:
        column = self.field
        if self.normaliser == "company_name":
            column = "company_prefix" if self.fuzzy else "company_key"
        return {"field": column, "op": "eq", "value": key}


@dataclass(frozen=True)
class Rule:
    name: str
    label: str | None
    active: bool
    object: str
    match_objects: tuple[str, ...]
    conditions: tuple[Condition, ...]
    window_months: int | None
    action: str
    id: int | None = None

    @classmethod
    def from_row(cls, row) -> "Rule":
        return cls(id=row["id"], name=row["name"], label=row["label"], active=row["active"], object=row["object"],
                   match_objects=tuple(row["match_objects"]), window_months=row["window_months"],
                   action=row["action"], conditions=tuple(Condition(**c) for c in row["conditions"]))

    def to_api(self) -> dict:
        return {"id": self.id, "name": self.name, "label": self.label, "active": self.active, "object": self.object,
                "match_objects": list(self.match_objects), "window_months": self.window_months,
                "action": self.action, "conditions": [
                    {"field": c.field, "normaliser": c.normaliser, "threshold": c.threshold} for c in self.conditions]}


class ConditionSchema(mm.Schema):
    class Meta:
        unknown = mm.RAISE
    field = mm.fields.String(required=True)
    normaliser = mm.fields.String(required=True, validate=mm.validate.OneOf(NORMALISERS))
    threshold = mm.fields.Integer(strict=True, allow_none=True, load_default=None,
                                  validate=mm.validate.Range(50, 100))


class RuleSchema(mm.Schema):
    class Meta:
        unknown = mm.RAISE
    name = mm.fields.String(required=True, validate=mm.validate.Regexp(
        r"^[a-z][a-z0-9_]{1,39}$", error="Use 2-40 lower-case letters, digits and _; start with a letter."))
    label = mm.fields.String(allow_none=True, load_default=None, validate=mm.validate.Length(max=100))
    active = mm.fields.Boolean(load_default=True)
    object = mm.fields.String(load_default=OBJECT)
    match_objects = mm.fields.List(mm.fields.String(), load_default=None,
                                   validate=mm.validate.Length(1, 5))
    conditions = mm.fields.List(mm.fields.Nested(ConditionSchema), required=True,
                                validate=mm.validate.Length(1, 5))
    window_months = mm.fields.Integer(strict=True, allow_none=True, load_default=None,
                                      validate=mm.validate.Range(1, 120))
    action = mm.fields.String(load_default="mark", validate=mm.validate.OneOf(ACTIONS))


def _flatten(messages: Any, prefix: str = "") -> dict[str, str]:
    """marshmallow's nested messages as {"conditions.0.field": "..."}."""
    if isinstance(messages, dict):
        out = {}
        for k, v in messages.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return {prefix or "body": " ".join(messages)}
    return {prefix or "body": str(messages)}


def validate_rule(reg, payload: Any, partial_of: Rule | None = None) -> Rule:
    """A Rule from a payload, or a 400 naming each bad field."""
    if not isinstance(payload, dict):
        raise BadRequest("A duplicate rule is a JSON object.", {"body": "Must be an object."})
    if partial_of is not None:
        if "name" in payload and payload["name"] != partial_of.name:
            raise BadRequest("A rule's name cannot change.", {"name": "Cannot change."})
        payload = {**partial_of.to_api(), **payload}
        payload.pop("id", None)
    try:
        data = RuleSchema().load(payload)
    except mm.ValidationError as exc:
        fields = _flatten(exc.normalized_messages())
        raise BadRequest("Invalid duplicate rule: " + "; ".join(f"{k}: {v}" for k, v in fields.items()),
                         fields) from None
    errors: dict[str, str] = {}
    if data["object"] not in reg.objects:
        errors["object"] = f"No object '{data['object']}'."
    elif data["object"] != OBJECT:
        errors["object"] = "Duplicate checks run on new leads: object must be 'lead'."
    matches = data["match_objects"] or [data["object"]]
    for i, name in enumerate(matches):
        if name not in reg.objects:
            errors[f"match_objects.{i}"] = f"No object '{name}'."
    if len(set(matches)) != len(matches):
        errors["match_objects"] = "An object is named twice."
    seen = set()
    unindexed: dict[int, str] = {}
    for i, cond in enumerate(data["conditions"]):
        where = f"conditions.{i}"
        field, norm = cond["field"], cond["normaliser"]
        if field in seen:
            errors[f"{where}.field"] = f"'{field}' is already a condition of this rule."
        seen.add(field)
        if cond["threshold"] is not None and norm != "company_name":
            errors[f"{where}.threshold"] = "A similarity threshold applies to the company_name normaliser only."
        for obj_name in [data["object"]] + [m for m in matches if m in reg.objects]:
            if data["object"] not in reg.objects:
                break
            msg = _field_problem(reg.objects[obj_name], field, norm)
            if msg:
                errors.setdefault(f"{where}.field", msg)
            elif not _indexed(reg.objects[obj_name], field, norm):
                unindexed.setdefault(i, f"{obj_name}.{field} is not indexed")
    # the database finds candidates through one index and filters the rest
    if data["conditions"] and len(unindexed) == len(data["conditions"]) and not errors:
        errors["conditions.0.field"] = (f"No condition is on an indexed field ({'; '.join(unindexed.values())}): "
                                        "mark one indexed so duplicate checks stay fast.")
    if errors:
        raise BadRequest("Invalid duplicate rule: " + "; ".join(f"{k}: {v}" for k, v in errors.items()), errors)
    return Rule(name=data["name"], label=data["label"], active=data["active"], object=data["object"],
                match_objects=tuple(matches), window_months=data["window_months"], action=data["action"],
                conditions=tuple(Condition(c["field"], c["normaliser"], c["threshold"]) for c in data["conditions"]),
                id=partial_of.id if partial_of else None)


def _field_problem(obj, field: str, norm: str) -> str | None:
    fd = obj.fields.get(field)
    if fd is None or fd.system:
        return f"No field '{field}' on {obj.api_name}."
    if fd.type.computed:
        return f"{obj.api_name}.{field} is computed; match on stored fields."
    if norm == "e164" and fd.type_name != "phone":
        return f"e164 applies to phone fields; {obj.api_name}.{field} is {fd.type_name}."
    if norm == "lower" and fd.type_name not in ("text", "email"):
        return f"lower applies to text and e-mail fields; {obj.api_name}.{field} is {fd.type_name}."
    if norm == "company_name":
        if fd.type_name != "text":
            return f"company_name applies to text fields; {obj.api_name}.{field} is {fd.type_name}."
        keys = [obj.fields.get(k) for k in ("company_key", "company_prefix")]
        if field != "company" or not all(k is not None and k.indexed for k in keys):
            return (f"company_name needs the indexed company_key/company_prefix columns, which "
                    f"{obj.api_name} keeps for its 'company' field only.")
    return None


def _indexed(obj, field: str, norm: str) -> bool:
    if norm == "company_name":
        return True     # company_key / company_prefix, checked above
    fd = obj.fields[field]
    return bool(fd.indexed or fd.unique or fd.type_name in ("lookup", "master_detail", "user"))


def load_rules(conn, object_name: str = OBJECT, active_only: bool = True) -> list[Rule]:
    r = duplicate_rules
    stmt = sa.select(r).where(r.c.object == object_name).order_by(r.c.id)
    if active_only:
        stmt = stmt.where(r.c.active.is_(True))
    return [Rule.from_row(row) for row in conn.execute(stmt).mappings()]


def get_rule(conn, name: str) -> Rule:
    row = conn.execute(sa.select(duplicate_rules).where(duplicate_rules.c.name == name)).mappings().first()
    if row is None:
        raise NotFound(f"No duplicate rule '{name}'.")
    return Rule.from_row(row)


def _rule_row(rule: Rule) -> dict:
    data = rule.to_api()
    data.pop("id")
    return data


def create_rule(runtime, actor: Actor, payload: Any) -> Rule:
    permissions.require_admin(actor)
    with runtime.db.write() as conn:
        rule = validate_rule(runtime.cache.current(conn), payload)
        if conn.execute(sa.select(duplicate_rules.c.id).where(duplicate_rules.c.name == rule.name)).first():
            raise Conflict(f"A duplicate rule '{rule.name}' already exists.", {"name": "Already taken."})
        now = utcnow()
        conn.execute(duplicate_rules.insert().values(**_rule_row(rule), created_at=now, updated_at=now))
        return get_rule(conn, rule.name)


def update_rule(runtime, actor: Actor, name: str, payload: Any) -> Rule:
    permissions.require_admin(actor)
    with runtime.db.write() as conn:
        rule = validate_rule(runtime.cache.current(conn), payload, partial_of=get_rule(conn, name))
        conn.execute(sa.update(duplicate_rules).where(duplicate_rules.c.name == name)
                     .values(**_rule_row(rule), updated_at=utcnow()))
        return get_rule(conn, name)


def delete_rule(runtime, actor: Actor, name: str) -> None:
    permissions.require_admin(actor)
    with runtime.db.write() as conn:
        get_rule(conn, name)
        conn.execute(sa.delete(duplicate_scans).where(duplicate_scans.c.rule == name))
        conn.execute(sa.delete(duplicate_rules).where(duplicate_rules.c.name == name))


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
        skip = sorted((exclude or {}).get(target, ()))
        if skip:
            tree.append({"field": "id", "op": "not_in", "value": skip})
        flagged = "is_duplicate" in obj.fields
        fields = (["id", "owner", "created_at"] + (["company", "company_key"] if fuzzy else [])
                  + (["is_duplicate"] if flagged else []))
        stmt, _count, cols = QueryCompiler(reg, target, SYSTEM, runtime.records.timezone).compile(
            QuerySpec(filter=tree, fields=fields, sort=["created_at"], page_size=CANDIDATES))
        for row in conn.execute(stmt):
            rec = {name: fd.type.from_db(v) for (name, fd), v in zip(cols, row)}
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


def lock_keys(conn, rules: list[Rule], values: dict) -> None:
    """PostgreSQL: hold a transaction advisory lock per rule on the draft's
    keys, taken in a fixed order, so two writers of the same duplicate take
    turns (the second one's lookup runs after the first commits)."""
    if conn.dialect.name != "postgresql":
        return
    keys = set()
    for rule in rules:   # one lock per rule on all its keys: a duplicate shares every one
        parts = [c.key(values) for c in rule.conditions]
        if all(p is not None for p in parts):
            keys.add(f"dedupe:{rule.name}:" + "\x1f".join(map(str, parts)))
    for key in sorted(keys):
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": key})


def first_match(runtime, conn, values: dict, exclude: dict[str, set[int]]) -> Match | None:
    rules = load_rules(conn)
    if not rules:
        return None
    lock_keys(conn, rules, values)
    reg = runtime.cache.current(conn)
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
def _batch(conn) -> list[dict]:
    """The values of leads inserted in this transaction whose check has not
    run yet (rows of one bulk write are inserted before any after_insert)."""
    tx = conn.get_transaction()
    state = conn.info.get("lead_dedupe_batch")
    if state is None or state[0] is not tx:
        state = (tx, [])
        conn.info["lead_dedupe_batch"] = state
    return state[1]


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
        match = first_match(runtime, ev.conn, ev.values, {OBJECT: later | {ev.record_id}})
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


# ---------------------------------------------------------------- scans
def start_scan(runtime, actor: Actor, rule_name: str) -> dict:
    permissions.require_admin(actor)
    with runtime.db.write() as conn:
        get_rule(conn, rule_name)
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
            rule = get_rule(conn, rule_name)
        groups, scanned = _scan(runtime, rule)
        values = dict(status="done", groups=groups, scanned=scanned)
    except Exception as exc:  # the job records why it failed instead of vanishing
        values = dict(status="failed", error=f"{type(exc).__name__}: {exc}")
    with runtime.db.write() as conn:
        conn.execute(sa.update(s).where(s.c.id == scan_id).values(finished_at=utcnow(), **values))


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
                keys = tuple(c.key(rec) for c in rule.conditions)
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


def blueprints() -> list:
    """Flask blueprints this part serves (the intake API is served by cleaning)."""
    return []
