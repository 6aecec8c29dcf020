"""Duplicate rules (查重规则): a metadata kind (metadata/kinds.py), validated
on save so a bad payload is a 400 naming the field (conditions.0.field,
match_objects.1, ...). See dedupe.py for how they run.

A rule: conditions that must all match, each a field with a normaliser
(e164 for phone fields, lower for text and e-mail, company_name for the
lead's company (its indexed company_key / company_prefix columns), exact);
at least one condition on an indexed column, so the database finds
candidates by index and filters the rest; the objects it matches against
(which must exist and carry the fields); a window in months; an action."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import marshmallow as mm
import sqlalchemy as sa

from leadhub.metadata.kinds import Context, Kind, Ref
from leadhub.platform import ddl
from leadhub.platform.errors import BadRequest, NotFound
from leadhub.plugins.lead import normalise as nz
from leadhub.plugins.lead.intake_tables import duplicate_scans

OBJECT = "lead"
NORMALISERS = ("e164", "lower", "company_name", "exact")
ACTIONS = ("mark", "collect", "route", "tag_only")


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
            raw = str(raw)   # cleaning already wrote E.164: no second parse
            return raw if _E164.fullmatch(raw) else nz.e164(raw)
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


_E164 = re.compile(r"\+[1-9]\d{6,14}")


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
    def from_item(cls, item) -> "Rule":
        d = item.data
        return cls(id=item.id, name=d["name"], label=d["label"], active=d["active"], object=d["object"],
                   match_objects=tuple(d["match_objects"]), window_months=d["window_months"],
                   action=d["action"], conditions=tuple(Condition(**c) for c in d["conditions"]))

    def keys(self, values: dict) -> tuple:
        """The draft's key per condition (None where it cannot match)."""
        return tuple(c.key(values) for c in self.conditions)

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


def references(data: dict) -> list[Ref]:
    """The object, the objects it matches against and every condition's field on each."""
    refs = [Ref("object", data["object"], "object")]
    if data["object"] != OBJECT:
        return refs         # check() refuses the object before any field is looked at
    matches = data.get("match_objects") or [data["object"]]
    refs += [Ref("object", name, f"match_objects.{i}") for i, name in enumerate(matches)]
    for i, cond in enumerate(data["conditions"]):
        refs += [Ref("field", f"{obj}.{cond['field']}", f"conditions.{i}.field") for obj in dict.fromkeys(
            [data["object"], *matches])]
    return refs


def check(ctx: Context, data: dict, old) -> dict:
    """What the schema cannot say: the object is the lead, no object or field
    twice, normalisers fit their fields, and one condition is indexed."""
    reg = ctx.registry
    errors: dict[str, str] = {}
    if data["object"] != OBJECT:
        errors["object"] = "Duplicate checks run on new leads: object must be 'lead'."
    matches = data["match_objects"] or [data["object"]]
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
        for obj_name in dict.fromkeys([data["object"], *matches]):
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
    return {**data, "match_objects": matches}


def on_change(ctx: Context, old, new) -> None:
    if new is None:      # a deleted rule's scans go with it
        ctx.conn.execute(sa.delete(duplicate_scans).where(duplicate_scans.c.rule == old.key))


KIND = Kind(name="duplicate_rule", url="duplicate-rules", plugin="lead", schema=RuleSchema, key="name",
            labels={"en": "Duplicate rules", "zh_CN": "查重规则"}, references=references, check=check,
            on_change=on_change, editor="lead_admin.duplicate_rules", properties={
                "name": {"en": "Name", "zh_CN": "名称"}, "label": {"en": "Label", "zh_CN": "显示名称"},
                "active": {"en": "Active", "zh_CN": "启用"}, "object": {"en": "Object", "zh_CN": "对象"},
                "match_objects": {"en": "Objects to match against", "zh_CN": "查重范围"},
                "conditions": {"en": "Conditions (all must match)", "zh_CN": "条件（全部满足）"},
                "window_months": {"en": "Window (months)", "zh_CN": "时间窗口（月）"},
                "action": {"en": "Action", "zh_CN": "处理方式"}},
            choices={"action": {"mark": {"en": "Mark as duplicate", "zh_CN": "标记为重复"},
                                "collect": {"en": "Collect into the existing record", "zh_CN": "归集到已有记录"},
                                "route": {"en": "Route to the existing record's owner", "zh_CN": "分给已有记录的负责人"},
                                "tag_only": {"en": "Tag only", "zh_CN": "仅打标签"}}})


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
    return ddl.has_own_index(obj.fields[field])


def load_rules(reg, object_name: str = OBJECT, active_only: bool = True) -> list[Rule]:
    """The rules of the registry snapshot, in the order they were made (the
    first that matches decides)."""
    items = reg.items.get(KIND.name, {}).values()
    rules = [Rule.from_item(i) for i in items if i.data["object"] == object_name]
    return [r for r in rules if r.active] if active_only else rules


def get_rule(reg, name: str) -> Rule:
    item = reg.items.get(KIND.name, {}).get(name)
    if item is None:
        raise NotFound(f"No duplicate rule '{name}'.")
    return Rule.from_item(item)
