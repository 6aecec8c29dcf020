"""What admins configure for lead scoring: attribute rules, behaviour event
types and the settings (half-life, grade bands, MQL threshold). Every
change is validated here (marshmallow, a 400 naming the field), conditions
are compiled at save by the platform's one expression language, and a change
that moves scores queues a rescoring job in the same transaction."""
from __future__ import annotations

import re
from typing import Any

import marshmallow as mm
import sqlalchemy as sa

from leadhub.functions.expressions import ExpressionError, compile_expression
from leadhub.metadata.labels import normalise_labels, pick
from leadhub.platform import permissions
from leadhub.platform.db import utcnow
from leadhub.platform.errors import BadRequest, Conflict, NotFound, messages_text
from leadhub.platform.permissions import Actor
from leadhub.plugins.lead import scoring_jobs
from leadhub.plugins.lead.scoring_tables import score_event_types, score_events, score_settings, scoring_rules

MAX_POINTS = 10_000
MAX_SCORE = 1_000_000
OBJECTS = ("lead",)          # the objects scoring rules may be written for (today: the lead)
STRENGTHS = ("strong", "medium", "weak")
GRADES = ("A", "B", "C")     # thresholds for A, B and C; a score below C's is a D
KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MEMO = "leadhub_scoring_snapshot"   # conn.info key of the engine's per-transaction snapshot


# --- validation ----------------------------------------------------------------

