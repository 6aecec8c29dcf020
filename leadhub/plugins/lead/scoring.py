"""Lead scoring: attribute rules on field values plus behaviour events whose
points decay with a half-life; total, grade band and the MQL milestone.

Every lead write is scored in before_insert/before_update (after cleaning and
dedupe, which subscribe first), so the API, pages, imports and functions all
score alike; an update rescores only when a field some rule reads changed,
or when `rescore_values` gives the record service new scores as system values
(events, rescoring jobs). Crossing the
MQL threshold sets mql/mql_at once and publishes the custom record event
"mql" on the lead (subscribe: runtime.events.subscribe("mql", fn, object="lead"))."""
from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import json
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import sqlalchemy as sa

from leadhub.expressions import EvaluationError, Expression, ExpressionError, compile_expression
from leadhub.platform import permissions
from leadhub.platform.db import utcnow
from leadhub.platform.errors import BadRequest
from leadhub.platform.events import RecordEvent
from leadhub.platform.labels import pick
from leadhub.platform.permissions import Actor
from leadhub.plugins.lead.scoring_config import GRADES, MEMO, RULE_KIND, event_types, settings as settings_of
from leadhub.plugins.lead.scoring_tables import score_events

OBJECT = "lead"
MQL_EVENT = "mql"
HOOK = "scoring_rule"      # functions of kind "hook" with this hook name add points
SCORE_FIELDS = ("score", "score_attribute", "score_behaviour", "grade", "mql", "mql_at")
FUTURE_SLACK = dt.timedelta(minutes=5)   # clocks of other systems posting events drift a little
MAX_NOTE = 2000
MAX_DATA = 10_000


# --- the compiled configuration ------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    id: int
    label: str
    condition: str
    points: int
    expression: Expression | None
    error: str | None        # a condition that no longer compiles (a field it read was deleted)


@dataclass(frozen=True)
class Snapshot:
    """Active rules compiled once per metadata version."""
    key: int
    rules: tuple[Rule, ...]
    reads: frozenset[str]            # fields any active rule reads
    half_life_days: float
    grades: dict[str, int]
    mql_threshold: int | None


@dataclass
class Score:
    attribute: int
    behaviour: float
    total: int
    grade: str
    rules: list[dict]
    events: list[dict]


class Engine:
    """One per runtime: holds the current snapshot and swaps it when the
    metadata version moved (this process or another saved)."""

    def __init__(self, runtime):
        self.runtime = runtime
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()

    def snapshot(self, conn: sa.Connection) -> Snapshot:
        # Within one transaction the configuration cannot move under us (a
        # rule saved in it forgets the memo), so a bulk write of N leads
        # checks the versions once, not N times.
        tx = conn.get_transaction()
        memo = conn.info.get(MEMO)
        if tx is not None and memo is not None and memo[0] is tx:
            return memo[1]
        reg = self.runtime.cache.current(conn)
        snap = self._snapshot
        if snap is None or snap.key != reg.version:
            with self._lock:
                snap = self._snapshot
                if snap is None or snap.key != reg.version:
                    snap = self._build(reg)
                    self._snapshot = snap
        if tx is not None:
            conn.info[MEMO] = (tx, snap)
        return snap

    @staticmethod
    def _build(reg) -> Snapshot:
        obj = reg.objects.get(OBJECT)
        names = frozenset(obj.fields) if obj else frozenset()
        rules, reads = [], set()
        for item in reg.items.get(RULE_KIND.name, {}).values():
            row = item.data
            if row["object"] != OBJECT or not row["active"]:
                continue
            try:
                expr, error = compile_expression(row["condition"], names), None
                reads |= expr.names
            except ExpressionError as exc:
                expr, error = None, str(exc)
            rules.append(Rule(item.id, row["label"], row["condition"], row["points"], expr, error))
        settings = settings_of(reg)
        return Snapshot(reg.version, tuple(rules), frozenset(reads), float(settings["half_life_days"]),
                        dict(settings["grades"]), settings["mql_threshold"])


def engine(runtime) -> Engine:
    return runtime.slots.one("lead.scoring_engine", lambda: Engine(runtime))


# --- the arithmetic -------------------------------------------------------------------------

def _round(x: float) -> int:
    """Half away from zero, as people round (Python's round() goes to even)."""
    return int(decimal.Decimal(repr(x)).quantize(decimal.Decimal(1), rounding=decimal.ROUND_HALF_UP))


