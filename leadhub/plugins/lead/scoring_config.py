"""What admins configure for lead scoring, as three metadata kinds: attribute
rules, behaviour event types and the settings (half-life, grade bands, MQL
threshold). Each is validated by its schema and checks here (a 400 naming the
field), conditions are compiled at save by the platform's one expression
language, and a change that moves scores queues a rescoring job in the same
transaction (its id is the answer's `rescore_job`)."""
from __future__ import annotations

import re

import marshmallow as mm
import sqlalchemy as sa

from leadhub.expressions import ExpressionError, compile_expression, names_in
from leadhub.metadata.kinds import Context, Kind, Ref
from leadhub.platform.errors import BadRequest, Conflict
from leadhub.platform.labels import normalise_labels
from leadhub.plugins.lead import scoring_jobs
from leadhub.plugins.lead.scoring_tables import score_events

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
    name = mm.fields.String(load_default=None, validate=mm.validate.Regexp(
        KEY, error="Lowercase letters, digits and underscores, starting with a letter, at most 40."))
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
    half_life_days = _Number(required=True, allow_nan=False, validate=mm.validate.Range(0, 3650))
    grades = mm.fields.Dict(required=True, keys=mm.fields.String(validate=mm.validate.OneOf(GRADES)),
                            values=mm.fields.Integer(strict=True, validate=mm.validate.Range(-MAX_SCORE, MAX_SCORE)))
    mql_threshold = mm.fields.Integer(strict=True, allow_none=True, load_default=None,
                                      validate=mm.validate.Range(-MAX_SCORE, MAX_SCORE))


def check_condition(source: str, fields: frozenset[str]) -> None:
    """Compile `source` as a rule condition; a 400 on `condition` whose message
    ends with the line and column of the fault."""
    try:
        compile_expression(source, fields)
    except ExpressionError as exc:
        raise BadRequest(f"condition: {exc}", {"condition": str(exc)}) from None


def _rescore(ctx: Context) -> None:
    """Scores computed from now on use the new configuration (the metadata
    version moved with the save); existing scores are worked out again by a job."""
    ctx.conn.info.pop(MEMO, None)
    lead = ctx.registry.objects.get("lead")
    if lead is None or ctx.conn.execute(sa.select(ctx.registry.table("lead").c.id).limit(1)).first() is None:
        ctx.extras["rescore_job"] = None        # no lead to rescore (e.g. the plugin installing itself)
        return
    ctx.extras["rescore_job"] = scoring_jobs.request(ctx.runtime, ctx.conn, ctx.actor, "rescore")


# --- attribute rules ---------------------------------------------------------------

def _rule_check(ctx: Context, data: dict, old) -> dict:
    check_condition(data["condition"], frozenset(ctx.registry.objects[data["object"]].fields))
    if data.get("name") is None:          # a name is made up when none is given
        taken = set(ctx.registry.items.get(RULE_KIND.name, {}))
        n = len(taken) + 1
        while f"rule_{n}" in taken:
            n += 1
        data = {**data, "name": f"rule_{n}"}
    return data


def _rule_changed(ctx: Context, old, new) -> None:
    moves = lambda i: i is not None and i.data["active"]  # noqa: E731
    if old is None or new is None:
        if moves(old) or moves(new):
            _rescore(ctx)
        return
    if any(old.data[k] != new.data[k] for k in ("object", "condition", "points", "active")):
        _rescore(ctx)
    else:
        ctx.extras["rescore_job"] = None


def _rule_error(runtime, item) -> dict:
    """`error` is set where a condition no longer compiles (a field it reads
    was deleted since): such a rule scores nothing."""
    obj = runtime.cache.current().objects.get(item.data["object"])
    try:
        compile_expression(item.data["condition"], frozenset(obj.fields) if obj else frozenset())
        return {"error": None}
    except ExpressionError as exc:
        return {"error": str(exc)}


def _rule_refs(data: dict) -> list[Ref]:
    """The object, and each of its fields the condition reads."""
    return [Ref("object", data["object"], "object")] + [
        Ref("field", f"{data['object']}.{name}", "condition") for name in sorted(names_in(data["condition"]))]


