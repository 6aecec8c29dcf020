"""Values the platform computes: auto-number, formula and roll-up summary."""
from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import re

import marshmallow as mm
import sqlalchemy as sa

from leadhub.expressions import ExpressionError, compile_expression
from leadhub.metadata.types.base import EQUALITY, ORDERED, TEXT, FieldType, get_type, register
from leadhub.metadata.types.text import CleanString

_TOKEN = re.compile(r"\{([^{}]*)\}")
_DATE_TOKENS = {"YYYY": "%Y", "YY": "%y", "MM": "%m", "DD": "%d"}


def parse_pattern(pattern: str) -> tuple[str, int]:
    """Check an auto-number pattern such as `LD-{YYYY}{MM}-{00000}`.
    Returns (date part format, digits); raises ValueError."""
    counters = [t for t in _TOKEN.findall(pattern) if set(t) == {"0"}]
    unknown = [t for t in _TOKEN.findall(pattern) if t not in _DATE_TOKENS and set(t) != {"0"}]
    if unknown:
        raise ValueError(f"Unknown token {{{unknown[0]}}}: use {{YYYY}}, {{YY}}, {{MM}}, {{DD}} and one {{000}}.")
    if len(counters) != 1:
        raise ValueError("The pattern needs exactly one counter token such as {00000}.")
    period = "".join(_DATE_TOKENS[t] for t in _TOKEN.findall(pattern) if t in _DATE_TOKENS)
    return period, len(counters[0])


def format_number(pattern: str, when: dt.datetime, value: int) -> str:
    def token(m):
        t = m.group(1)
        if t in _DATE_TOKENS:
            return when.strftime(_DATE_TOKENS[t])
        return str(value).zfill(len(t))
    return _TOKEN.sub(token, pattern)


class AutoNumberSettings(mm.Schema):
    class Meta:
        unknown = mm.RAISE
    pattern = mm.fields.String(load_default="{000000}", validate=mm.validate.Length(1, 48))

    @mm.validates("pattern")
    def _valid(self, value, **kwargs):
        try:
            parse_pattern(value)
        except ValueError as exc:
            raise mm.ValidationError(str(exc)) from None


def formula_order(compiled: dict[str, tuple]) -> list[str]:
    """Topological order of formulas by the formulas they read; ValueError on a cycle."""
    order, state = [], {}

    def visit(name, path):
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise ValueError("Formulas refer to each other in a circle: " + " -> ".join(path + [name]))
        state[name] = "visiting"
        for dep in sorted(compiled[name][1].names):
            if dep in compiled:
                visit(dep, path + [name])
        state[name] = "done"
        order.append(name)

    for name in sorted(compiled):
        visit(name, [])
    return order


@register
class AutoNumberType(FieldType):
    """Unique per object; numbers come from lh_autonumbers in the writing
    transaction, so a rolled-back insert may leave a gap but never a repeat."""
    name = "auto_number"
    computed = True
    may_be_unique = always_unique = True
    fills_existing = "numbered"
    always_indexed = True      # people search by the number
    searchable = True
    operators = EQUALITY | ORDERED | TEXT
    Settings = AutoNumberSettings

    def column_type(self, field):
        return sa.String(64)

    def base_field(self, field):
        return CleanString(allow_none=True)

    def period(self, field, when: dt.datetime) -> str:
        fmt, _ = parse_pattern(field.settings["pattern"])
        return when.strftime(fmt) if fmt else "-"


RETURN_TYPES = ("text", "integer", "decimal", "currency", "percent", "date", "datetime", "boolean")


class FormulaSettings(mm.Schema):
    class Meta:
        unknown = mm.RAISE
    expression = mm.fields.String(required=True, validate=mm.validate.Length(1, 4000))
    return_type = mm.fields.String(load_default="text", validate=mm.validate.OneOf(RETURN_TYPES))
    scale = mm.fields.Integer(load_default=2, validate=mm.validate.Range(0, 10))