def decayed(points: int, occurred_at: dt.datetime, now: dt.datetime, half_life_days: float) -> float:
    if not half_life_days:
        return float(points)
    age_days = max((now - occurred_at).total_seconds(), 0.0) / 86400
    return points * 0.5 ** (age_days / half_life_days)


def grade_of(total: int, grades: dict[str, int]) -> str:
    return next((g for g in GRADES if total >= grades[g]), "D")


def hook_points(runtime, values: dict, registry=None) -> list[dict]:
    """Admins' `scoring_rule` hook functions (functions of kind hook, hook
    scoring_rule): each returns a number of points for the lead, or nothing.
    A function that fails scores nothing (its run is in the execution log);
    with none active, and the write's registry given, this is one dictionary
    lookup (no metadata-version query per lead)."""
    return hook_points_many(runtime, [values], registry)[0]


def hook_points_many(runtime, leads: list[dict], registry=None) -> list[list[dict]]:
    """hook_points of several leads (a bulk write's): each function runs once
    for all of them, in one trip to a sandbox worker."""
    fns = runtime.functions.bound(registry or runtime.cache.current(), "hook", HOOK)
    out: list[list[dict]] = [[] for _ in leads]
    for fn in fns:
        results = runtime.function_runner.execute_many(fn, Actor.system(), "hook",
                                                       [(values, None, None) for values in leads])
        for found, result in zip(out, results):
            points = result.value
            if result.error is None and isinstance(points, (int, float)) and not isinstance(points, bool) and points:
                found.append({"function": fn.api_name, "label": fn.labels, "points": _round(points)})
    return out


def compute(snap: Snapshot, values: dict, events: Iterable, now: dt.datetime,
            hooks: Iterable[dict] = ()) -> Score:
    """events: rows with type, points and occurred_at (any extra keys are kept);
    hooks: points from scoring_rule functions, counted as attribute points."""
    matched = list(hooks)
    attribute = sum(h["points"] for h in matched)
    for rule in snap.rules:
        if rule.expression is None:
            continue
        try:
            hit = bool(rule.expression.evaluate(values, now))
        except EvaluationError:
            hit = False   # e.g. text compared with a number: the rule does not apply to this lead
        if hit:
            attribute += rule.points
            matched.append({"id": rule.id, "label": rule.label, "condition": rule.condition, "points": rule.points})
    listed, behaviour = [], 0.0
    for ev in events:
        worth = decayed(ev["points"], ev["occurred_at"], now, snap.half_life_days)
        behaviour += worth
        listed.append({**ev, "decayed_points": round(worth, 2)})
    total = attribute + _round(behaviour)
    return Score(attribute, behaviour, total, grade_of(total, snap.grades), matched, listed)


def _events_of(conn, lead_ids: list[int]) -> dict[int, list[dict]]:
    e = score_events
    out: dict[int, list[dict]] = {i: [] for i in lead_ids}
    for row in conn.execute(sa.select(e.c.lead_id, e.c.type, e.c.points, e.c.occurred_at)
                            .where(e.c.lead_id.in_(lead_ids))).mappings():
        out[row["lead_id"]].append({"type": row["type"], "points": row["points"], "occurred_at": row["occurred_at"]})
    return out


# --- the handlers ------------------------------------------------------------------------------

def _score_writes(runtime, events: list[RecordEvent]) -> None:
    """Score a write's leads: their events read in one query, each hook
    function run once for the batch."""
    snap = engine(runtime).snapshot(events[0].conn)
    todo = [ev for ev in events if not (ev.name == "before_update" and ev.values.get("score") is not None
                                        and not any(ev.changed(n) for n in snap.reads))]
    if not todo:
        return
    now = utcnow()
    stored = [ev.record_id for ev in todo if ev.record_id is not None]
    events_by_id = _events_of(todo[0].conn, stored) if stored else {}
    seen_list, events_list = [], []
    for ev in todo:
        if ev.record_id is None:  # system fields are stamped after before_insert; rules see them now
            seen_list.append({"owner": ev.actor.user_id, "created_by": ev.actor.user_id, "created_at": now,
                              "updated_at": now, **{k: v for k, v in ev.values.items() if v is not None}})
            events_list.append([])                      # a new lead has no events yet
        else:
            seen_list.append(ev.values)
            events_list.append(events_by_id[ev.record_id])
    hooks = hook_points_many(runtime, seen_list, todo[0].registry)
    for ev, seen, lead_events, points in zip(todo, seen_list, events_list, hooks):
        ev.values.update(_score_fields(runtime, snap, seen, lead_events, now, ev.registry, points))