RULE_KIND = Kind(name="scoring_rule", url="scoring-rules", plugin="lead", schema=RuleSchema, key="name",
                 labels={"en": "Scoring rules", "zh_CN": "评分规则"}, references=_rule_refs, check=_rule_check,
                 on_change=_rule_changed, present=_rule_error, presented=("error",), editor="lead_admin.scoring_page",
                 properties={
                     "name": {"en": "Name", "zh_CN": "名称"}, "label": {"en": "Label", "zh_CN": "显示名称"},
                     "object": {"en": "Object", "zh_CN": "对象"},
                     "condition": {"en": "Condition (a formula)", "zh_CN": "条件（公式）"},
                     "points": {"en": "Points", "zh_CN": "分值"}, "active": {"en": "Active", "zh_CN": "启用"}},
                 widgets={"condition": "code"})


# --- behaviour event types -------------------------------------------------------------

def _event_type_check(ctx: Context, data: dict, old) -> dict:
    try:
        return {**data, "label": normalise_labels(data["label"])}
    except ValueError as exc:
        raise BadRequest(f"label: {exc}", {"label": str(exc)}) from None


def _event_type_delete(ctx: Context, item) -> None:
    if ctx.conn.execute(sa.select(score_events.c.id).where(score_events.c.type == item.key).limit(1)).first():
        raise Conflict(f"Events of type '{item.key}' were recorded; deactivate it instead (active: false).",
                       {"key": "In use."})


EVENT_TYPE_KIND = Kind(name="score_event_type", url="score-events", plugin="lead", schema=EventTypeSchema,
                       key="key", labels={"en": "Score event types", "zh_CN": "行为事件类型"},
                       check=_event_type_check, check_delete=_event_type_delete,
                       order=lambda item: item.key, editor="lead_admin.scoring_page", widgets={"label": "labels"},
                       properties={"key": {"en": "Key", "zh_CN": "标识"}, "label": {"en": "Label", "zh_CN": "显示名称"},
                                   "points": {"en": "Points", "zh_CN": "分值"},
                                   "strength": {"en": "Strength", "zh_CN": "强度"},
                                   "active": {"en": "Active", "zh_CN": "启用"}},
                       choices={"strength": {"strong": {"en": "Strong", "zh_CN": "强"},
                                             "medium": {"en": "Medium", "zh_CN": "中"},
                                             "weak": {"en": "Weak", "zh_CN": "弱"}}})


# --- settings ---------------------------------------------------------------------------

def _settings_check(ctx: Context, data: dict, old) -> dict:
    missing = [g for g in GRADES if g not in data["grades"]]
    if missing:
        raise BadRequest(f"grades needs a threshold for each of A, B and C; missing {', '.join(missing)}.",
                         {"grades": f"Missing: {', '.join(missing)}."})
    th = [data["grades"][g] for g in GRADES]
    if not th[0] > th[1] > th[2]:
        raise BadRequest("Grade thresholds must descend: A > B > C.", {"grades": "Must descend: A > B > C."})
    return {**data, "grades": {g: data["grades"][g] for g in GRADES}}


def _settings_changed(ctx: Context, old, new) -> None:
    if old is None or old.data != new.data:
        _rescore(ctx)


SETTINGS_KIND = Kind(name="scoring_settings", url="scoring-settings", plugin="lead", schema=SettingsSchema,
                     singleton=True, title=None, labels={"en": "Scoring settings", "zh_CN": "评分设置"},
                     check=_settings_check, on_change=_settings_changed, editor="lead_admin.scoring_page",
                     properties={"half_life_days": {"en": "Half-life of behaviour points (days)",
                                                    "zh_CN": "行为分半衰期（天）"},
                                 "grades": {"en": "Grade thresholds", "zh_CN": "等级分数线"},
                                 "mql_threshold": {"en": "MQL threshold", "zh_CN": "MQL 分数线"}})

KINDS = (RULE_KIND, EVENT_TYPE_KIND, SETTINGS_KIND)
DEFAULT_SETTINGS = {"half_life_days": 30.0, "grades": {"A": 80, "B": 50, "C": 20}, "mql_threshold": 60}


def settings(reg) -> dict:
    """The scoring settings of a registry snapshot (the defaults until the plugin's are installed)."""
    item = reg.items.get(SETTINGS_KIND.name, {}).get("default")
    return item.data if item else DEFAULT_SETTINGS


def event_types(reg) -> dict[str, dict]:
    return {key: item.data for key, item in reg.items.get(EVENT_TYPE_KIND.name, {}).items()}