@register
class FormulaType(FieldType):
    """Computed from other fields of the same record on every write and stored,
    so it can be filtered, sorted and reported like any column."""
    name = "formula"
    computed = True
    fills_existing = "computed"
    Settings = FormulaSettings

    def result_field(self, field):
        """A stand-in FieldDef of the return type, for column and coercion."""
        rt = field.settings["return_type"]
        settings = {"max_length": 4000} if rt == "text" else {}
        if rt in ("decimal", "currency", "percent"):
            settings = {"precision": 28, "scale": field.settings["scale"], "currency": "CNY"}
            if rt != "currency":
                settings.pop("currency")
        return dataclasses.replace(field, type_name=rt, settings=settings)

    def format(self, field, value, out):
        result = self.result_field(field)          # shown as its return type is
        return result.type.format(result, value, out)

    def calendar_days(self, field):
        return field.settings.get("return_type") == "date"

    @property
    def operators(self):  # the return type's operators
        return EQUALITY | ORDERED | TEXT

    def column_type(self, field):
        rf = self.result_field(field)
        return rf.type.column_type(rf)

    def base_field(self, field):
        rf = self.result_field(field)
        return rf.type.base_field(rf)

    def from_db(self, value):
        return value

    def compile(self, field, obj):
        names = {f.api_name for f in obj.fields.values() if f.api_name != field.api_name}
        return compile_expression(field.settings["expression"], names)

    def check_settings(self, field, obj, registry):
        try:
            self.compile(field, obj)
            formula_order({f.api_name: (f, f.type.compile(f, obj)) for f in obj.fields_of_type("formula")})
        except ValueError as exc:           # a bad expression, or formulas reading each other in a circle
            return {"expression": str(exc)}
        return {}

    def coerce(self, field, value):
        """Fit an evaluated value to the return type; None when it cannot,
        OverflowError when it is a number too large for the column."""
        if value is None:
            return None
        rt = field.settings["return_type"]
        try:
            if rt == "text":
                from leadhub.expressions import _text
                return _text(value)[:4000]
            if rt == "boolean":
                return bool(value)
            if rt == "integer":
                number = int(decimal.Decimal(value).to_integral_value(decimal.ROUND_HALF_UP))
                if not -2 ** 63 <= number < 2 ** 63:
                    raise OverflowError(f"{number} is beyond a whole number's range (about ±9.2e18)")
                return number
            if rt in ("decimal", "currency", "percent"):
                number = decimal.Decimal(value)
                if number.is_finite() and number != 0 and number.adjusted() >= 28 - field.settings["scale"]:
                    raise OverflowError(f"{number:.6E} has more than {28 - field.settings['scale']} digits "
                                        "before the point")
                return number.quantize(decimal.Decimal(1).scaleb(-field.settings["scale"]),
                                       rounding=decimal.ROUND_HALF_UP)
            if rt == "date":
                return value.date() if isinstance(value, dt.datetime) else value if isinstance(value, dt.date) else None
            if rt == "datetime":
                if isinstance(value, dt.datetime):
                    return value
                if isinstance(value, dt.date):
                    return dt.datetime.combine(value, dt.time(), dt.timezone.utc)
        except (decimal.InvalidOperation, TypeError, ValueError):
            return None
        return None

    def openapi(self, field):
        rf = self.result_field(field)
        return {**rf.type.openapi(rf), "readOnly": True}


class RollupSettings(mm.Schema):
    class Meta:
        unknown = mm.RAISE
    child_object = mm.fields.String(required=True)
    child_field = mm.fields.String(required=True)
    function = mm.fields.String(required=True, validate=mm.validate.OneOf(("count", "sum", "min", "max")))
    aggregate_field = mm.fields.String(load_default=None, allow_none=True)
    filter = mm.fields.Raw(load_default=None, allow_none=True)


_SUMMABLE = ("integer", "decimal", "currency", "percent")
_ORDERABLE = _SUMMABLE + ("date", "datetime")


@register
class RollupType(FieldType):
    """count/sum/min/max of child records through a lookup, kept current by
    the record service whenever a child is written."""
    name = "rollup"
    fills_existing = "computed"
    computed = True
    operators = EQUALITY | ORDERED
    Settings = RollupSettings

    def check_settings(self, field, obj, registry):
        s = field.settings
        child = registry.objects.get(s["child_object"])
        if child is None:
            return {"child_object": f"No object '{s['child_object']}'."}
        link = child.fields.get(s["child_field"])
        if link is None or link.type_name not in ("lookup", "master_detail") \
                or link.settings.get("reference_to") != obj.api_name:
            return {"child_field": f"'{s['child_field']}' must be a lookup on {child.api_name} "
                                   f"that references {obj.api_name}."}
        if s["function"] == "count":
            return {}
        agg = child.fields.get(s["aggregate_field"] or "")
        allowed = _SUMMABLE if s["function"] == "sum" else _ORDERABLE
        if agg is None or self.source_type(agg) not in allowed:
            return {"aggregate_field": f"{s['function']} needs a field of {child.api_name} of type "
                                       f"{', '.join(allowed)}."}
        return {}

    @staticmethod
    def source_type(agg) -> str:
        return agg.settings.get("return_type") if agg.type_name == "formula" else agg.type_name

    derived_settings = ("result",)

    def derive_settings(self, field, obj, registry):
        """Freeze the result's type and scale, so the column type never depends
        on the child field's later changes."""
        agg = self.aggregate_source(field, registry)
        if agg is None:
            return {"result": {"type": "integer", "scale": 0}}
        return {"result": {"type": self.source_type(agg),
                           "scale": agg.settings.get("scale", 0)}}

    def aggregate_source(self, field, registry):
        """The child field aggregated, or None for count."""
        s = field.settings
        if s["function"] == "count":
            return None
        return registry.objects[s["child_object"]].fields[s["aggregate_field"]]

    def column_type(self, field):
        s = field.settings
        if s["function"] == "count":
            return sa.BigInteger()
        src = field.settings.get("result")
        if src and src["type"] in ("date", "datetime"):
            return get_type(src["type"]).column_type(field)
        return sa.Numeric(38, src["scale"] if src else 2)

    def base_field(self, field):
        return mm.fields.Raw(allow_none=True)

    def openapi(self, field):
        src = field.settings.get("result")
        if field.settings["function"] == "count":
            return {"type": "integer", "readOnly": True}
        if src and src["type"] == "date":
            return {"type": "string", "format": "date", "readOnly": True}
        if src and src["type"] == "datetime":
            return {"type": "string", "format": "date-time", "readOnly": True}
        return {"type": "string", "format": "decimal", "readOnly": True}
