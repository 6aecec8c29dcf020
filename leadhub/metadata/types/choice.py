"""Picklists: single, multi-select and dependent (options narrowed by a
controlling field's value, e.g. province -> city)."""
from __future__ import annotations

import re

import marshmallow as mm
import sqlalchemy as sa

from leadhub.metadata.types.base import EQUALITY, FieldType, register
from leadhub.platform.labels import normalise_labels

MAX_OPTION = 100
LIST_SPLIT = re.compile(r"\s*[;,；，、|]\s*")


def choices(field) -> dict[str, str]:
    """{value or label, case-folded: value}, kept on the FieldDef (a new
    registry snapshot brings new FieldDefs, so it never goes stale)."""
    found = field.__dict__.get("_choices")
    if found is None:
        found = {}
        for o in field.settings.get("options", []):
            for text in (o["value"], *o["label"].values()):
                found.setdefault(text.strip().casefold(), o["value"])
        field.__dict__["_choices"] = found
    return found


class OptionsField(mm.fields.Field):
    """A list of options: "value" strings or {"value", "label", "active"} objects."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list) or not value:
            raise mm.ValidationError("Options must be a non-empty list.")
        out, seen = [], set()
        for i, item in enumerate(value):
            if isinstance(item, str):
                item = {"value": item}
            if not isinstance(item, dict) or set(item) - {"value", "label", "active"}:
                raise mm.ValidationError(f"Option {i + 1} must be a string or an object with value, label, active.")
            val = item.get("value")
            if not isinstance(val, str) or not val.strip() or len(val) > MAX_OPTION or ";" in val:
                raise mm.ValidationError(
                    f"Option {i + 1}: value must be 1-{MAX_OPTION} characters without ';'.")
            val = val.strip()
            if val in seen:
                raise mm.ValidationError(f"Option value '{val}' appears twice.")
            seen.add(val)
            try:
                labels = normalise_labels(item.get("label", val))
            except ValueError as exc:
                raise mm.ValidationError(f"Option '{val}': {exc}") from None
            active = item.get("active", True)
            if not isinstance(active, bool):
                raise mm.ValidationError(f"Option '{val}': active must be true or false.")
            out.append({"value": val, "label": labels, "active": active})
        return out


def values(field, active_only: bool = False) -> list[str]:
    return [o["value"] for o in field.settings.get("options", []) if o["active"] or not active_only]


class ChoiceField(mm.fields.String):
    default_error_messages = {"invalid_choice": "'{value}' is not one of the options."}

    def __init__(self, choices=None, **kwargs):
        super().__init__(**kwargs)
        self.choices = choices

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise self.make_error("invalid")
        value = value.strip()
        if self.choices is not None and value not in self.choices:
            raise self.make_error("invalid_choice", value=value)
        return value


class PicklistSettings(mm.Schema):
    class Meta:
        unknown = mm.RAISE
    options = OptionsField(required=True)


class _ChoiceType(FieldType):
    widget = "select"

    def base_field(self, field):
        return ChoiceField(allow_none=True)

    def parse_text(self, field, text):
        """An option by its value or its label in either language."""
        return choices(field).get(text.casefold(), text)

    def format(self, field, value, out):
        return out.option_label(field, value)

    def value_field(self, field):
        return ChoiceField(choices=set(values(field, active_only=True)), allow_none=True)

    def column_type(self, field):
        return sa.String(MAX_OPTION)

    def conflicting_rows(self, old, new, column):
        removed = set(values(old)) - set(values(new))
        if removed:
            return (column.in_(sorted(removed)),
                    f"Options still in use cannot be removed ({', '.join(sorted(removed))}); "
                    "mark them inactive instead.")
        return None

    def openapi(self, field):
        return {"type": "string", "enum": values(field)}


@register
class PicklistType(_ChoiceType):
    name = "picklist"
    controls_choices = True
    operators = EQUALITY
    Settings = PicklistSettings


class MultiChoiceField(mm.fields.List):
    def __init__(self, choices=None, **kwargs):
        super().__init__(ChoiceField(choices=choices), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):  # "a;b" is accepted as well as ["a", "b"]
            value = [v for v in value.split(";") if v.strip()]
        items = super()._deserialize(value, attr, data, **kwargs)
        return list(dict.fromkeys(items))  # de-duplicated, order kept


@register
class MultiPicklistType(_ChoiceType):
    """Stored as ';a;b;' so that 'includes' is a LIKE on every backend."""
    name = "multi_picklist"
    operators = frozenset({"contains", "in", "not_in", "eq", "is_null"})
    Settings = PicklistSettings
    widget = "multi"

    def parse_text(self, field, text):
        """Options separated as people separate them: a;b, a，b, a、b, a|b."""
        table = choices(field)
        return [table.get(p.casefold(), p) for p in LIST_SPLIT.split(text) if p]

    def format(self, field, value, out):
        return ", ".join(out.option_label(field, v) for v in value)

    def input_value(self, field, value, tz):
        return [] if value is None else list(value)

    def from_form(self, field, form, tz):
        return [v for v in form.getlist(field.api_name) if v] or None

    def form_text(self, field, form):
        return form.getlist(field.api_name)

    def column_type(self, field):
        return sa.Text()

    def base_field(self, field):
        return MultiChoiceField(allow_none=True)

    def value_field(self, field):
        return MultiChoiceField(choices=set(values(field, active_only=True)), allow_none=True)

    def filter_value(self, field, value):
        return value if isinstance(value, str) else super().filter_value(field, value)

    def compile_in(self, field, col, values):
        return sa.or_(*[col.contains(f";{v};", autoescape=True) for v in values])

    def compile_text(self, field, col, op, value):     # contains: has this option
        return col.contains(f";{value};", autoescape=True)

    def compile_eq(self, field, col, value):           # eq: exactly this set
        return self.to_db(value)

    def to_db(self, value):
        if not value:
            return None
        return ";" + ";".join(value) + ";"

    def from_db(self, value):
        if value is None:
            return None
        return [v for v in value.split(";") if v]

    def conflicting_rows(self, old, new, column):
        removed = sorted(set(values(old)) - set(values(new)))
        if removed:
            return (sa.or_(*[column.contains(f";{v};") for v in removed]),
                    f"Options still in use cannot be removed ({', '.join(removed)}); "
                    "mark them inactive instead.")
        return None

    def openapi(self, field):
        return {"type": "array", "items": {"type": "string", "enum": values(field)}}


class DependentSettings(PicklistSettings):
    controlling_field = mm.fields.String(required=True)
    dependency = mm.fields.Dict(keys=mm.fields.String(), values=mm.fields.List(mm.fields.String()),
                                required=True)


@register
class DependentPicklistType(_ChoiceType):
    name = "dependent_picklist"
    controls_choices = True
    operators = EQUALITY
    Settings = DependentSettings
    widget = "dependent"

    def check_settings(self, field, obj, registry):
        ctl = obj.fields.get(field.settings["controlling_field"])
        if ctl is None or ctl.api_name == field.api_name:
            return {"controlling_field": f"No field '{field.settings['controlling_field']}' on {obj.api_name}."}
        if ctl.type_name not in ("picklist", "dependent_picklist", "boolean"):
            return {"controlling_field": "The controlling field must be a picklist or a boolean."}
        ctl_values = {"true", "false"} if ctl.type_name == "boolean" else set(values(ctl))
        own = set(values(field))
        for key, allowed in field.settings["dependency"].items():
            if key not in ctl_values:
                return {"dependency": f"'{key}' is not an option of {ctl.api_name}."}
            bad = sorted(set(allowed) - own)
            if bad:
                return {"dependency": f"{', '.join(bad)} under '{key}' are not options of this field."}
        return {}

    def allowed_for(self, field, controlling_value) -> list[str]:
        if isinstance(controlling_value, bool):
            controlling_value = "true" if controlling_value else "false"
        return field.settings["dependency"].get(controlling_value, [])

    def check_record(self, field, values_):
        value = values_.get(field.api_name)
        if value is None:
            return None
        ctl_name = field.settings["controlling_field"]
        ctl_value = values_.get(ctl_name)
        if ctl_value is None:
            return f"Choose {ctl_name} first: '{value}' depends on it."
        if value not in self.allowed_for(field, ctl_value):
            return f"'{value}' is not a valid choice when {ctl_name} is '{ctl_value}'."
        return None