def _score_fields(runtime, snap, seen: dict, events: list[dict], now: dt.datetime, registry,
                  hooks: list[dict] | None = None) -> dict:
    """The score fields of a lead whose values are `seen` (`hooks`: its
    hook functions' points, when already worked out)."""
    if hooks is None:
        hooks = hook_points(runtime, seen, registry)
    score = compute(snap, seen, events, now, hooks)
    out = {"score": score.total, "score_attribute": score.attribute, "score_behaviour": _round(score.behaviour),
           "grade": score.grade}
    if not seen.get("mql"):
        qualified = snap.mql_threshold is not None and score.total >= snap.mql_threshold
        out["mql"] = qualified
        if qualified:
            out["mql_at"] = now
    return out


def rescore_values(runtime, ids: Iterable[int], now: dt.datetime | None = None,
                   batch: bool = False) -> tuple[dict[int, Callable[[dict], dict]], set[int]]:
    """Rescoring these leads although no field a rule reads changed (events
    were added, rules changed, time passed), as the record service's system
    values: {id: a function of the stored lead giving its score fields},
    called under the lead's row lock; and the set that fills with the ids
    whose score, grade or MQL flag moved. With batch, the first lead's
    function reads every id's events in one query: the record service has
    locked the whole batch by then, so an event recorded concurrently is
    either seen here or rescores after us."""
    ids = list(ids)
    changed: set[int] = set()
    events_by_id: dict[int, list[dict]] = {}

    def of(lead_id: int) -> Callable[[dict], dict]:
        def values(old: dict) -> dict:
            with runtime.db.write() as conn:         # joins the update's own transaction
                if not batch:
                    events = _events_of(conn, [lead_id])[lead_id]
                else:
                    if not events_by_id:
                        events_by_id.update(_events_of(conn, sorted(ids)))
                    events = events_by_id.get(lead_id, [])
                out = _score_fields(runtime, engine(runtime).snapshot(conn), old, events, now or utcnow(),
                                    runtime.cache.current(conn))
            if any(old.get(k) != out.get(k, old.get(k)) for k in SCORE_FIELDS):
                changed.add(lead_id)
            return out
        return values
    return {i: of(i) for i in ids}, changed


def _announce_mql(runtime, event: RecordEvent) -> None:
    """MQL is a milestone: it is reached once and stays, so this fires once per lead."""
    if event.values.get("mql") and not (event.old or {}).get("mql"):
        runtime.events.publish(dataclasses.replace(event, name=MQL_EVENT))


def register(runtime) -> None:
    """Score every lead write (the decay sweep is scoring_runs')."""
    for name in ("before_insert", "before_update"):
        runtime.events.subscribe(name, lambda evs: _score_writes(runtime, evs), object=OBJECT, batch=True)
    for name in ("after_insert", "after_update"):
        runtime.events.subscribe(name, lambda ev: _announce_mql(runtime, ev), object=OBJECT)
    runtime.slots.add("timeline", timeline, object=OBJECT)


def timeline(runtime, actor: Actor, _obj: str, lead_id: int) -> list[dict]:
    """The lead page's timeline: the score as of now with the rules that
    made it, and each behaviour event with its points; nothing for a reader
    from whom the score is hidden."""
    if not permissions.visible(actor, OBJECT, "score"):
        return []
    lang = actor.language or "zh_CN"
    why = explain(runtime, actor, lead_id, lang)
    text = lambda label: pick(label, lang) if isinstance(label, dict) else str(label)  # noqa: E731
    title = (f"评分 {why['score']}（{why['grade']} 级）" if lang == "zh_CN"
             else f"Score {why['score']} (grade {why['grade']})")
    reasons = "; ".join(f"{text(r['label'])} {r['points']:+d}" for r in why["rules"])
    items = [{"at": why["as_of"], "kind": "score", "url": None, "title": title, "body": reasons or None}]
    for ev in why["events"]:
        items.append({"at": ev["occurred_at"], "kind": "score_event", "url": None,
                      "title": f"{ev['label']} {ev['points']:+d}", "body": ev.get("note")})
    return items


# --- behaviour events and explanations ------------------------------------------------------