class _Number(mm.fields.Float):
    """A JSON number, never a string or a boolean."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, (str, bool)):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


def _points(**kw):
    return mm.fields.Integer(strict=True, validate=mm.validate.Range(-MAX_POINTS, MAX_POINTS), **kw)


class _Strict(mm.Schema):
    class Meta:
        unknown = mm.RAISE


class RuleSchema(_Strict):
    object = mm.fields.String(load_default="lead", validate=mm.validate.OneOf(OBJECTS))
    label = mm.fields.String(required=True, validate=mm.validate.Length(1, 200))
    condition = mm.fields.String(required=True, validate=mm.validate.Length(1, 4000))
    points = _points(required=True)
    active = mm.fields.Boolean(load_default=True)


class EventTypeSchema(_Strict):
    key = mm.fields.String(required=True, validate=mm.validate.Regexp(
        KEY, error="Lowercase letters, digits and underscores, starting with a letter, at most 40."))
    label = mm.fields.Raw(required=True)
    points = _points(required=True)
    strength = mm.fields.String(required=True, validate=mm.validate.OneOf(STRENGTHS))
    active = mm.fields.Boolean(load_default=True)


class SettingsSchema(_Strict):
    half_life_days = _Number(allow_nan=False, validate=mm.validate.Range(0, 3650))
    grades = mm.fields.Dict(keys=mm.fields.String(validate=mm.validate.OneOf(GRADES)),
                            values=mm.fields.Integer(strict=True, validate=mm.validate.Range(-MAX_SCORE, MAX_SCORE)))
    mql_threshold = mm.fields.Integer(strict=True, allow_none=True,
                                      validate=mm.validate.Range(-MAX_SCORE, MAX_SCORE))


def _load(schema: mm.Schema, payload: Any, partial: bool = False) -> dict:
    if not isinstance(payload, dict):
        raise BadRequest("The body must be a JSON object.", {"body": "Must be a JSON object."})
    try:
        return schema.load(payload, partial=partial)
    except mm.ValidationError as exc:
        fields = {k: messages_text(v) for k, v in exc.normalized_messages().items()}
        raise BadRequest(f"Invalid value for: {', '.join(sorted(fields))}.", fields) from None


def _lead_fields(runtime, conn, obj_name: str) -> frozenset[str]:
    reg = runtime.cache.current(conn)
    if obj_name not in reg.objects:
        raise BadRequest(f"There is no {obj_name} object: install the lead plugin.", {"object": "No such object."})
    return frozenset(reg.objects[obj_name].fields)


def check_condition(source: str, fields: frozenset[str]) -> None:
    """Compile `source` as a rule condition; a 400 on `condition` whose message
    ends with the line and column of the fault."""
    try:
        compile_expression(source, fields)
    except ExpressionError as exc:
        raise BadRequest(f"condition: {exc}", {"condition": str(exc)}) from None


def bump(conn) -> None:
    """Scores computed from now on must use the new configuration: other
    processes see the version move; this transaction forgets its snapshot."""
    conn.execute(sa.update(score_settings).where(score_settings.c.id == 1)
                 .values(version=score_settings.c.version + 1))
    conn.info.pop(MEMO, None)


# --- attribute rules ---------------------------------------------------------------

def rule_out(row) -> dict:
    return {"id": row["id"], "object": row["object"], "label": row["label"], "condition": row["condition"],
            "points": row["points"], "active": row["active"], "created_at": row["created_at"],
            "updated_at": row["updated_at"]}


def list_rules(runtime) -> list[dict]:
    """Every rule, with `error` set where a condition no longer compiles
    (a field it reads was deleted since): such a rule scores nothing."""
    with runtime.db.read() as conn:
        rows = conn.execute(sa.select(scoring_rules).order_by(scoring_rules.c.id)).mappings().all()
        obj = runtime.cache.current(conn).objects.get("lead")
    names = frozenset(obj.fields) if obj else frozenset()
    out = []
    for row in rows:
        try:
            compile_expression(row["condition"], names)
            error = None
        except ExpressionError as exc:
            error = str(exc)
        out.append({**rule_out(row), "error": error})
    return out


def _rule_row(conn, rule_id: int):
    row = conn.execute(sa.select(scoring_rules).where(scoring_rules.c.id == rule_id)).mappings().first()
    if row is None:
        raise NotFound(f"No scoring rule {rule_id}.")
    return row


def get_rule(runtime, rule_id: int) -> dict:
    with runtime.db.read() as conn:
        return rule_out(_rule_row(conn, rule_id))


def create_rule(runtime, actor: Actor, payload: Any) -> dict:
    permissions.require_admin(actor)
    data = _load(RuleSchema(), payload)
    now = utcnow()
    with runtime.db.write() as conn:
        check_condition(data["condition"], _lead_fields(runtime, conn, data["object"]))
        rule_id = conn.execute(scoring_rules.insert().values(
            **data, created_by=actor.user_id, created_at=now, updated_by=actor.user_id, updated_at=now)
        ).inserted_primary_key[0]
        bump(conn)
        job = scoring_jobs.request(runtime, conn, actor, "rescore") if data["active"] else None
        return {**rule_out(_rule_row(conn, rule_id)), "rescore_job": job}


def update_rule(runtime, actor: Actor, rule_id: int, payload: Any) -> dict:
    permissions.require_admin(actor)
    data = _load(RuleSchema(), payload, partial=True)
    if "object" not in payload:
        data.pop("object", None)   # load_default applies even to partial loads
    if "active" not in payload:
        data.pop("active", None)
    with runtime.db.write() as conn:
        old = _rule_row(conn, rule_id)
        merged = {**old, **data}
        if "condition" in data or "object" in data:
            check_condition(merged["condition"], _lead_fields(runtime, conn, merged["object"]))
        conn.execute(sa.update(scoring_rules).where(scoring_rules.c.id == rule_id)
                     .values(**data, updated_by=actor.user_id, updated_at=utcnow()))
        bump(conn)
        moves = any(merged[k] != old[k] for k in ("object", "condition", "points", "active"))
        job = scoring_jobs.request(runtime, conn, actor, "rescore") if moves else None
        return {**rule_out(_rule_row(conn, rule_id)), "rescore_job": job}


def delete_rule(runtime, actor: Actor, rule_id: int) -> int | None:
    permissions.require_admin(actor)
    with runtime.db.write() as conn:
        old = _rule_row(conn, rule_id)
        conn.execute(sa.delete(scoring_rules).where(scoring_rules.c.id == rule_id))
        bump(conn)
        return scoring_jobs.request(runtime, conn, actor, "rescore") if old["active"] else None


# --- behaviour event types -------------------------------------------------------------

def event_type_out(row, language: str = "en") -> dict:
    return {"key": row["key"], "label": pick(row["labels"], language), "labels": row["labels"],
            "points": row["points"], "strength": row["strength"], "active": row["active"],
            "created_at": row["created_at"], "updated_at": row["updated_at"]}


def _labels(data: dict) -> None:
    if "label" in data:
        try:
            data["labels"] = normalise_labels(data.pop("label"))
        except ValueError as exc:
            raise BadRequest(f"label: {exc}", {"label": str(exc)}) from None


def list_event_types(runtime, language: str = "en") -> list[dict]:
    with runtime.db.read() as conn:
        rows = conn.execute(sa.select(score_event_types).order_by(score_event_types.c.key)).mappings().all()
    return [event_type_out(r, language) for r in rows]


def _event_type_row(conn, key: str):
    row = conn.execute(sa.select(score_event_types).where(score_event_types.c.key == key)).mappings().first()
    if row is None:
        raise NotFound(f"No score event type '{key}'.")
    return row


def get_event_type(runtime, key: str, language: str = "en") -> dict:
    with runtime.db.read() as conn:
        return event_type_out(_event_type_row(conn, key), language)


def create_event_type(runtime, actor: Actor, payload: Any, language: str = "en") -> dict:
    permissions.require_admin(actor)
    data = _load(EventTypeSchema(), payload)
    _labels(data)
    now = utcnow()
    with runtime.db.write() as conn:
        if conn.execute(sa.select(score_event_types.c.key).where(score_event_types.c.key == data["key"])).first():
            raise Conflict(f"Score event type '{data['key']}' exists.", {"key": "Already exists."})
        conn.execute(score_event_types.insert().values(**data, created_at=now, updated_at=now))
        return event_type_out(_event_type_row(conn, data["key"]), language)


def update_event_type(runtime, actor: Actor, key: str, payload: Any, language: str = "en") -> dict:
    """Points changed here count for events recorded from now on; recorded
    events keep the points they were worth (see scoring_tables)."""
    permissions.require_admin(actor)
    if isinstance(payload, dict) and "key" in payload:
        raise BadRequest("key cannot change; create a new type.", {"key": "Read-only."})
    data = _load(EventTypeSchema(), payload, partial=True)
    if "active" not in payload:
        data.pop("active", None)
    _labels(data)
    with runtime.db.write() as conn:
        _event_type_row(conn, key)
        conn.execute(sa.update(score_event_types).where(score_event_types.c.key == key)
                     .values(**data, updated_at=utcnow()))
        return event_type_out(_event_type_row(conn, key), language)


def delete_event_type(runtime, actor: Actor, key: str) -> None:
    permissions.require_admin(actor)
    with runtime.db.write() as conn:
        _event_type_row(conn, key)
        if conn.execute(sa.select(score_events.c.id).where(score_events.c.type == key).limit(1)).first():
            raise Conflict(f"Events of type '{key}' were recorded; deactivate it instead (active: false).",
                           {"key": "In use."})
        conn.execute(sa.delete(score_event_types).where(score_event_types.c.key == key))


# --- settings ---------------------------------------------------------------------------

def settings_out(row) -> dict:
    return {"half_life_days": row["half_life_days"], "grades": dict(row["grades"]),
            "mql_threshold": row["mql_threshold"], "version": row["version"], "updated_at": row["updated_at"]}


def read_settings(conn) -> dict:
    return settings_out(conn.execute(sa.select(score_settings).where(score_settings.c.id == 1)).mappings().one())


def get_settings(runtime) -> dict:
    with runtime.db.read() as conn:
        return read_settings(conn)


def update_settings(runtime, actor: Actor, payload: Any) -> dict:
    """Any of half_life_days, grades and mql_threshold; the others stay."""
    permissions.require_admin(actor)
    data = _load(SettingsSchema(), payload, partial=True)
    with runtime.db.write() as conn:
        old = read_settings(conn)
        new = {k: old[k] for k in ("half_life_days", "grades", "mql_threshold")} | data
        missing = [g for g in GRADES if g not in new["grades"]]
        if missing:
            raise BadRequest(f"grades needs a threshold for each of A, B and C; missing {', '.join(missing)}.",
                             {"grades": f"Missing: {', '.join(missing)}."})
        th = [new["grades"][g] for g in GRADES]
        if not th[0] > th[1] > th[2]:
            raise BadRequest("Grade thresholds must descend: A > B > C.", {"grades": "Must descend: A > B > C."})
        new["grades"] = {g: new["grades"][g] for g in GRADES}
        conn.execute(sa.update(score_settings).where(score_settings.c.id == 1)
                     .values(**new, updated_by=actor.user_id, updated_at=utcnow()))
        bump(conn)
        changed = any(new[k] != old[k] for k in new)
        job = scoring_jobs.request(runtime, conn, actor, "rescore") if changed else None
        return {**read_settings(conn), "rescore_job": job}