def _as_utc(value: Any, name: str) -> dt.datetime:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise BadRequest(f"{name} must be an ISO 8601 date-time.", {name: "Not an ISO 8601 date-time."}) from None
    if not isinstance(value, dt.datetime):
        raise BadRequest(f"{name} must be an ISO 8601 date-time.", {name: "Not an ISO 8601 date-time."})
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


def record_event(runtime, actor: Actor, lead_id: int, type: str, occurred_at: Any = None,
                 data: dict | None = None, note: str | None = None) -> dict:
    """Record a behaviour event on a lead and rescore it, in one transaction.
    The actor needs the edit right on the lead (its scope decides: a lead
    outside it is a 404, as the record service answers)."""
    if not isinstance(type, str) or not type:
        raise BadRequest("type is required: a score event type's key.", {"type": "Required."})
    now = utcnow()
    when = now if occurred_at is None else _as_utc(occurred_at, "occurred_at")
    if when > now + FUTURE_SLACK:
        raise BadRequest("occurred_at is in the future.", {"occurred_at": "In the future."})
    if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE):
        raise BadRequest(f"note must be text of at most {MAX_NOTE} characters.", {"note": "Too long or not text."})
    if data is not None:
        if not isinstance(data, dict):
            raise BadRequest("data must be an object.", {"data": "Must be an object."})
        data = json.loads(json.dumps(data, default=str))   # exact decimals from the API become text
        if len(json.dumps(data)) > MAX_DATA:
            raise BadRequest(f"data must be at most {MAX_DATA} characters of JSON.", {"data": "Too large."})
    with runtime.db.write() as conn:
        kind = event_types(runtime.cache.current(conn)).get(type)
        if kind is None or not kind["active"]:
            raise BadRequest(f"No active score event type '{type}'.", {"type": "Unknown or inactive event type."})
        event_id = conn.execute(score_events.insert().values(
            lead_id=lead_id, type=type, points=kind["points"], occurred_at=when, note=note, data=data,
            created_by=actor.user_id, created_at=now)).inserted_primary_key[0]
        rescored, _ = rescore_values(runtime, [lead_id])
        lead = runtime.records.update(actor, OBJECT, lead_id, {}, system=rescored[lead_id])   # rights, scope
    return {"event": {"id": event_id, "lead": lead_id, "type": type, "points": kind["points"],
                      "occurred_at": when, "note": note, "data": data},
            "lead": {k: lead.get(k) for k in ("id", *SCORE_FIELDS) if k in lead}}


def explain(runtime, actor: Actor, lead_id: int, language: str = "en", now: dt.datetime | None = None) -> dict:
    """The score as of now and why: each matching rule and each event with
    its original and decayed points. Needs read access to the lead."""
    runtime.records.get(actor, OBJECT, lead_id, ["id"])       # 404 outside the actor's scope
    now = now or utcnow()
    with runtime.db.read() as conn:
        # rules read every field, including ones hidden from this actor
        lead = runtime.records.get(Actor.system(), OBJECT, lead_id)
        snap = engine(runtime).snapshot(conn)
        types = event_types(runtime.cache.current(conn))
        e = score_events
        rows = conn.execute(sa.select(e.c.id, e.c.type, e.c.points, e.c.occurred_at, e.c.note)
                            .where(e.c.lead_id == lead_id).order_by(e.c.occurred_at.desc(), e.c.id.desc())).mappings()
        events = [{"id": r["id"], "type": r["type"], "strength": types.get(r["type"], {}).get("strength"),
                   "label": pick(types.get(r["type"], {}).get("label"), language) or r["type"],
                   "points": r["points"], "occurred_at": r["occurred_at"], "note": r["note"]} for r in rows]
    score = compute(snap, lead, events, now, hook_points(runtime, lead))
    return {"lead": lead_id, "as_of": now, "score": score.total, "attribute": score.attribute,
            "behaviour": _round(score.behaviour), "grade": score.grade,
            "mql": bool(lead.get("mql")), "mql_at": lead.get("mql_at"),
            "stored": {"score": lead.get("score"), "grade": lead.get("grade")},
            "rules": score.rules, "events": score.events,
            "broken_rules": [{"id": r.id, "label": r.label, "error": r.error} for r in snap.rules if r.error],
            "settings": {"half_life_days": snap.half_life_days, "grades": snap.grades,
                         "mql_threshold": snap.mql_threshold}}
